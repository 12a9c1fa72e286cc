# Two entry points for people: `make run` (install, start gpufleet) and `make test` (install, run everything CI runs).
VENV ?= .venv
PYTHON ?= python3
ARGS ?=

.PHONY: install run test lint typecheck unit

$(VENV)/.installed: pyproject.toml
	bash scripts/bootstrap-venv.sh $(PYTHON) $(VENV)
	$(VENV)/bin/pip install -q -e '.[dev]'
	touch $@

install: $(VENV)/.installed

run: install
	$(VENV)/bin/gpufleet start $(ARGS)

lint: install
	$(VENV)/bin/ruff check gpufleet tests benchmarks

typecheck: install
	$(VENV)/bin/mypy

test: install
	bash scripts/ensure-postgres.sh
	$(VENV)/bin/gpufleet engines install llama.cpp
	$(VENV)/bin/ruff check gpufleet tests benchmarks
	$(VENV)/bin/mypy
	$(VENV)/bin/pytest -q
