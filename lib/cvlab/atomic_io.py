"""Atomic file writes: a reader (or a crash) sees the old file or the new one, never half.

A full disk (or quota) is reported as `DiskFullError`, naming the file; the temporary file is
removed and the previous version of the file is left as it was.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cvlab.errors import DiskFullError

_NO_SPACE = {errno.ENOSPC, errno.EDQUOT}


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _fsync_dir(folder: Path) -> None:
    """Make a rename in `folder` durable (best effort: not every file system allows it)."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def write_atomic(path: str | Path, writer: Callable[[Path], None]) -> Path:
    """Call `writer(tmp_path)` on a temporary file beside `path`, then rename it into place."""
    path = Path(path)
    tmp_path: Path | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
        tmp_path = Path(tmp)
        writer(tmp_path)
        # mkstemp makes the file private (0600); give it the mode a plain open() would.
        os.chmod(tmp_path, 0o666 & ~_umask())
        with open(tmp_path, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp_path, path)
        tmp_path = None
        _fsync_dir(path.parent)
    except OSError as exc:
        if exc.errno in _NO_SPACE and not isinstance(exc, DiskFullError):
            raise DiskFullError(
                exc.errno,
                f"no space left on the device while writing {path} ({os.strerror(exc.errno)}); "
                f"the previous version of the file, if any, is intact. Free space on "
                f"{path.parent} (or write elsewhere with --out) and run the same command again",
            ) from exc
        raise
    finally:
        if tmp_path is not None:
            with contextlib.suppress(OSError):
                tmp_path.unlink(missing_ok=True)
    return path


def write_text_atomic(path: str | Path, text: str) -> Path:
    return write_atomic(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def write_bytes_atomic(path: str | Path, data: bytes) -> Path:
    return write_atomic(path, lambda tmp: tmp.write_bytes(data))


def write_json_atomic(path: str | Path, obj: Any) -> Path:
    return write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n")


def copy_atomic(src: str | Path, dst: str | Path) -> Path:
    return write_atomic(dst, lambda tmp: shutil.copyfile(src, tmp))
