"""Execute one run: papermill runs the notebook, the run ends recorded whatever happens.

Works in the driver process or in a worker process; it never touches the leaderboard.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import sys
import tempfile
import threading
import traceback
from pathlib import Path
from typing import TextIO

from cvlab.atomic_io import copy_atomic, write_text_atomic
from cvlab.grid.expand import RunPlan
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


def _tracked_kernel_manager(holder: dict, socket_dir: str):
    """A kernel-manager class for nbclient that hands its instance to `holder` (for the timeout
    watchdog) and talks to the kernel over local IPC sockets instead of TCP ports."""
    from jupyter_client.manager import AsyncKernelManager

    class TrackedKernelManager(AsyncKernelManager):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.transport = "ipc"
            self.ip = os.path.join(socket_dir, "kernel")
            holder["km"] = self

    return TrackedKernelManager


class _Watchdog:
    """Interrupts the kernel when the run's time is up, then kills it if it does not stop."""

    def __init__(self, holder: dict, timeout: float | None):
        self.holder = holder
        self.fired = False
        self._timers = []
        if timeout:
            self._timers.append(threading.Timer(timeout, self._interrupt))
            self._timers.append(threading.Timer(timeout + INTERRUPT_GRACE_S, self._kill))
            for timer in self._timers:
                timer.daemon = True
                timer.start()

    def _signal(self, sig: int) -> None:
        km = self.holder.get("km")
        pid = getattr(getattr(km, "provisioner", None), "pid", None)
        if pid:
            # The kernel leads its own process group: signal it with whatever it started
            # (data-loader workers, pools), falling back to the kernel alone.
            try:
                os.killpg(pid, sig)
            except (ProcessLookupError, PermissionError):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, sig)

    def _interrupt(self) -> None:
        self.fired = True
        self._signal(signal.SIGINT)

    def _kill(self) -> None:
        self._signal(signal.SIGKILL)

    def cancel(self) -> None:
        for timer in self._timers:
            timer.cancel()


# nbconvert's lab template, less the scripts it would fetch from a CDN (require.js, MathJax,
# Mermaid): the page then opens offline, with styles inlined and figures as data URIs. The cost
# is that LaTeX in markdown shows as source.
_RUN_HTML_TEMPLATE = """{%- extends 'lab/index.html.j2' -%}
{%- block html_head_js_requirejs -%}{%- endblock html_head_js_requirejs -%}
{%- block html_head_js_mathjax -%}{%- endblock html_head_js_mathjax -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
"""


def _export_html(notebook: Path, html: Path) -> None:
    """The executed notebook as one self-contained HTML page (figures embedded as data URIs)."""
    from jinja2 import DictLoader
    from nbconvert import HTMLExporter

    exporter = HTMLExporter(
        embed_images=True,
        extra_loaders=[DictLoader({"cvlab_run.html.j2": _RUN_HTML_TEMPLATE})],
        template_file="cvlab_run.html.j2",
    )
    body, _ = exporter.from_filename(str(notebook))
    write_text_atomic(html, body)


def _reset_run_dir(run_dir: Path) -> None:
    """Remove the previous attempt's outputs that would mislead (history of a failed try),
    unless the attempt left a training backup: then the run resumes and its history goes on."""
    if (run_dir / BACKUP_DIR).is_dir():
        return
    for name in (HISTORY_FILE, CURVES_FILE, HTML_FILE):
        (run_dir / name).unlink(missing_ok=True)


def prepare_record(plan: RunPlan, workspace: Workspace) -> RunRecord:
    run_dir = workspace.run_dir(plan.grid, plan.run_id)
    run_dir.mkdir(parents=True, exist_ok=True)
    _reset_run_dir(run_dir)
    try:
        notebook = str(plan.notebook.relative_to(workspace.root))
    except ValueError:
        notebook = str(plan.notebook)
    record = RunRecord(
        run_id=plan.run_id,
        name=plan.name,
        grid=plan.grid,
        notebook=notebook,
        params=dict(plan.params),
        seed=plan.seed,
        status="running",
        started_at=utc_now(),
        environment=collect_environment(plan.notebook.parent),
    )
    record.save(run_dir)
    return record


