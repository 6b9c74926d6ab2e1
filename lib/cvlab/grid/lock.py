"""One driver per grid and output folder: a file lock (the `filelock` package) beside the grid's
log, with a note of who holds it, so a second driver stops at once and says whom it waits for.

The lock is an OS lock on an open file: it goes away with the process that holds it, even when
that process is killed (SIGKILL), so a crash never leaves a stale lock behind.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
from pathlib import Path

from filelock import FileLock, Timeout

from cvlab.atomic_io import write_json_atomic
from cvlab.errors import GridLockedError
from cvlab.runs.record import utc_now
from cvlab.workspace import Workspace


def lock_path(ws: Workspace, grid: str) -> Path:
    return ws.logs / grid / "grid.lock"


class GridLock:
    """`with GridLock(ws, grid):` holds the grid's lock, or raises GridLockedError at once."""

    def __init__(self, ws: Workspace, grid: str):
        self.path = lock_path(ws, grid)
        self.owner_path = self.path.with_name(self.path.name + ".owner.json")
        self._lock = FileLock(str(self.path), timeout=0)

    def _holder(self) -> str:
        try:
            owner = json.loads(self.owner_path.read_text(encoding="utf-8"))
            return (
                f"PID {owner.get('pid')} on host {owner.get('host')}, since "
                f"{owner.get('since')} ({owner.get('command')})"
            )
        except (OSError, ValueError, AttributeError):
            return "a process that has not said who it is yet"

    def acquire(self) -> GridLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._lock.acquire()
        except Timeout:
            raise GridLockedError(
                f"grid lock {self.path} is held by {self._holder()}: another run_grid.py is "
                "running this grid into the same output folder. Wait for it to finish (or stop "
                "it), or give another --out; nothing was run"
            ) from None
        write_json_atomic(
            self.owner_path,
            {
                "pid": os.getpid(),
                "host": socket.gethostname(),
                "since": utc_now().isoformat(),
                "command": " ".join(sys.argv),
            },
        )
        return self

    def release(self) -> None:
        if self._lock.is_locked:
            with contextlib.suppress(OSError):
                self.owner_path.unlink(missing_ok=True)
            self._lock.release()

    def __enter__(self) -> GridLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()
