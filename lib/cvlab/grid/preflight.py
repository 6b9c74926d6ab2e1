"""Checks made before a grid starts, so that it fails at once rather than half-way: the output
folder can be written, and the disk has room."""

from __future__ import annotations

import os
import shutil
import tempfile

from cvlab.errors import OutputFolderError
from cvlab.workspace import Workspace

# Below this, not even a run's notebook and record are sure to fit: refuse to start.
MIN_FREE_BYTES = 64 * 1024 * 1024


def check_output_folder(ws: Workspace, min_free_bytes: int = MIN_FREE_BYTES) -> None:
    """Make `experiments/`, `logs/` and `figs/` under `ws` and write a file in each; check the
    free space. Raises OutputFolderError naming the folder and the fix."""
    for folder in (ws.root, ws.experiments, ws.logs, ws.figs):
        try:
            folder.mkdir(parents=True, exist_ok=True)
            fd, probe = tempfile.mkstemp(prefix=".cvlab-write-check.", dir=folder)
            os.close(fd)
            os.unlink(probe)
        except OSError as exc:
            raise OutputFolderError(
                f"output folder {folder} cannot be written ({exc.strerror or exc}). Fix: give "
                "--out a folder you can write to, or fix its permissions; nothing was run"
            ) from None
    free = shutil.disk_usage(ws.root).free
    if free < min_free_bytes:
        raise OutputFolderError(
            f"output folder {ws.root} has only {free / 2**20:.1f} MiB free (at least "
            f"{min_free_bytes / 2**20:.0f} MiB needed). Fix: free space there, or give --out a "
            "folder on another disk; nothing was run"
        )
