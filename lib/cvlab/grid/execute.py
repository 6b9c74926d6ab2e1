"""Execute one run: papermill runs the notebook, the run ends recorded whatever happens.

Works in the driver process or in a worker process; it never touches the leaderboard.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import sys
import tempfile
import threading
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from cvlab.atomic_io import copy_atomic
from cvlab.backends import backend_env
from cvlab.grid.expand import RunPlan
from cvlab.grid.html_export import add_run_html
from cvlab.grid.kernel_pool import KernelLease
from cvlab.grid.kernels import (
    ipc_kernel_manager_class,
    kernel_pid,
    prepare_kernel_environment,
    read_kernel_output,
)
from cvlab.runs.environment import collect_environment
from cvlab.runs.record import (
    BACKUP_DIR,
    CURVES_FILE,
    HISTORY_FILE,
    HTML_FILE,
    NOTEBOOK_FILE,
    RunError,
    RunRecord,
    RunStatus,
    utc_now,
)
from cvlab.workspace import Workspace

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
TRACEBACK_TAIL_LINES = 40
# After a timeout the kernel gets SIGINT (a KeyboardInterrupt in the running cell, so the
# notebook is saved with the cell that was cut); if it does not stop in this many seconds, SIGKILL.
INTERRUPT_GRACE_S = 10.0


def strip_ansi(text: str) -> str:
    return _ANSI.sub("", text)


def traceback_tail(lines: list[str] | str, n: int = TRACEBACK_TAIL_LINES) -> str:
    text = strip_ansi("\n".join(lines) if isinstance(lines, list) else lines)
    return "\n".join(text.rstrip().splitlines()[-n:])


class _Tee:
    """File-like sink for the kernel's output: all of it to the run log, progress lines to the terminal."""

    def __init__(self, log: TextIO, echo_prefix: str | None):
        self.log = log
        self.echo_prefix = echo_prefix
        self._partial = ""

    def write(self, text: str) -> int:
        self.log.write(text)
        if self.echo_prefix is not None:
            self._partial += text
            *lines, self._partial = self._partial.split("\n")
            for line in lines:
                if line.startswith(self.echo_prefix):
                    from tqdm import tqdm

                    tqdm.write(line, file=sys.stdout)
        return len(text)

    def flush(self) -> None:
        self.log.flush()


@dataclass
class RunKernel:
    """The kernel of a run executing in this process, as the watchdog, `interrupt_active_runs`
    and the run itself share it."""

    km: Any = None  # its jupyter_client KernelManager, once started (warm, or by nbclient)
    cancelled: bool = False  # its driver stopped: an interrupt now means `interrupted`

    def signal(self, sig: int) -> None:
        """Send `sig` to the kernel's process group (data-loader workers, pools), falling back
        to the kernel alone; nothing when it has not started."""
        pid = kernel_pid(self.km)
        if pid:
            try:
                os.killpg(pid, sig)
            except (ProcessLookupError, PermissionError):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, sig)


class _Watchdog:
    """Interrupts the kernel when the run's time is up, then kills it if it does not stop."""

    def __init__(self, kernel: RunKernel, timeout: float | None):
        self.kernel = kernel
        self.fired = False
        self._timers = []
        if timeout:
            self._timers.append(threading.Timer(timeout, self._interrupt))
            self._timers.append(threading.Timer(timeout + INTERRUPT_GRACE_S, self._kill))
            for timer in self._timers:
                timer.daemon = True
                timer.start()

    def _interrupt(self) -> None:
        self.fired = True
        self.kernel.signal(signal.SIGINT)

    def _kill(self) -> None:
        self.kernel.signal(signal.SIGKILL)

    def cancel(self) -> None:
        for timer in self._timers:
            timer.cancel()


# Runs executing in this process (run id -> its kernel), so that a Dask worker can interrupt
# them when their driver stops: a task running in a worker thread cannot be cancelled otherwise.
_ACTIVE: dict[str, RunKernel] = {}
_ACTIVE_LOCK = threading.Lock()


def interrupt_active_runs(run_ids: set[str] | None = None) -> list[str]:
    """Interrupt the kernels of the runs executing in this process (those of `run_ids`, or all):
    each ends `interrupted`, its notebook saved up to the cell that was cut. Returns their ids."""
    with _ACTIVE_LOCK:
        chosen = {k: v for k, v in _ACTIVE.items() if run_ids is None or k in run_ids}
    for kernel in chosen.values():
        kernel.cancelled = True
        kernel.signal(signal.SIGINT)
    return sorted(chosen)


def notebook_label(notebook: Path, workspace: Workspace) -> str:
    """How a record names its notebook: relative to the output folder when inside it."""
    try:
        return str(notebook.relative_to(workspace.root))
    except ValueError:
        return str(notebook)


