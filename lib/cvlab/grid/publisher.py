"""The driver's background worker: for each finished run, its `run.html`, its leaderboard row
and the CSV export, off the critical path of the next run; `close()` waits for all of it."""

from __future__ import annotations

import queue
import sys
import threading

from cvlab.grid.html_export import add_run_html, needs_html
from cvlab.report.store import LeaderboardStore
from cvlab.runs.record import RunRecord
from cvlab.runs.tensorboard_log import write_session
from cvlab.workspace import Workspace

_STOP = None


class RunPublisher:
    """A thread that completes finished runs in the order they are submitted."""

    def __init__(self, ws: Workspace):
        # Imported in the caller's thread: a package imported for the first time by two threads
        # at once (this one and papermill's in the caller) can be met half initialized.
        import nbconvert  # noqa: F401

        self.ws = ws
        self._store = LeaderboardStore(ws.leaderboard_db)  # one connection per call: thread-safe
        self._queue: queue.Queue[RunRecord | None] = queue.Queue()
        self._thread = threading.Thread(target=self._work, name="cvlab-publisher", daemon=True)
        self._thread.start()

    def submit(self, record: RunRecord) -> None:
        """Queue a finished run: export its HTML if it lacks one, then update the leaderboard."""
        self._queue.put(record)

    def close(self) -> None:
        """Wait until every submitted run is complete, then stop the thread."""
        if self._thread.is_alive():
            self._queue.put(_STOP)
            self._thread.join()

    def _work(self) -> None:
        while (record := self._queue.get()) is not _STOP:
            try:
                self._complete(record)
                if self._queue.empty():  # the CSV follows the store, without a rewrite per run
                    self._store.export_csv(self.ws.leaderboard_csv)
            except Exception as exc:  # noqa: BLE001 - one run's problem must not stop the rest
                print(
                    f"warning: run {record.run_id} of grid {record.grid} could not be published "
                    f"({type(exc).__name__}: {exc}); rebuild with: run_grid.py --leaderboard",
                    file=sys.stderr,
                )

    def _complete(self, record: RunRecord) -> None:
        run_dir = self.ws.run_dir(record.grid, record.run_id)
        # The record on disk is the one to extend: the caller may still be reading its copy.
        record = RunRecord.load_if_present(run_dir) or record.model_copy(deep=True)
        if needs_html(record, run_dir):
            add_run_html(record, run_dir)
            record.save(run_dir)
        self._store.upsert([record])
        # TensorBoard's HParams session of the run: parameters and the grid's rank metric.
        grid = self._store.grids().get(record.grid, {})
        write_session(run_dir, record, grid.get("rank_metric"), grid.get("rank_mode"))


def runs_missing_html(ws: Workspace, records: list[RunRecord]) -> list[RunRecord]:
    """Those of `records` that ended but whose executed notebook has no HTML page yet: a driver
    stopped before its background worker got to them."""
    return [r for r in records if needs_html(r, ws.run_dir(r.grid, r.run_id))]
