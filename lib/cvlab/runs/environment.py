"""Where a run ran: library versions, git commit and host, the Keras backend, the device and
the precision, for the run record."""

from __future__ import annotations

import platform
import socket
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

from cvlab.backends import chosen_backend, describe_device


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


def runtime_environment() -> dict[str, Any]:
    """The Keras backend, device ("NVIDIA H200", or "CPU") and dtype policy ("float32",
    "mixed_bfloat16") of this process, once it has imported Keras; {} before (asking would
    import Keras, and TensorFlow with it)."""
    keras = sys.modules.get("keras")
    if keras is None or not hasattr(keras, "config"):
        return {}
    try:
        return {
            "backend": keras.config.backend(),
            "device": describe_device(),
            "precision": keras.mixed_precision.global_policy().name,
        }
    except Exception:  # noqa: BLE001 - a half-imported or broken backend: the record still saves
        return {"backend": keras.config.backend()}


def collect_environment(cwd: str | Path = ".", backend: str | None = None) -> dict[str, Any]:
    """Versions of Python, the three Keras backends' frameworks, Keras, cvlab and NumPy, the git
    state and the host; the Keras backend (`backend`, else this process's), and the device and
    precision when this process runs Keras already (see `runtime_environment`)."""
    return {
        "backend": chosen_backend(backend),
        "device": None,
        "precision": None,
        **runtime_environment(),
        "python": platform.python_version(),
        "python_executable": sys.executable,
        "tensorflow": _version("tensorflow-cpu", "tensorflow"),
        "jax": _version("jax"),
        "jaxlib": _version("jaxlib"),
        "torch": _version("torch"),
        "keras": _version("keras"),
        "cvlab": _version("cvlab"),
        "numpy": _version("numpy"),
        **git_state(cwd),
        "host": socket.gethostname(),
        "platform": platform.platform(),
    }
