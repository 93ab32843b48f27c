# Two entry points: `make demo` (the main job) and `make test` (lint + tests).
# torch is installed first, pinned to the CPU wheel on this machine's disk, so that
# resolving the package never pulls CUDA wheels.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint install clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/pronscore --help
	$(BIN)/pronscore score examples/we_call_it_bear.wav --text "We call it bear"

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

test: lint
	$(BIN)/python -m pytest -q tests

clean:
	rm -rf $(VENV) build dist src/*.egg-info
