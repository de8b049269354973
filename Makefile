# jaxsel: two commands on a fresh machine (python3.12 present, nothing else installed).
#   make demo   set up .venv and run the demo on the digital twin
#   make test   set up .venv and run the test suite
PY ?= python3.12
VENV := .venv
STAMP := $(VENV)/.installed-stamp
OUT ?= runs/demo

.PHONY: demo test setup bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(VENV)/bin/python || $(PY) -m venv $(VENV)
	$(VENV)/bin/python -m pip install -q --upgrade pip
	$(VENV)/bin/python -m pip install -q -e ".[dev]"
	@touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/jaxsel demo --out $(OUT)

test: $(STAMP)
	$(VENV)/bin/python -m pytest tests

bench: $(STAMP)
	$(VENV)/bin/python benchmarks/run.py

clean:
	rm -rf $(VENV) .pytest_cache
