#!/usr/bin/env python
"""Run a notebook over a YAML hyperparameter grid: `python run_grid.py grids/quickstart.yaml`.

See `python run_grid.py --help`; the command line is `cvlab.grid.cli`, which wraps
`cvlab.run_grid` (cvlab.grid.runner): call that from Python.
"""

import sys
from pathlib import Path

# Lets a fresh checkout run this file before `pip install -e .` (the Makefile installs it anyway).
sys.path.insert(0, str(Path(__file__).resolve().parent / "lib"))

from cvlab.grid.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