def _reset_run_dir(run_dir: Path) -> None:
    """Remove the previous attempt's outputs that would mislead (history of a failed try),
    unless the attempt left a training backup: then the run resumes and its history goes on."""
    if (run_dir / BACKUP_DIR).is_dir():
        return
    for name in (HISTORY_FILE, CURVES_FILE, HTML_FILE):
        (run_dir / name).unlink(missing_ok=True)


def fresh_record(plan: RunPlan, workspace: Workspace, **fields) -> RunRecord:
    """The run's folder cleared of a previous attempt's outputs and a new `record.json` for it,
    from the plan plus `fields` (status, start time, ...)."""
    run_dir = workspace.run_dir(plan.grid, plan.run_id)
    run_dir.mkdir(parents=True, exist_ok=True)
    _reset_run_dir(run_dir)
    record = RunRecord(
        run_id=plan.run_id,
        name=plan.name,
        grid=plan.grid,
        notebook=notebook_label(plan.notebook, workspace),
        params=dict(plan.params),
        seed=plan.seed,
        code_digest=plan.code_digest or None,
        trial=plan.trial,
        **fields,
    )
    record.save(run_dir)
    return record


def prepare_record(plan: RunPlan, workspace: Workspace) -> RunRecord:
    return fresh_record(
        plan,
        workspace,
        status="running",
        started_at=utc_now(),
        environment=collect_environment(plan.notebook.parent, backend=plan.backend),
    )


def _log_kernel(log: TextIO, lease: KernelLease | None, plan: RunPlan) -> None:
    """Say in the run's log which kernel runs it; a fallback to a cold start also goes to stderr."""
    if lease is None:
        return
    if lease.note:
        log.write(f"kernel: {lease.note}\n")
        from tqdm import tqdm

        tqdm.write(f"warning: {plan.name} [{plan.run_id}]: {lease.note}", file=sys.stderr)
    warm = lease.warm
    if warm is not None:
        idle = time.monotonic() - warm.ready_at
        log.write(
            f"kernel: warm, pid {warm.pid}; {len(warm.spec.statements)} import statements run "
            f"in {warm.prewarm_s:.1f} s, {idle:.1f} s before this run\n"
        )
        if warm.output:
            log.write(warm.output if warm.output.endswith("\n") else warm.output + "\n")
    else:
        log.write("kernel: cold start\n")


def execute_run(
    plan: RunPlan,
    workspace_root: str | Path,
    echo: bool = True,
    *,
    kernel: KernelLease | None = None,
    export_html: bool = True,
    kernel_env: dict[str, str] | None = None,
) -> RunRecord:
    """Run `plan` with papermill and return its final record (also written to `record.json`).

    Status: `ok`, `diverged` (the notebook's run saw a NaN loss), `pruned` (the grid's pruner
    cut it at an epoch end: its notebook stops there), `failed` (exception recorded
    with its traceback tail), `timeout`, or `interrupted` (Ctrl-C; re-raised after recording).
    The executed notebook is kept in every case, and its HTML unless `export_html` is False (the
    grid driver exports it in the background). `kernel`: a lease from a KernelPool; its warm
    kernel, if any, runs this notebook and no other (a lease without one means a cold start).
    `kernel_env`: variables added to a cold kernel's environment (a warm kernel was started
    with them already: see KernelSpec.current), besides KERAS_BACKEND=`plan.backend`, which
    every kernel gets before anything in it imports Keras.
    """
    kernel_env = {**backend_env(plan.backend), **(kernel_env or {})}
    try:
        return _execute_run(plan, workspace_root, echo, kernel, export_html, kernel_env)
    finally:
        if kernel is not None and kernel.warm is not None:
            # nbclient has shut the kernel down already, unless papermill never reached it.
            kernel.warm.discard()


