# One task runner. `make up` runs the whole stack in the foreground; `make test` is what CI runs.
VENV := .venv
BIN := $(VENV)/bin
PACKAGES := assistants api workflows activities worker cli stack
PYTEST_ARGS ?=

.PHONY: setup up test lint typecheck bench clean

setup:
	bash scripts/setup.sh

up: setup
	$(BIN)/assistants up

test: setup
	$(BIN)/pytest $(PYTEST_ARGS)

lint:
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-cache  # the layer contracts in pyproject.toml
	$(BIN)/mypy $(PACKAGES)

typecheck:
	$(BIN)/mypy $(PACKAGES)

# Every bench/*.py, each under a timeout, all within 15 minutes; appends to bench/RESULTS.md.
bench: setup
	$(BIN)/python bench/run_all.py

# Caches and test output only: .venv and .data (your keys, threads, models) are never removed here.
clean:
	rm -rf tests/artifacts .pytest_cache .mypy_cache .ruff_cache *.egg-info
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +
