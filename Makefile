# The two commands a newcomer types: `make demo` and `make test`.
# Both create .venv on first use and install the project into it (editable, with test extras).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo test lint stack-check clean

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	@touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/freshmesh demo

test: lint
	$(PY) -m pytest -q --durations=25  # the slowest 25, to keep the run near 15 min

lint: $(STAMP)  # ruff and mypy, configured in pyproject.toml
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

stack-check: $(STAMP)
	$(VENV)/bin/freshmesh stack --check

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .hypothesis
