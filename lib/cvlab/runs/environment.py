"""Where a run ran: library versions, git commit and host, for the run record."""

from __future__ import annotations

import platform
import socket
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any


def _version(*dists: str) -> str | None:
    for dist in dists:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return None


def _git(args: list[str], cwd: Path) -> str | None:
    try:
        out = subprocess.run(
            ["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip()


def git_state(cwd: str | Path) -> dict[str, Any]:
    """The commit checked out at `cwd`, and whether the tree differs from it (new files too)."""
    cwd = Path(cwd)
    commit = _git(["rev-parse", "HEAD"], cwd)
    if not commit:
        return {"git_commit": None, "git_dirty": None}
    status = _git(["status", "--porcelain"], cwd)  # untracked (not ignored) files count too
    return {"git_commit": commit, "git_dirty": bool(status)}


def collect_environment(cwd: str | Path = ".") -> dict[str, Any]:
    """Versions of Python, TensorFlow, Keras, cvlab and NumPy, the git state and the host."""
    return {
        "python": platform.python_version(),
        "python_executable": sys.executable,
        "tensorflow": _version("tensorflow-cpu", "tensorflow"),
        "keras": _version("keras"),
        "cvlab": _version("cvlab"),
        "numpy": _version("numpy"),
        **git_state(cwd),
        "host": socket.gethostname(),
        "platform": platform.platform(),
    }
