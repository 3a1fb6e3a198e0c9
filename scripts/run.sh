#!/usr/bin/env bash
# Starts DocDB and everything it needs on this machine; Ctrl-C stops them all.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck disable=SC1091
source .venv/bin/activate
[[ -f .env ]] && { set -a; source .env; set +a; }

export DOCDB_DATA_DIR="${DOCDB_DATA_DIR:-$PWD/data}"
export DOCDB_WEB_PORT="${DOCDB_WEB_PORT:-8000}"
export DOCDB_REDIS_PORT="${DOCDB_REDIS_PORT:-6389}"
export DOCDB_EMBEDDER_PORT="${DOCDB_EMBEDDER_PORT:-8011}"
export DOCDB_WEAVIATE_HTTP_PORT="${DOCDB_WEAVIATE_HTTP_PORT:-8080}"
export DOCDB_WEAVIATE_GRPC_PORT="${DOCDB_WEAVIATE_GRPC_PORT:-50051}"
export DOCDB_WEAVIATE_API_KEY="${DOCDB_WEAVIATE_API_KEY:-docdb-local-key}"
# Weaviate forwards its client's API key to the embedder, which accepts exactly that key.
export DOCDB_EMBEDDER_API_KEYS="${DOCDB_EMBEDDER_API_KEYS:-$DOCDB_WEAVIATE_API_KEY}"
export DOCDB_EMBEDDER_CACHE_DIR="${DOCDB_EMBEDDER_CACHE_DIR:-$DOCDB_DATA_DIR/models}"
export DOCDB_WORKER_CONCURRENCY="${DOCDB_WORKER_CONCURRENCY:-1}"
mkdir -p "$DOCDB_DATA_DIR"

scripts/weaviate-binary.sh >/dev/null
python manage.py migrate --noinput
python manage.py docdb_bootstrap
echo "DocDB starts at http://127.0.0.1:${DOCDB_WEB_PORT}/ once the embedder has loaded its model."
exec honcho start -f Procfile
