# Balsam developer commands. Each target creates .venv (from PyPI) when missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test imports unit integration bench system-deps clean venv

$(STAMP): setup.py requirements-ci.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-ci.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" bash demo/run_demo.sh

test: imports
	$(BIN)/python -m pytest tests

# The import contracts in .importlinter (the layers of the package graph).
imports: $(STAMP)
	$(BIN)/lint-imports

unit: $(STAMP)
	$(BIN)/python -m pytest tests/unit

integration: $(STAMP)
	$(BIN)/python -m pytest tests/integration

bench: $(STAMP)
	$(BIN)/python benchmarks/cli_scale.py

system-deps:
	bash .ci/system-deps

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
