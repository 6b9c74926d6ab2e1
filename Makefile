# cvlab: `make run` sets everything up and runs the quickstart grid; `make test` runs the tests.
PYTHON ?= python3.11
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: setup run test test-fast bench lab lint leaderboard clean

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "error: $(PYTHON) not found; install Python 3.11 or run 'make PYTHON=/path/to/python3.11 ...'"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	# A kernel named "cvlab" for JupyterLab; grid runs use this interpreter's own kernel.
	$(PY) -m ipykernel install --sys-prefix --name cvlab --display-name "Python (cvlab)" >/dev/null
	touch $(STAMP)

setup: $(STAMP)

run: $(STAMP)
	$(PY) run_grid.py grids/quickstart.yaml

test: $(STAMP)
	$(PY) -m pytest

test-fast: $(STAMP)
	$(PY) -m pytest -m "not slow"

bench: $(STAMP)
	$(PY) bench/overhead.py
	$(PY) bench/pipeline.py
	$(PY) bench/train_throughput.py

lab: $(STAMP)
	$(VENV)/bin/pip install --quiet jupyterlab
	$(VENV)/bin/jupyter lab notebooks/

leaderboard: $(STAMP)
	$(PY) run_grid.py --leaderboard

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

clean:
	rm -rf experiments/* logs/* figs/*
	touch experiments/.gitkeep logs/.gitkeep figs/.gitkeep
