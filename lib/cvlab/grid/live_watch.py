"""LiveWatch: the driver's thread that keeps the live page's data current while a grid runs.

It polls the record.json and history.csv of the runs the driver has handed out (about once a
second: a stat per file, whether runs execute in this process, in worker processes or on Dask
with --shared-out) and, when one changed, rewrites the grid's snapshot and the merged
`experiments/live.js` / `live.json` (cvlab.report.live_data). Polling rather than a message
from the kernel: the kernel already writes these files at each epoch's end, on every executor,
so nothing new has to travel from it.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from cvlab.grid.expand import RunPlan
from cvlab.report.live_data import HEARTBEAT_S, grid_snapshot, write_grid_snapshot, write_live
from cvlab.report.page import ensure_leaderboard_page
from cvlab.runs.record import HISTORY_FILE, RECORD_FILE
from cvlab.workspace import Workspace

POLL_S = 1.0


def _mtime(path: Path) -> int:
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return 0


class LiveWatch:
    """`start()` the thread, `stop()` it: the last snapshot says the driver has ended."""

    def __init__(
        self,
        ws: Workspace,
        grid: str,
        handed: Callable[[], list[RunPlan]],
        poll_s: float = POLL_S,
    ):
        self.ws, self.grid, self._handed, self.poll_s = ws, grid, handed, poll_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._work, name="cvlab-live", daemon=True)
        self._seen: tuple[int, ...] = ()
        self._written = 0.0
        self.writes = 0  # snapshots written (the tests and the bench read it)

    def _run_dirs(self) -> list[Path]:
        return [self.ws.run_dir(p.grid, p.run_id) for p in list(self._handed())]

    @staticmethod
    def _stamps(dirs: list[Path]) -> tuple[int, ...]:
        return tuple(_mtime(d / name) for d in dirs for name in (RECORD_FILE, HISTORY_FILE))

    def write(self, *, ended: bool = False) -> None:
        """Write the grid's snapshot and the merged live files now."""
        dirs = self._run_dirs()
        self._seen = self._stamps(dirs)  # taken first: a change while writing is seen next time
        snapshot = grid_snapshot(self.ws, self.grid, dirs, ended=ended)
        write_grid_snapshot(self.ws, snapshot)
        write_live(self.ws)
        self._written = time.monotonic()
        self.writes += 1

    def poll(self) -> bool:
        """Write when a handed-out run's files changed, or the heartbeat is due; True if so."""
        if (
            self._stamps(self._run_dirs()) == self._seen
            and time.monotonic() - self._written < HEARTBEAT_S
        ):
            return False
        self.write()
        return True

    def _work(self) -> None:
        while not self._stop.wait(self.poll_s):
            try:
                self.poll()
            except Exception as exc:  # noqa: BLE001 - the live page must never stop a grid
                print(f"warning: the live page data could not be written: {exc}", file=sys.stderr)
                self._stop.wait(HEARTBEAT_S)

    def start(self) -> LiveWatch:
        """Make sure there is a page to open (a first grid has none yet), then watch."""
        try:
            ensure_leaderboard_page(self.ws)
            self.write()
        except Exception as exc:  # noqa: BLE001 - as below
            print(f"warning: the live page could not be prepared: {exc}", file=sys.stderr)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop polling and write the final snapshot (every run in its final state)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        try:
            self.write(ended=True)
        except Exception as exc:  # noqa: BLE001 - as above
            print(f"warning: the live page data could not be written: {exc}", file=sys.stderr)
