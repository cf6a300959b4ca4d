# Two commands for a newcomer: `make demo` and `make test`. Both create .venv when needed and
# reinstall only when pyproject.toml has changed since the last install.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test test-soak lint venv bench geometry clean help

help:
	@echo "make demo   set up .venv, build the demo data, process it and serve the dashboard"
	@echo "make test   set up .venv and run the test suite"
	@echo "make test-soak  the soak tests: job servers killed (kill -9) or cut off (minutes)"
	@echo "make lint   ruff (lint and format) and mypy, configured in pyproject.toml"
	@echo "make bench  run the benchmarks under bench/"

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --quiet -e ".[test]"
	@touch $(STAMP)

venv: $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# The tests that kill job servers and cut them off from the database and the broker (pytest's -m
# given last wins over the configuration's "not soak").
test-soak: $(STAMP)
	$(BIN)/python -m pytest -m soak $(PYTEST_ARGS)

# The whole list, not the first failure: every command runs, the target fails if any did.
lint: $(STAMP)
	@status=0; \
	$(BIN)/ruff check . || status=1; \
	$(BIN)/ruff format --check . || status=1; \
	$(BIN)/mypy || status=1; \
	exit $$status

demo: $(STAMP)
	$(BIN)/python demo.py

bench: $(STAMP)
	@for script in bench/[!_]*.py; do echo "== $$script"; $(BIN)/python $$script || exit 1; done

geometry: $(STAMP)
	$(BIN)/python -m dqm.geometry

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache
