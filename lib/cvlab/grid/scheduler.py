"""Run many plans through one loop (`run_plans`) and one of three executors behind the same
interface (`RunExecutor`):

- `InlineExecutor`: in this process, one run at a time (the default; needs nothing else);
- `ProcessExecutor`: a pool of local worker processes (`--workers N`);
- `DaskExecutor`: a Dask distributed cluster (`--scheduler tcp://HOST:8786`, or `local` for a
  `LocalCluster` of `--workers` processes); Dask is imported only here, only then.

Finished records come back to the caller (the driver), which alone writes the leaderboard and
exports each run's HTML. With prewarm, each worker (this process, each worker process, each
Dask worker thread) keeps one warm spare kernel: the next run's kernel starts and imports while
the current run executes.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import multiprocessing.util
import os
import signal
import sys
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from pathlib import Path
from typing import Any

from cvlab.atomic_io import DiskFullError
from cvlab.backends import backend_env
from cvlab.errors import DaskUnavailableError
from cvlab.grid.execute import execute_run
from cvlab.grid.expand import RunPlan
from cvlab.grid.kernel_pool import KernelLease, KernelPool, KernelSpec
from cvlab.grid.plan_queue import PlanQueue
from cvlab.grid.remote import (
    GPU,
    RunOutput,
    close_worker_pools,
    interrupt_runs,
    mark_pending,
    run_on_worker,
    unpack_run,
)
from cvlab.runs.record import RunError, RunRecord
from cvlab.workspace import Workspace


def _lost_worker_record(plan: RunPlan, ws: Workspace, exc: BaseException) -> RunRecord:
    """A worker died (or its task failed) before returning: record the run as failed, keeping
    what it wrote."""
    run_dir = ws.run_dir(plan.grid, plan.run_id)
    record = RunRecord.load_if_present(run_dir) or RunRecord(
        run_id=plan.run_id, name=plan.name, grid=plan.grid, params=plan.params, seed=plan.seed
    )
    record.finish(
        "failed",
        RunError(type=type(exc).__name__, message=f"the run's worker failed or was lost: {exc}"),
    )
    record.save(run_dir)
    return record


def _kernel_spec(plan: RunPlan, prewarm: tuple[str, ...]) -> KernelSpec:
    return KernelSpec.current(plan.kernel, plan.notebook.parent, prewarm, backend_env(plan.backend))


def _lease(
    pool: KernelPool, plan: RunPlan, next_plan: RunPlan | None, prewarm: tuple[str, ...]
) -> KernelLease:
    """This run's kernel from `pool`, and the next run's spare set going."""
    next_spec = _kernel_spec(next_plan, prewarm) if next_plan is not None else None
    return pool.acquire(_kernel_spec(plan, prewarm), next_spec)


class RunExecutor:
    """Where runs execute. `run_plans` submits at most `slots` runs at a time, waits for any to
    end, takes its result, and closes the executor (interrupted or not) at the end."""

    slots: int = 1
    _closed: bool = False

    def submit(self, plan: RunPlan, next_plan: RunPlan | None) -> Any:
        raise NotImplementedError

    def wait(self, handles: Iterable[Any]) -> set[Any]:
        """Block until at least one of `handles` has ended; return those that have."""
        raise NotImplementedError

    def result(self, handle: Any, plan: RunPlan) -> RunRecord:
        """The final record of an ended run; raises if its worker was lost."""
        return handle.result()

    def close(self, interrupted: bool) -> None:
        """Stop the workers; `interrupted`: stop the runs still executing, recording them.
        Only the first call does anything."""
        if not self._closed:
            self._closed = True
            self._close(interrupted)

    def _close(self, interrupted: bool) -> None:
        pass


class InlineExecutor(RunExecutor):
    """Runs in this process, one at a time: `submit` executes the run and returns it done."""

    slots = 1

    def __init__(self, workspace_root: str | Path, echo: bool, prewarm: tuple[str, ...] | None):
        self.root, self.echo, self.prewarm = str(workspace_root), echo, prewarm
        self.pool: KernelPool | None = None

    def submit(self, plan: RunPlan, next_plan: RunPlan | None) -> Future:
        future: Future = Future()
        if self.prewarm is not None and self.pool is None:
            self.pool = KernelPool()
        lease = _lease(self.pool, plan, next_plan, self.prewarm or ()) if self.pool else None
        try:  # a KeyboardInterrupt is recorded by execute_run, then goes up to the driver
            future.set_result(
                execute_run(plan, self.root, self.echo, kernel=lease, export_html=False)
            )
        except Exception as exc:  # noqa: BLE001 - becomes a failed record, like a lost worker
            future.set_exception(exc)
        return future

    def wait(self, handles: Iterable[Any]) -> set[Any]:
        return set(handles)

    def _close(self, interrupted: bool) -> None:
        if self.pool is not None:
            self.pool.close()


# ---------------------------------------------------------------- local worker processes

# A worker process's pool: it outlives one task, so the spare started during a run serves the
# worker's next run. Closed (its spare killed) when the worker process exits.
_worker_pool: KernelPool | None = None


def _watch_parent(parent: int) -> None:
    """In a worker process: when the driver dies (even by SIGKILL), interrupt the run this
    worker executes (it is recorded `interrupted`), so no orphan goes on writing."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os.kill(os.getpid(), signal.SIGINT)

    threading.Thread(target=watch, name="cvlab-parent-watch", daemon=True).start()


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


