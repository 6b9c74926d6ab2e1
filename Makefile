# cvlab: `make run` sets everything up and runs the quickstart grid; `make test` runs the tests.
PYTHON ?= python3.11
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: setup run test test-fast bench lab lint leaderboard import-shared clean

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

# Import every data set archive found in $(SHARED_DATA) into the data cache ($$CVLAB_DATA, else
# data/), and its style/ and content/ picture folders as style-images and content-photos: the
# real-data tests and notebooks read them from there. Re-running skips what is in.
SHARED_DATA ?= ../shared/data
import-shared: $(STAMP)
	@if [ -d "$(SHARED_DATA)" ]; then \
	  for f in "$(SHARED_DATA)"/*.tar "$(SHARED_DATA)"/*.tar.gz "$(SHARED_DATA)"/*.zip; do \
	    [ -f "$$f" ] || continue; \
	    name=$$(basename "$$f"); name=$${name%.gz}; name=$${name%.tar}; name=$${name%.zip}; \
	    $(PY) -c 'import sys; from cvlab.data.catalog import entry; entry(sys.argv[1])' "$$name" 2>/dev/null \
	      || { echo "skipping $$f: cvlab's catalog has no data set named $$name"; continue; }; \
	    $(VENV)/bin/cvlab data import "$$name" "$$f" --quiet || exit 1; \
	  done; \
	  for pair in style:style-images content:content-photos; do \
	    folder="$(SHARED_DATA)/$${pair%%:*}"; \
	    [ -d "$$folder" ] || { echo "skipping $$folder: not there"; continue; }; \
	    $(VENV)/bin/cvlab data import "$${pair#*:}" "$$folder" --quiet || exit 1; \
	  done; \
	  $(VENV)/bin/cvlab data list; \
	else echo "no $(SHARED_DATA): nothing to import (real-data tests will be skipped)"; fi

# The whole suite under TensorFlow (the default backend), then the core marked `backends` again
# under JAX and under PyTorch (TensorFlow made unimportable there, as on a GPU machine without it).
test: $(STAMP)
	$(PY) -m pytest
	KERAS_BACKEND=jax $(PY) -m pytest -m backends
	KERAS_BACKEND=torch $(PY) -m pytest -m backends

test-fast: $(STAMP)
	$(PY) -m pytest -m "not slow"
	KERAS_BACKEND=jax $(PY) -m pytest -m "backends and not slow"
	KERAS_BACKEND=torch $(PY) -m pytest -m "backends and not slow"

bench: $(STAMP)
	$(PY) bench/overhead.py
	$(PY) bench/pipeline.py
	$(PY) bench/decode.py
	$(PY) bench/train_throughput.py
	$(PY) bench/backbone.py

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
