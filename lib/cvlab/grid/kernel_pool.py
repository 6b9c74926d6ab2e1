"""One warm spare kernel: while run k executes, the kernel for run k+1 starts and imports the
notebook's modules in the background. Each spare serves exactly one run, so runs stay isolated."""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from jupyter_core.utils import run_sync

from cvlab.errors import KernelStartError
from cvlab.grid.kernels import (
    ipc_kernel_manager_class,
    kernel_arguments,
    kernel_pid,
    prepare_kernel_environment,
)
from cvlab.grid.prewarm import kernel_code, parse_result

START_TIMEOUT_S = 60.0  # as papermill's default start_timeout for a cold kernel
# Imports that take longer than this are not a warm-up any more: the spare is dropped and the
# run starts cold (where its own timeout applies).
PREWARM_TIMEOUT_S = 600.0
_POLL_S = 0.5


@dataclass(frozen=True)
class KernelSpec:
    """What makes two kernels interchangeable: a spare serves a run only if its spec is equal."""

    kernel_name: str
    cwd: str
    statements: tuple[str, ...]
    env: tuple[tuple[str, str], ...] = field(repr=False)

    @classmethod
    def current(
        cls,
        kernel_name: str,
        cwd: str | Path,
        statements: tuple[str, ...],
        extra_env: dict[str, str] | None = None,
    ) -> KernelSpec:
        """The spec of a kernel started now, from this process's environment (plus `extra_env`,
        as a cold start with the same `extra_env` gets)."""
        prepare_kernel_environment()
        env = {**os.environ, **(extra_env or {})}
        return cls(kernel_name, str(cwd), tuple(statements), tuple(sorted(env.items())))


@dataclass
class WarmKernel:
    """A started kernel that has run nothing but its imports; handed to exactly one run."""

    km: object  # jupyter_client AsyncKernelManager
    spec: KernelSpec
    # Holds the kernel's IPC sockets: keep it as long as the kernel is in use (when the object is
    # collected, its finalizer removes the folder and nobody can connect any more).
    socket_dir: tempfile.TemporaryDirectory
    ready_at: float = 0.0  # time.monotonic() when the imports were done
    prewarm_s: float = 0.0
    output: str = ""  # what the imports printed
    failed: list[str] = field(default_factory=list)

    @property
    def pid(self) -> int | None:
        return kernel_pid(self.km)

    def is_alive(self) -> bool:
        return bool(run_sync(self.km.is_alive)())

    def discard(self) -> None:
        """Kill the kernel (if it still runs) and remove its sockets; safe to call twice."""
        try:
            if self.km.has_kernel:
                run_sync(self.km.shutdown_kernel)(now=True)
            else:
                run_sync(self.km.cleanup_resources)()
        finally:
            self.socket_dir.cleanup()


@dataclass
class KernelLease:
    """What a run gets from the pool: a warm kernel, or None (start cold), and why, for the log."""

    warm: WarmKernel | None
    note: str | None = None


async def _run_imports(
    km, statements: tuple[str, ...], cancel: threading.Event
) -> tuple[str, list[str]]:
    """Wait for the kernel, run the prewarm imports silently (no execution count, no history),
    and return what they printed and which failed. Fails fast if the kernel dies meanwhile, or
    when `cancel` is set (the pool is closing)."""
    kc = km.client()
    kc.start_channels()
    printed: list[str] = []

    def collect(msg: dict) -> None:
        if msg["msg_type"] == "stream":
            printed.append(msg["content"]["text"])
        elif msg["msg_type"] == "error":
            printed.append("\n".join(msg["content"].get("traceback", [])))

    try:
        await kc.wait_for_ready(timeout=START_TIMEOUT_S)
        if not statements:
            return "", []
        task = asyncio.ensure_future(
            kc.execute_interactive(
                kernel_code(statements),
                silent=True,
                store_history=False,
                allow_stdin=False,
                output_hook=collect,
                timeout=PREWARM_TIMEOUT_S,
            )
        )
        while not task.done():
            await asyncio.wait({task}, timeout=_POLL_S)
            if task.done():
                break
            if cancel.is_set():
                task.cancel()
                raise KernelStartError("the kernel pool closed while the kernel was importing")
            if not await km.is_alive():
                task.cancel()
                raise KernelStartError("the kernel died while importing its modules")
        reply = task.result()
        if reply["content"].get("status") != "ok":
            raise KernelStartError(f"the prewarm imports ended {reply['content'].get('status')}")
        return parse_result("".join(printed))
    except TimeoutError as exc:
        raise KernelStartError(f"no answer from the kernel ({exc})") from exc
    finally:
        kc.stop_channels()