class ProcessExecutor(RunExecutor):
    """`workers` local processes; at most `workers` runs are handed to the pool at a time (the
    pool's own queue would start a queued run even after Ctrl-C, and nothing could cancel it)."""

    def __init__(
        self, workspace_root: str | Path, workers: int, echo: bool, prewarm: tuple[str, ...] | None
    ):
        self.root, self.echo, self.prewarm, self.slots = str(workspace_root), echo, prewarm, workers
        # "spawn": TensorFlow and ZeroMQ threads in the driver must not be forked into workers.
        self.pool = ProcessPoolExecutor(
            max_workers=workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_watch_parent,
            initargs=(os.getpid(),),
        )

    def submit(self, plan: RunPlan, next_plan: RunPlan | None) -> Future:
        return self.pool.submit(
            _execute_in_worker, plan, self.root, self.echo, self.prewarm, next_plan
        )

    def wait(self, handles: Iterable[Any]) -> set[Any]:
        done, _ = wait(list(handles), return_when=FIRST_COMPLETED)
        return done

    def _close(self, interrupted: bool) -> None:
        if interrupted:
            # Pass the interrupt on to the workers (a Ctrl-C in a terminal reaches them already;
            # a signal sent to the driver alone does not), so each records its run as
            # interrupted and stops. The pool has no public way to list its processes.
            for process in list((getattr(self.pool, "_processes", None) or {}).values()):
                with contextlib.suppress(ProcessLookupError, TypeError):
                    os.kill(process.pid, signal.SIGINT)
        self.pool.shutdown(wait=True, cancel_futures=interrupted)


# ---------------------------------------------------------------- Dask


# How long to wait for a Dask scheduler to answer before giving up (exit status 2).
DASK_CONNECT_TIMEOUT_S = 20.0


def connect_dask(address: str, workers: int, timeout_s: float | None = None):
    """A Dask client: to the scheduler at `address`, or to a new LocalCluster of `workers`
    single-threaded processes for `address == "local"`. Returns (client, cluster or None)."""
    try:
        import distributed
    except ImportError:
        raise DaskUnavailableError(
            "--scheduler needs Dask distributed, which is not installed: "
            "pip install 'cvlab[dask]' (or drop --scheduler to run on this machine)"
        ) from None
    timeout_s = DASK_CONNECT_TIMEOUT_S if timeout_s is None else timeout_s
    if address == "local":
        cluster = distributed.LocalCluster(
            n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0"
        )
        return distributed.Client(cluster), cluster
    try:
        return distributed.Client(address, timeout=timeout_s), None
    except (OSError, TimeoutError) as exc:
        raise DaskUnavailableError(
            f"--scheduler {address}: no Dask scheduler answered within {timeout_s:g} s "
            f"({type(exc).__name__}: {exc}). Start one with `dask scheduler` and workers with "
            "`dask worker ADDRESS` (docs/dask.md), or check the address and firewall"
        ) from None


def check_shared_out(client, root: Path) -> None:
    """--shared-out: every worker must see the output folder at the driver's path."""
    seen = client.run(os.path.isdir, str(root))
    blind = sorted(worker for worker, ok in seen.items() if not ok)
    if blind:
        raise DaskUnavailableError(
            f"--shared-out: workers {', '.join(blind)} do not see {root}. Fix: mount the output "
            "folder at the same path on every worker, or leave out --shared-out to have the "
            "files sent back"
        )


def dask_workers_with(client, resource: str) -> list[str]:
    return [
        address
        for address, info in client.scheduler_info()["workers"].items()
        if info.get("resources", {}).get(resource)
    ]


