# jaxsel: two commands on a fresh machine (python3.12 present, nothing else installed).
#   make demo   set up .venv and run the demo on the digital twin
#   make test   set up .venv, then lint, build the API docs and run the test suite
# For contributors (same .venv): make test-fast (skips @pytest.mark.slow), make lint (ruff
# check + ruff format --check + pyright on jaxsel/), make docs (API reference from the
# docstrings into docs/api/, failing on any pdoc warning).
PY ?= python3.12
VENV := .venv
STAMP := $(VENV)/.installed-stamp
OUT ?= runs/demo

.PHONY: demo test test-fast lint docs setup bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(VENV)/bin/python || $(PY) -m venv $(VENV)
	$(VENV)/bin/python -m pip install -q --upgrade pip
	$(VENV)/bin/python -m pip install -q -e ".[dev]"
	@touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/jaxsel demo --out $(OUT)

test: $(STAMP) lint docs
	$(VENV)/bin/python -m pytest tests

test-fast: $(STAMP)
	$(VENV)/bin/python -m pytest tests -m "not slow"

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/pyright --pythonpath $(VENV)/bin/python

docs: $(STAMP)
	rm -rf docs/api
	$(VENV)/bin/python -W error -m pdoc --docformat google --output-directory docs/api jaxsel

bench: $(STAMP)
	$(VENV)/bin/python benchmarks/run.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache docs/api
