# Balsam developer commands. Each target creates .venv (from PyPI) when missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test imports unit integration bench system-deps clean venv bytecode

$(STAMP): setup.py requirements-ci.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-ci.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $(STAMP)

venv: $(STAMP)

# Balsam's own modules compiled ahead (an editable install is not compiled by
# pip). Where PYTHONDONTWRITEBYTECODE is set -- common on shared HPC file
# systems, and on this project's machines -- Python never caches them, and
# every balsam process (a launcher, each CLI call, each job's dag client)
# compiled ~130 modules at start: 50-80 ms each time. Up-to-date files are
# skipped, so running it before each target costs ~0.1 s.
bytecode: $(STAMP)
	$(BIN)/python -m compileall -q -j 0 balsam

demo: $(STAMP) bytecode
	PATH="$(CURDIR)/$(BIN):$$PATH" bash demo/run_demo.sh

test: imports bytecode
	$(BIN)/python -m pytest tests

# The import contracts in .importlinter (the layers of the package graph).
imports: $(STAMP)
	$(BIN)/lint-imports

unit: $(STAMP) bytecode
	$(BIN)/python -m pytest tests/unit

integration: $(STAMP) bytecode
	$(BIN)/python -m pytest tests/integration

bench: $(STAMP) bytecode
	$(BIN)/python benchmarks/cli_scale.py

system-deps:
	bash .ci/system-deps

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
