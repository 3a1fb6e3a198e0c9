# DocDB: `make run` starts everything, `make test` runs every check. Both install what is missing.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
CACHE_DIR ?= $(HOME)/.cache/docdb
# Torch alone is gigabytes: keep pip's downloads outside the repository and reuse them.
export PIP_CACHE_DIR ?= $(CACHE_DIR)/pip
export DOCDB_CACHE_DIR ?= $(CACHE_DIR)

RUN_PACKAGES := redis-server poppler-utils
TEST_PACKAGES := $(RUN_PACKAGES) chromium fonts-dejavu-core

.PHONY: install install-test run test lint typecheck pytest clean

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install -e '.[dev]'
	touch $@

install: $(VENV)/.installed
	scripts/system-deps.sh $(RUN_PACKAGES)
	scripts/weaviate-binary.sh >/dev/null

install-test: install
	scripts/system-deps.sh $(TEST_PACKAGES)

run: install
	scripts/run.sh

lint: $(VENV)/.installed
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

typecheck: $(VENV)/.installed
	$(PY) -m mypy docdb

pytest: install-test
	$(PY) manage.py makemigrations --check --dry-run
	$(PY) -m pytest $(PYTEST_ARGS)

test: install-test lint typecheck pytest

clean:
	rm -rf $(VENV) data/test.sqlite3