class DaskExecutor(RunExecutor):
    """Runs as tasks of a Dask cluster, all submitted at once (Dask balances them); each run's
    record, and in returned mode its files, come back to the driver (see cvlab.grid.remote)."""

    slots = sys.maxsize

    def __init__(
        self,
        client,
        workspace_root: str | Path,
        echo: bool,
        prewarm: tuple[str, ...] | None,
        *,
        shared_out: bool = False,
        gpu: bool = False,
        cluster=None,
    ):
        self.client, self.cluster = client, cluster
        self.ws = Workspace.at(workspace_root)
        self.echo, self.prewarm, self.shared_out, self.gpu = echo, prewarm, shared_out, gpu
        self._token = uuid.uuid4().hex[:8]
        self._sources: dict[Path, bytes] = {}
        self._pending: dict[Any, RunPlan] = {}

    def submit(self, plan: RunPlan, next_plan: RunPlan | None) -> Any:
        if not self.shared_out:
            mark_pending(self.ws, plan)
        if plan.notebook not in self._sources:
            self._sources[plan.notebook] = plan.notebook.read_bytes()
        future = self.client.submit(
            run_on_worker,
            plan,
            str(self.ws.root),
            self.echo,
            self.prewarm,
            next_plan is not None,
            self.shared_out,
            self.gpu,
            self._sources[plan.notebook],
            key=f"cvlab-{plan.grid}-{plan.run_id}-{self._token}",
            pure=False,
            resources={GPU: 1} if self.gpu else None,
        )
        self._pending[future] = plan
        return future

    def wait(self, handles: Iterable[Any]) -> set[Any]:
        from distributed import wait as dask_wait

        done, _ = dask_wait(list(handles), return_when="FIRST_COMPLETED")
        return set(done)

    def result(self, handle: Any, plan: RunPlan) -> RunRecord:
        self._pending.pop(handle, None)
        outcome = handle.result()
        if isinstance(outcome, RunOutput):
            return unpack_run(self.ws, plan, outcome)
        return outcome

    def _close(self, interrupted: bool) -> None:
        try:
            if interrupted and self._pending:
                self.client.cancel(list(self._pending))
                # A task already executing cannot be cancelled: interrupt its kernel, so it
                # ends `interrupted` (and, shared, writes that down) instead of running on.
                ids = [plan.run_id for plan in self._pending.values()]
                with contextlib.suppress(Exception):
                    self.client.run(interrupt_runs, ids)
            with contextlib.suppress(Exception):
                self.client.run(close_worker_pools)
        finally:
            self.client.close()
            if self.cluster is not None:
                self.cluster.close()


# ---------------------------------------------------------------- the one loop


def make_executor(
    workspace_root: str | Path,
    workers: int = 1,
    echo: bool = True,
    prewarm: tuple[str, ...] | None = None,
    *,
    scheduler: str | None = None,
    shared_out: bool = False,
) -> RunExecutor:
    """The executor for `workers` local runs at once, or for the Dask cluster at `scheduler`
    (`local`: a LocalCluster of `workers` processes). Raises DaskUnavailableError when Dask is
    not installed, its scheduler does not answer, or (`shared_out`) a worker cannot see the
    output folder: before any run starts."""
    if scheduler is None:
        if workers <= 1:
            return InlineExecutor(workspace_root, echo, prewarm)
        return ProcessExecutor(workspace_root, workers, echo, prewarm)

    client, cluster = connect_dask(scheduler, workers)
    try:
        if shared_out:
            check_shared_out(client, Workspace.at(workspace_root).root)
        gpu = bool(dask_workers_with(client, GPU))
    except BaseException:
        client.close()
        if cluster is not None:
            cluster.close()
        raise
    where = "a local Dask cluster" if cluster is not None else f"Dask at {scheduler}"
    mode = "writing into --out (shared)" if shared_out else "sending files back"
    print(f"executing on {where}, workers {mode}" + (f"; one {GPU} per run" if gpu else ""))
    return DaskExecutor(
        client,
        workspace_root,
        echo,
        prewarm,
        shared_out=shared_out,
        gpu=gpu,
        cluster=cluster,
    )


def run_plans(
    plans: list[RunPlan] | PlanQueue,
    workspace_root: str | Path,
    workers: int = 1,
    echo: bool = True,
    prewarm: tuple[str, ...] | None = None,
    executor: RunExecutor | None = None,
) -> Iterator[RunRecord]:
    """Execute `plans`, yielding each final record as soon as its run ends (any order).

    `executor`: where the runs execute (default: this process for one worker, else a pool of
    `workers` processes). `prewarm`: the import statements a warm kernel runs before its run;
    None starts every run's kernel cold when the run begins. Runs' HTML pages are left to the
    caller (`run.ipynb` is there). The executor is closed at the end; if the caller stops early
    (Ctrl-C, or closing this generator), the runs still executing are interrupted and recorded.
    """
    ws = Workspace.at(workspace_root)
    if executor is None:
        executor = make_executor(workspace_root, workers, echo, prewarm)
    queue = plans if isinstance(plans, PlanQueue) else PlanQueue(plans)
    pending: dict[Any, RunPlan] = {}
    finished = False
    try:
        while True:
            while len(pending) < executor.slots and (plan := queue.pop()) is not None:
                pending[executor.submit(plan, queue.peek())] = plan
            if not pending:
                break
            for handle in executor.wait(list(pending)):
                plan = pending.pop(handle)
                try:
                    record = executor.result(handle, plan)
                except (KeyboardInterrupt, DiskFullError):
                    raise  # a full disk would fail every run: the driver stops, saying so
                except Exception as exc:  # noqa: BLE001 - BrokenProcessPool, KilledWorker, ...
                    record = _lost_worker_record(plan, ws, exc)
                queue.done(record)  # a search learns from it before sampling the next run
                yield record
        finished = True
    finally:
        executor.close(interrupted=not finished)
