# Two commands on a fresh machine: `make run` and `make test`.
# CPU torch is installed first: a plain `torch` requirement would pull a multi-GB CUDA build.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
TORCH := torch==2.13.0
STAMP := $(VENV)/.installed

.PHONY: setup run test test-slow bench clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install -q $(TORCH)
	$(BIN)/pip install -q -e ".[test]"
	touch $(STAMP)

setup: $(STAMP)

run: setup
	$(BIN)/quasar run

test: setup
	$(BIN)/python -m pytest -q -x --durations=15

test-slow: setup
	$(BIN)/python -m pytest -q -m slow

bench: setup
	$(BIN)/quasar bench --json docs/bench.json

clean:
	rm -rf $(VENV) outputs
