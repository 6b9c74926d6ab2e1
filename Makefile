# cvlab: `make run` sets everything up and runs the quickstart grid; `make test` runs the tests.
PYTHON ?= python3.11
VENV   ?= .venv
PY     := $(VENV)/bin/python
# Which Keras backend to install, and whether with CUDA (a Linux machine with an NVIDIA GPU):
#   make setup                      TensorFlow, CPU (the default backend)
#   make setup BACKEND=jax|torch    also JAX / PyTorch, CPU builds; BACKEND=all: both (CI)
#   make setup GPU=1 [BACKEND=jax|torch]   the CUDA build of that backend
#   make setup MLFLOW=1             also MLflow, for `cvlab export mlflow` (CI installs it)
# Later calls (`make run`, `make test`, a reinstall after pyproject.toml changed) keep the choice
# of the last setup (saved in $(VENV)/.setup), so a GPU install is not replaced by a CPU one.
SAVED   := $(shell cat $(VENV)/.setup 2>/dev/null)
BACKEND ?= $(or $(word 1,$(SAVED)),tensorflow)
GPU     ?= $(filter-out -,$(word 2,$(SAVED)))
MLFLOW  ?= $(word 3,$(SAVED))
TORCH_INDEX_CPU  ?= https://download.pytorch.org/whl/cpu
TORCH_INDEX_CUDA ?= https://download.pytorch.org/whl/cu128
ifeq ($(BACKEND),all)
  BACKEND_EXTRAS := jax,torch
else ifeq ($(BACKEND),tensorflow)
  BACKEND_EXTRAS := $(if $(GPU),gpu,)
else ifeq ($(BACKEND),jax)
  BACKEND_EXTRAS := $(if $(GPU),jax-cuda,jax)
else ifeq ($(BACKEND),torch)
  BACKEND_EXTRAS := torch
else
  $(error BACKEND=$(BACKEND): use tensorflow, jax, torch or all)
endif
comma  := ,
EXTRAS := dev$(if $(BACKEND_EXTRAS),$(comma)$(BACKEND_EXTRAS),)$(if $(MLFLOW),$(comma)mlflow,)
# torch from PyTorch's CPU index (PyPI's Linux wheel is the CUDA build, GBs), or with GPU=1 its
# CUDA index; TORCH_INDEX_CPU= (empty) where a local wheel or mirror serves torch 2.13.0 (CI)
TORCH_INDEX := $(if $(GPU),$(TORCH_INDEX_CUDA),$(TORCH_INDEX_CPU))
PIP_INDEX := $(if $(and $(findstring torch,$(BACKEND_EXTRAS)),$(TORCH_INDEX)),--extra-index-url $(TORCH_INDEX),)
STAMP  := $(VENV)/.installed-$(BACKEND)$(if $(GPU),-gpu,)$(if $(MLFLOW),-mlflow,)

.PHONY: setup run test test-fast bench lab lint leaderboard import-shared clean

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "error: $(PYTHON) not found; install Python 3.11 or run 'make PYTHON=/path/to/python3.11 ...'"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[$(EXTRAS)]' $(PIP_INDEX)
	# TensorFlow's CUDA build replaces tensorflow-cpu (both install the same `tensorflow` folder)
	$(if $(and $(GPU),$(findstring gpu,$(BACKEND_EXTRAS))),$(PY) -m pip uninstall --quiet -y tensorflow-cpu && $(PY) -m pip install --quiet --force-reinstall --no-deps tensorflow==2.21.0,@true)
	# A kernel named "cvlab" for JupyterLab; grid runs use this interpreter's own kernel.
	$(PY) -m ipykernel install --sys-prefix --name cvlab --display-name "Python (cvlab)" >/dev/null
	echo "$(BACKEND) $(or $(GPU),-) $(MLFLOW)" > $(VENV)/.setup
	touch $(STAMP)

setup: $(STAMP)

run: $(STAMP)
	$(PY) run_grid.py grids/quickstart.yaml $(if $(filter jax torch,$(BACKEND)),--backend $(BACKEND),)

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
# A backend that is not installed (a plain `make setup`) is skipped with a notice, except in CI
# (CI set), where it is an error: .ci/run installs all three.
define other_backends
	@for b in jax torch; do \
	  if $(PY) -c "import importlib.util as u, sys; sys.exit(u.find_spec('$$b') is None)"; then \
	    echo "== the core marked 'backends' under KERAS_BACKEND=$$b"; \
	    KERAS_BACKEND=$$b $(PY) -m pytest -m "$(1)" || exit 1; \
	  elif [ -n "$$CI" ]; then \
	    echo "error: $$b is not installed; CI runs the core on all three (make setup BACKEND=all)"; exit 1; \
	  else \
	    echo "skipping the $$b pass: $$b is not installed (make setup BACKEND=all installs it)"; \
	  fi; \
	done
endef

test: $(STAMP)
	$(PY) -m pytest
	$(call other_backends,backends)

test-fast: $(STAMP)
	$(PY) -m pytest -m "not slow"
	$(call other_backends,backends and not slow)

bench: $(STAMP)
	$(PY) bench/overhead.py
	$(PY) bench/pipeline.py
	$(PY) bench/decode.py
	$(PY) bench/train_throughput.py
	$(PY) bench/backbone.py

# JupyterLab (a core dependency) on notebooks/, new notebooks on the "cvlab" kernel setup installed
lab: $(STAMP)
	$(VENV)/bin/jupyter lab --ServerApp.root_dir=notebooks \
	  --MappingKernelManager.default_kernel_name=cvlab

leaderboard: $(STAMP)
	$(PY) run_grid.py --leaderboard

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

clean:
	rm -rf experiments/* logs/* figs/*
	touch experiments/.gitkeep logs/.gitkeep figs/.gitkeep
