# The two set-up commands: `make run` and `make test`. Everything else is optional.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/pip install --disable-pip-version-check -q -c constraints.txt

.PHONY: run test test-postgres lint typecheck bench clean plates

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --disable-pip-version-check -q --upgrade pip

$(VENV)/.installed-run: $(BIN)/python pyproject.toml constraints.txt
	$(PIP) -e .
	touch $@

$(VENV)/.installed-test: $(BIN)/python pyproject.toml constraints.txt
	$(PIP) -e '.[test]'
	touch $@ $(VENV)/.installed-run

## Serve on 127.0.0.1:8080 with SQLite + local keys under ./var (first start initializes).
run: $(VENV)/.installed-run
	$(BIN)/gateway serve

## The whole suite (SQLite unless TEST_DATABASE_URL names a PostgreSQL database).
test: $(VENV)/.installed-test
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-postgres: $(VENV)/.installed-test
	TEST_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/test $(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(VENV)/.installed-test
	$(BIN)/ruff check gateway policies audit tests bench

typecheck: $(VENV)/.installed-test
	$(BIN)/mypy gateway policies audit

## Optional plate detector: model licence AGPL-3.0 per its metadata (see README).
plates: $(VENV)/.installed-run
	$(BIN)/pip install --disable-pip-version-check -q --no-deps platedet==0.0.2

clean:
	rm -rf $(VENV) .pytest_cache
