# The two commands (see README): `make demo` and `make test`.
# Both create .venv on first use and install what they need into it.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test lint unit integration bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

# Runtime only: the demo needs no torch/transformers.
$(VENV)/.runtime: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e .
	touch $@

# Everything: export/fine-tune extras + dev tools, for the tests.
$(VENV)/.dev: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[export,dev]'
	touch $@ $(VENV)/.runtime

demo: $(VENV)/.runtime
	$(BIN)/reviewpulse demo

lint: $(VENV)/.dev
	$(BIN)/ruff check streams models export tests
	$(BIN)/mypy

unit: $(VENV)/.dev
	$(BIN)/python -m pytest tests/unit

integration: $(VENV)/.dev
	$(BIN)/python -m pytest tests/integration

test: lint
	$(BIN)/python -m pytest

bench: $(VENV)/.runtime
	$(BIN)/reviewpulse bench

clean:
	rm -rf $(VENV) .reviewpulse build