def _execute_run(
    plan: RunPlan,
    workspace_root: str | Path,
    echo: bool,
    kernel: KernelLease | None,
    export_html: bool,
    kernel_env: dict[str, str] | None = None,
) -> RunRecord:
    import papermill
    from papermill.exceptions import PapermillExecutionError

    from cvlab.grid.engine import ENGINE  # lazy: papermill

    workspace = Workspace.at(workspace_root)
    run_dir = workspace.run_dir(plan.grid, plan.run_id)
    warm = kernel.warm if kernel is not None else None
    initial = prepare_record(plan, workspace)
    output = run_dir / NOTEBOOK_FILE
    log_path = workspace.run_log(plan.grid, plan.run_id)
    log_path.parent.mkdir(parents=True, exist_ok=True)

    status: RunStatus = "ok"
    error: RunError | None = None
    prepare_kernel_environment()
    run_kernel = RunKernel()
    with _ACTIVE_LOCK:
        _ACTIVE[plan.run_id] = run_kernel
    watchdog = _Watchdog(run_kernel, plan.timeout)
    interrupted: BaseException | None = None
    with (
        open(log_path, "a", encoding="utf-8") as log,
        tempfile.TemporaryDirectory(prefix="cvlab-k") as socket_dir,
    ):
        log.write(
            f"=== {utc_now().isoformat()} run {plan.run_id} ({plan.name}) of grid {plan.grid}\n"
        )
        _log_kernel(log, kernel, plan)
        log.flush()
        if warm is not None:
            run_kernel.km = warm.km
            # The warm kernel was started in the notebook's folder with this process's
            # environment (KernelSpec), as papermill would start a cold one.
            kernel_options: dict = {"km": warm.km}
        else:
            kernel_options = {
                "kernel_manager_class": ipc_kernel_manager_class(
                    socket_dir,
                    on_create=lambda km: setattr(run_kernel, "km", km),
                    extra_env=kernel_env,
                )
            }
        tee = _Tee(log, f"[{plan.name}]" if echo else None)
        try:
            papermill.execute_notebook(
                # Absolute paths: the engine's atomic writer is registered for them.
                os.path.abspath(plan.notebook),
                os.path.abspath(output),
                engine_name=ENGINE,
                parameters={**plan.params, "run_dir": str(run_dir)},
                kernel_name=plan.kernel,
                cwd=str(plan.notebook.parent),
                progress_bar=False,
                log_output=False,
                stdout_file=tee,
                stderr_file=tee,
                # The notebook has finished and its files are written: a graceful shutdown
                # would only add a second or so per run.
                shutdown_kernel="immediate",
                **kernel_options,
            )
        except PapermillExecutionError as exc:
            status = "timeout" if watchdog.fired else "failed"
            error = RunError(
                type=exc.ename,
                message=strip_ansi(exc.evalue),
                traceback=traceback_tail(exc.traceback),
            )
            if run_kernel.cancelled and not watchdog.fired:
                status = "interrupted"  # its driver stopped (interrupt_active_runs)
                error = RunError(
                    type="KeyboardInterrupt", message="the grid runner was interrupted"
                )
        except KeyboardInterrupt as exc:
            status, interrupted = "interrupted", exc
            error = RunError(type="KeyboardInterrupt", message="the grid runner was interrupted")
        except Exception as exc:  # kernel died, failed to start, papermill I/O error, ...
            status = "timeout" if watchdog.fired else "failed"
            error = RunError(
                type=type(exc).__name__,
                message=str(exc),
                traceback=traceback_tail(traceback.format_exc()),
            )
        finally:
            watchdog.cancel()  # nbclient has shut the kernel down by now
            with _ACTIVE_LOCK:
                _ACTIVE.pop(plan.run_id, None)
        if status == "timeout" and error is not None:
            error.message = (
                f"run exceeded its {plan.timeout:g} s timeout ({error.type}: {error.message})"
            )
        record = RunRecord.load_if_present(run_dir)
        if record is None:  # the notebook deleted or damaged it: keep what the runner knows
            record = initial
            record.notes.append("record.json was missing or unreadable after the run; rebuilt")
        if record.status == "pruned" and status in {"ok", "failed"}:
            # the grid's pruner cut it (RunPruned stopped the notebook): a result, no error;
            # its training backup would only resume it under --force, which trains it anew
            status, error = "pruned", None
            shutil.rmtree(run_dir / BACKUP_DIR, ignore_errors=True)
        elif record.status == "diverged" and status in {"ok", "failed"}:
            status = "diverged"  # a NaN loss explains what followed; the error stays attached
        elif status == "ok" and record.status == "failed":
            status, error = "failed", record.error  # the notebook ended the run with run.fail
        _log_kernel_output(log, warm.socket_dir.name if warm is not None else socket_dir)
        record.finish(status, error)
        _finish_outputs(record, run_dir, output, workspace, export_html)
        record.save(run_dir)
        log.write(f"=== {utc_now().isoformat()} run {plan.run_id} ended: {status}\n")
        if error:
            log.write(f"{error.type}: {error.message}\n{error.traceback}\n")
    if interrupted is not None:
        raise interrupted
    return record


def _log_kernel_output(log: TextIO, socket_dir: str) -> None:
    """Append what the run's kernel wrote to its fd 1/2 (TensorFlow's C++ start-up lines...)
    to the run's log: kept there, out of the driver's terminal."""
    text = read_kernel_output(socket_dir)
    if text:
        log.write("--- kernel stdout/stderr\n" + (text if text.endswith("\n") else text + "\n"))
        log.write("--- end of kernel stdout/stderr\n")


def _finish_outputs(
    record: RunRecord, run_dir: Path, output: Path, workspace: Workspace, export_html: bool
) -> None:
    if output.exists():
        record.artifacts["notebook"] = NOTEBOOK_FILE
        if export_html:
            add_run_html(record, run_dir)
    curves = run_dir / CURVES_FILE
    if curves.exists():
        copy_atomic(curves, workspace.grid_figs(record.grid) / f"{record.run_id}-curves.png")
