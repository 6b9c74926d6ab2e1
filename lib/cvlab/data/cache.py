"""Where data sets live: `$CVLAB_DATA`, else `data/` in the project (git-ignored)."""

from __future__ import annotations

import os
from pathlib import Path

from cvlab.workspace import project_root


def data_root() -> Path:
    """The data cache folder (it need not exist yet)."""
    env = os.environ.get("CVLAB_DATA")
    if env:
        return Path(env).expanduser().resolve()
    return project_root() / "data"


def dataset_dir(name: str, directory: str | Path | None = None) -> Path:
    """An explicit `directory` option, else `<data cache>/<name>`."""
    return Path(directory).expanduser().resolve() if directory else data_root() / name
