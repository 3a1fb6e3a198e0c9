#!/usr/bin/env bash
# Starts DocDB and everything it needs on this machine; Ctrl-C stops them all.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck disable=SC1091
source .venv/bin/activate
[[ -f .env ]] && { set -a; source .env; set +a; }

# Each process applies the defaults of docdb/config.py itself, but the Procfile's command lines
# need these in the environment. The Weaviate key too: the embedder accepts the one set there,
# which Weaviate forwards, and with none set it would accept any request.
defaults="$(python -m docdb.config defaults DOCDB_DATA_DIR DOCDB_WEB_PORT \
    DOCDB_WORKER_CONCURRENCY DOCDB_WEAVIATE_API_KEY)"
eval "$defaults"

# Services left running by an earlier `make run` that died would each stop at once on "Address
# already in use": say which process holds which port, and what to do, before starting any.
python -m docdb.localstack ports-check
scripts/weaviate-binary.sh >/dev/null
python manage.py migrate --noinput
python manage.py docdb_bootstrap
echo "DocDB starts at http://127.0.0.1:${DOCDB_WEB_PORT}/ once the embedder has loaded its model."
exec honcho start -f Procfile