def execute_run(plan: RunPlan, workspace_root: str | Path, echo: bool = True) -> RunRecord:
    """Run `plan` with papermill and return its final record (also written to `record.json`).

    Status: `ok`, `diverged` (the notebook's run saw a NaN loss), `failed` (exception recorded
    with its traceback tail), `timeout`, or `interrupted` (Ctrl-C; re-raised after recording).
    The executed notebook and its HTML are kept in every case.
    """
    import papermill
    from papermill.exceptions import PapermillExecutionError

    workspace = Workspace.at(workspace_root)
    run_dir = workspace.run_dir(plan.grid, plan.run_id)
    initial = prepare_record(plan, workspace)
    output = run_dir / NOTEBOOK_FILE
    log_path = workspace.run_log(plan.grid, plan.run_id)
    log_path.parent.mkdir(parents=True, exist_ok=True)

    status: RunStatus = "ok"
    error: RunError | None = None
    # TensorFlow's C++ start-up chatter goes to the kernel's stderr, i.e. the terminal.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    holder: dict = {}
    watchdog = _Watchdog(holder, plan.timeout)
    interrupted: BaseException | None = None
    with (
        open(log_path, "a", encoding="utf-8") as log,
        tempfile.TemporaryDirectory(prefix="cvlab-k") as socket_dir,
    ):
        log.write(
            f"=== {utc_now().isoformat()} run {plan.run_id} ({plan.name}) of grid {plan.grid}\n"
        )
        tee = _Tee(log, f"[{plan.name}]" if echo else None)
        try:
            papermill.execute_notebook(
                str(plan.notebook),
                str(output),
                parameters={**plan.params, "run_dir": str(run_dir)},
                kernel_name=plan.kernel,
                cwd=str(plan.notebook.parent),
                progress_bar=False,
                log_output=False,
                stdout_file=tee,
                stderr_file=tee,
                kernel_manager_class=_tracked_kernel_manager(holder, socket_dir),
                # The notebook has finished and its files are written: a graceful shutdown
                # would only add a second or so per run.
                shutdown_kernel="immediate",
            )
        except PapermillExecutionError as exc:
            status = "timeout" if watchdog.fired else "failed"
            error = RunError(
                type=exc.ename,
                message=strip_ansi(exc.evalue),
                traceback=traceback_tail(exc.traceback),
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
            watchdog.cancel()  # nbclient owns the kernel and has shut it down by now
        if status == "timeout" and error is not None:
            error.message = (
                f"run exceeded its {plan.timeout:g} s timeout ({error.type}: {error.message})"
            )
        record = RunRecord.load_if_present(run_dir)
        if record is None:  # the notebook deleted or damaged it: keep what the runner knows
            record = initial
            record.notes.append("record.json was missing or unreadable after the run; rebuilt")
        if record.status == "diverged" and status in {"ok", "failed"}:
            status = "diverged"  # a NaN loss explains what followed; the error stays attached
        elif status == "ok" and record.status == "failed":
            status, error = "failed", record.error  # the notebook ended the run with run.fail
        record.finish(status, error)
        _finish_outputs(record, run_dir, output, workspace)
        record.save(run_dir)
        log.write(f"=== {utc_now().isoformat()} run {plan.run_id} ended: {status}\n")
        if error:
            log.write(f"{error.type}: {error.message}\n{error.traceback}\n")
    if interrupted is not None:
        raise interrupted
    return record


def _finish_outputs(record: RunRecord, run_dir: Path, output: Path, workspace: Workspace) -> None:
    if output.exists():
        record.artifacts["notebook"] = NOTEBOOK_FILE
        try:
            _export_html(output, run_dir / HTML_FILE)
            record.artifacts["html"] = HTML_FILE
        except Exception as exc:  # noqa: BLE001 - the run's own result matters more than its HTML
            record.notes.append(f"HTML export failed: {type(exc).__name__}: {exc}")
    curves = run_dir / CURVES_FILE
    if curves.exists():
        copy_atomic(curves, workspace.grid_figs(record.grid) / f"{record.run_id}-curves.png")
