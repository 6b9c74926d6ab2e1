"""Run many plans: in this process (one worker) or in a pool of worker processes.

Finished records come back to the caller (the driver), which alone writes the leaderboard and
exports each run's HTML. With prewarm, each worker (this process, or each worker process) keeps
one warm spare kernel: the next run's kernel starts and imports while the current run executes.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import multiprocessing.util
import os
import signal
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from pathlib import Path

from cvlab.grid.execute import execute_run
from cvlab.grid.expand import RunPlan
from cvlab.grid.kernel_pool import KernelLease, KernelPool, KernelSpec
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


def _kernel_spec(plan: RunPlan, prewarm: tuple[str, ...]) -> KernelSpec:
    return KernelSpec.current(plan.kernel, plan.notebook.parent, prewarm)


def _lease(
    pool: KernelPool, plan: RunPlan, next_plan: RunPlan | None, prewarm: tuple[str, ...]
) -> KernelLease:
    """This run's kernel from `pool`, and the next run's spare set going."""
    next_spec = _kernel_spec(next_plan, prewarm) if next_plan is not None else None
    return pool.acquire(_kernel_spec(plan, prewarm), next_spec)


# A worker process's pool: it outlives one task, so the spare started during a run serves the
# worker's next run. Closed (its spare killed) when the worker process exits.
_worker_pool: KernelPool | None = None


def _execute_in_worker(
    plan: RunPlan,
    workspace_root: str,
    echo: bool,
    prewarm: tuple[str, ...] | None,
    next_plan: RunPlan | None,
) -> RunRecord:
    """execute_run in a worker process, with this process's warm spare when prewarm is on."""
    global _worker_pool
    if prewarm is None:
        return execute_run(plan, workspace_root, echo, export_html=False)
    if _worker_pool is None:
        _worker_pool = KernelPool()
        # Process pool workers leave through multiprocessing's exit path, not atexit.
        multiprocessing.util.Finalize(_worker_pool, _worker_pool.close, exitpriority=10)
    lease = _lease(_worker_pool, plan, next_plan, prewarm)
    return execute_run(plan, workspace_root, echo, kernel=lease, export_html=False)


def run_plans(
    plans: list[RunPlan],
    workspace_root: str | Path,
    workers: int = 1,
    echo: bool = True,
    prewarm: tuple[str, ...] | None = None,
) -> Iterator[RunRecord]:
    """Execute `plans`, yielding each final record as soon as its run ends (any order).

    `prewarm`: the import statements a warm kernel runs before its run; None starts every run's
    kernel cold when the run begins. Runs' HTML pages are left to the caller (`run.ipynb` is there).
    """
    if workers <= 1:
        pool = KernelPool() if prewarm is not None else None
        try:
            for i, plan in enumerate(plans):
                lease = None
                if pool is not None:
                    next_plan = plans[i + 1] if i + 1 < len(plans) else None
                    lease = _lease(pool, plan, next_plan, prewarm or ())
                yield execute_run(plan, workspace_root, echo, kernel=lease, export_html=False)
        finally:
            if pool is not None:
                pool.close()
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
                next_plan = queue[-1] if queue else None
                future = pool.submit(
                    _execute_in_worker, plan, str(workspace_root), echo, prewarm, next_plan
                )
                pending[future] = plan
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
