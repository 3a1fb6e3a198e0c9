# DocDB: `make run` starts everything, `make test` runs every check. Both install what is missing.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
CACHE_DIR ?= $(HOME)/.cache/docdb
# Torch alone is gigabytes: every wheel is kept in a wheelhouse outside the repository, and a new
# venv installs from it without the network when it holds everything (pip's own HTTP cache does
# not keep these downloads).
WHEELS := $(CACHE_DIR)/wheels
export DOCDB_CACHE_DIR ?= $(CACHE_DIR)

# Tesseract and the language pack of each of DOCDB_OCR_LANGUAGES (none with DOCDB_OCR=off), as
# .env sets them for `make run`.
OCR_PACKAGES := $(shell [[ -f .env ]] && { set -a; source .env; set +a; }; python3 -m docdb.config ocr-packages)
RUN_PACKAGES := redis-server poppler-utils $(OCR_PACKAGES)
TEST_PACKAGES := $(RUN_PACKAGES) chromium fonts-dejavu-core haproxy
POSTGRES_PACKAGES := postgresql

.PHONY: install install-test run test test-fast lint typecheck pytest test-postgres clean

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --no-index --find-links $(WHEELS) -e '.[dev]' 2>/dev/null || { \
		$(PY) -m pip download -d $(WHEELS) 'setuptools>=70' '.[dev]' && \
		$(PY) -m pip install --no-index --find-links $(WHEELS) -e '.[dev]'; }
	touch $@

install: $(VENV)/.installed
	scripts/system-deps.sh $(RUN_PACKAGES)
	scripts/weaviate-binary.sh >/dev/null

# Helm renders and lints the chart in tests/test_helm.py (built with Go the first time, ~5 min).
install-test: install
	scripts/system-deps.sh $(TEST_PACKAGES)
	scripts/helm-binary.sh >/dev/null
	scripts/seaweedfs-binary.sh >/dev/null

run: install
	scripts/run.sh

# lint-imports checks the contracts of pyproject.toml's [tool.importlinter]: which part of DocDB
# may import which.
lint: $(VENV)/.installed
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(VENV)/bin/lint-imports

typecheck: $(VENV)/.installed
	$(PY) -m mypy docdb

pytest: install-test
	$(PY) manage.py makemigrations --check --dry-run
	$(PY) -m pytest $(PYTEST_ARGS)

test: install-test lint typecheck pytest

# The tests that need none of the servers (tests/conftest.py marks the others `services`): units,
# and views and commands on the database and files. Poppler reads the PDFs, HAProxy checks the
# compose cluster's balancer file and Helm renders the chart; nothing else to start.
test-fast: $(VENV)/.installed
	scripts/system-deps.sh poppler-utils haproxy
	scripts/helm-binary.sh >/dev/null
	$(PY) -m pytest -m "not services" $(PYTEST_ARGS)

# The tests whose subject is the database (claims, constraints, races, migrations, the scheduler,
# the order of results, duplicates, throttling, commands, the ops page's counts, isolation between
# people), on a PostgreSQL server the tests start (tests/postgres.py). The SQLite pass alone runs
# those whose subject lies elsewhere: the corpus (PDF engines), the Weaviate cluster, Chromium,
# and `sqlite_pass` (PDF engines, Weaviate, the embedder, service faults, benchmarks, and the
# views and API, whose queries are those tested here): they would only run twice.
test-postgres: install-test
	scripts/system-deps.sh $(POSTGRES_PACKAGES)
	$(PY) -m pytest --postgres -m "not corpus and not cluster and not browser and not sqlite_pass" $(PYTEST_ARGS)

# Every stage of ingestion, both vector modes, search at scale, the web: prints the tables and
# writes docs/benchmarks.md with its plots (~30 min on 2 cores; BENCH_ARGS=--quick for a minute).
.PHONY: bench
bench: install
	$(PY) -m bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) data/test.sqlite3