def start_warm_kernel(spec: KernelSpec, cancel: threading.Event | None = None) -> WarmKernel:
    """Start a kernel for `spec` (same manager, arguments, folder and environment as a cold one)
    and run its imports; blocks until it is ready (or `cancel` is set)."""
    socket_dir = tempfile.TemporaryDirectory(prefix="cvlab-k")
    km = ipc_kernel_manager_class(socket_dir.name)(kernel_name=spec.kernel_name)
    warm = WarmKernel(km=km, spec=spec, socket_dir=socket_dir)
    try:
        run_sync(km.start_kernel)(
            extra_arguments=kernel_arguments(), cwd=spec.cwd, env=dict(spec.env)
        )
        started = time.monotonic()
        warm.output, warm.failed = run_sync(_run_imports)(
            km, spec.statements, cancel or threading.Event()
        )
        warm.ready_at = time.monotonic()
        warm.prewarm_s = warm.ready_at - started
    except BaseException:
        with contextlib.suppress(Exception):
            warm.discard()
        raise
    return warm


class KernelPool:
    """Keeps at most one spare kernel, started in a background thread; not thread-safe itself
    (one caller: the in-process scheduler, or one worker process)."""

    def __init__(self) -> None:
        # Import here what the background thread and papermill use: two threads importing the
        # same package for the first time can meet it half initialized (jupyter_client's
        # modules import each other).
        import jupyter_client.asynchronous
        import jupyter_client.manager  # noqa: F401
        import nbclient  # noqa: F401
        import papermill  # noqa: F401

        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cvlab-prewarm")
        self._spare: Future[WarmKernel] | None = None
        self._spare_spec: KernelSpec | None = None
        self._reported_failures: set[str] = set()
        self._closing = threading.Event()  # cuts short a spare's imports when the pool closes
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed

    def prepare(self, spec: KernelSpec) -> None:
        """Start a spare for `spec` in the background, unless one is already on its way."""
        if self._closed:
            raise RuntimeError("the kernel pool is closed")
        if self._spare is not None and self._spare_spec == spec:
            return
        self._drop_spare()
        self._spare_spec = spec
        self._spare = self._executor.submit(start_warm_kernel, spec, self._closing)

    def spare(self, timeout: float | None = None) -> WarmKernel | None:
        """The spare once it is ready (without taking it), or None if it failed to start."""
        if self._spare is None:
            return None
        try:
            return self._spare.result(timeout)
        except (KernelStartError, RuntimeError, OSError, TimeoutError):
            return None

    def acquire(self, spec: KernelSpec, next_spec: KernelSpec | None = None) -> KernelLease:
        """The spare kernel for a run with `spec` (waiting for its imports if need be), or a lease
        without one: the run then starts its kernel cold. With `next_spec`, the next spare
        starts at once, while this run executes."""
        lease = self._take(spec)
        if next_spec is not None:
            self.prepare(next_spec)
        return lease

    def _take(self, spec: KernelSpec) -> KernelLease:
        future, spare_spec = self._spare, self._spare_spec
        self._spare, self._spare_spec = None, None
        if future is None:
            return KernelLease(None)
        if spare_spec != spec:
            self._discard_when_done(future)
            return KernelLease(None, "the warm kernel was made for other settings; cold start")
        try:
            warm = future.result()
        except (KernelStartError, RuntimeError, OSError, TimeoutError) as exc:
            return KernelLease(
                None, f"the warm kernel failed to start ({type(exc).__name__}: {exc}); cold start"
            )
        except BaseException:  # interrupted while waiting: the spare must not outlive the pool
            self._discard_when_done(future)
            raise
        if not warm.is_alive():
            pid = warm.pid
            process = getattr(getattr(warm.km, "provisioner", None), "process", None)
            code = getattr(process, "returncode", None)
            warm.discard()
            return KernelLease(
                None,
                f"the warm kernel (pid {pid}) died before it was used (exit status {code}); "
                "cold start",
            )
        new_failures = [f for f in warm.failed if f not in self._reported_failures]
        self._reported_failures.update(new_failures)
        note = (
            "prewarm could not import: "
            + "; ".join(new_failures)
            + " (the notebook will try again)"
            if new_failures
            else None
        )
        return KernelLease(warm, note)

    def _discard_when_done(self, future: Future[WarmKernel]) -> None:
        def discard(done: Future[WarmKernel]) -> None:
            if not done.cancelled() and done.exception() is None:
                with contextlib.suppress(Exception):  # best effort: it is being thrown away
                    done.result().discard()

        future.add_done_callback(discard)

    def _drop_spare(self) -> None:
        if self._spare is not None:
            self._discard_when_done(self._spare)
        self._spare, self._spare_spec = None, None

    def close(self) -> None:
        """Kill the spare (waiting for a start in progress) and stop the background thread."""
        if self._closed:
            return
        self._closed = True
        self._closing.set()
        self._drop_spare()
        self._executor.shutdown(wait=True, cancel_futures=True)
