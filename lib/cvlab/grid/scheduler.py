"""Run many plans: in this process (one worker) or in a pool of worker processes.

Finished records come back to the caller (the driver), which alone writes the leaderboard.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from pathlib import Path

from cvlab.grid.execute import execute_run
from cvlab.grid.expand import RunPlan
from cvlab.runs.record import RunError, RunRecord
from cvlab.workspace import Workspace


def _lost_worker_record(plan: RunPlan, ws: Workspace, exc: BaseException) -> RunRecord:
    """A worker process died before returning: record the run as failed, keep what it wrote."""
    run_dir = ws.run_dir(plan.grid, plan.run_id)
    record = RunRecord.load_if_present(run_dir) or RunRecord(
        run_id=plan.run_id, name=plan.name, grid=plan.grid, params=plan.params, seed=plan.seed
    )
    record.finish(
        "failed", RunError(type=type(exc).__name__, message=f"worker process lost: {exc}")
    )
    record.save(run_dir)
    return record


def run_plans(
    plans: list[RunPlan],
    workspace_root: str | Path,
    workers: int = 1,
    echo: bool = True,
) -> Iterator[RunRecord]:
    """Execute `plans`, yielding each final record as soon as its run ends (any order)."""
    if workers <= 1:
        for plan in plans:
            yield execute_run(plan, workspace_root, echo)
        return
    ws = Workspace.at(workspace_root)
    # "spawn": TensorFlow and ZeroMQ threads in the driver must not be forked into workers.
    ctx = multiprocessing.get_context("spawn")
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=ctx)
    queue = list(reversed(plans))
    pending: dict[Future, RunPlan] = {}
    finished = False
    try:
        # At most `workers` runs are handed to the pool at a time: the executor's own queue
        # would start a queued run even after Ctrl-C, and nothing could cancel it.
        while queue or pending:
            while queue and len(pending) < workers:
                plan = queue.pop()
                pending[pool.submit(execute_run, plan, str(workspace_root), echo)] = plan
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                plan = pending.pop(future)
                try:
                    yield future.result()
                except KeyboardInterrupt:
                    raise
                except Exception as exc:  # noqa: BLE001 - BrokenProcessPool and the like
                    yield _lost_worker_record(plan, ws, exc)
        finished = True
    finally:
        if finished:
            pool.shutdown(wait=True)
        else:
            # Interrupted: pass the interrupt on to the workers (a Ctrl-C in a terminal reaches
            # them already; a signal sent to the driver alone does not), so each records its run
            # as interrupted and stops. The pool has no public way to list its processes.
            for process in list((getattr(pool, "_processes", None) or {}).values()):
                with contextlib.suppress(ProcessLookupError, TypeError):
                    os.kill(process.pid, signal.SIGINT)
            pool.shutdown(wait=True, cancel_futures=True)
