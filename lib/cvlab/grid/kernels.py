"""How cvlab starts a run's Jupyter kernel, cold or warm: the same manager class, arguments and
environment either way, so a pre-started kernel is the kernel a cold start would have made."""

from __future__ import annotations

import os
from collections.abc import Callable


def kernel_arguments() -> list[str]:
    """The extra arguments nbclient gives the kernels it starts (an in-memory IPython history:
    no SQLite file shared between kernels); a kernel started for it beforehand gets the same."""
    from nbclient import NotebookClient

    return [f"--HistoryManager.hist_file={NotebookClient.ipython_hist_file.default_value}"]


def prepare_kernel_environment() -> None:
    """Settle what kernels inherit from this process before any is started (cold or warm)."""
    # TensorFlow's C++ start-up chatter ("oneDNN custom operations are on", absl's "All log
    # messages before absl::InitializeLog()...") goes to the kernel's fd 2: a file per kernel
    # (kernel_output_file), appended to the run's log, instead of the driver's terminal.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


KERNEL_OUTPUT = "kernel-output.log"


def kernel_output_file(socket_dir: str | os.PathLike) -> str:
    """Where the kernel started in `socket_dir` writes its fd 1 and fd 2 (what bypasses the
    notebook's outputs: C++ libraries' logs, a crash's last words)."""
    return os.path.join(socket_dir, KERNEL_OUTPUT)


def read_kernel_output(socket_dir: str | os.PathLike) -> str:
    """What the kernel of `socket_dir` wrote to its fd 1/2 so far ("" when nothing)."""
    try:
        with open(kernel_output_file(socket_dir), encoding="utf-8", errors="replace") as f:
            return f.read()
    except FileNotFoundError:
        return ""


def ipc_kernel_manager_class(
    socket_dir: str,
    on_create: Callable[[object], None] | None = None,
    extra_env: dict[str, str] | None = None,
):
    """An AsyncKernelManager class that talks to its kernel over local IPC sockets in
    `socket_dir` instead of TCP ports; `on_create` receives each instance (for the watchdog);
    `extra_env` is added to the environment of the kernels it starts (e.g. the GPU a run may see:
    one environment per kernel, since runs in threads of one worker share `os.environ`)."""
    from jupyter_client.manager import AsyncKernelManager

    class IpcKernelManager(AsyncKernelManager):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.transport = "ipc"
            self.ip = os.path.join(socket_dir, "kernel")
            if on_create is not None:
                on_create(self)

        async def start_kernel(self, **kw):
            if extra_env:
                kw["env"] = {**(kw.get("env") or os.environ), **extra_env}
            # The kernel's fd 1/2 to a file, not the driver's terminal (jupyter_client passes
            # these to Popen); the child keeps its own copy of the descriptor.
            with open(kernel_output_file(socket_dir), "ab") as sink:
                kw.setdefault("stdout", sink)
                kw.setdefault("stderr", sink)
                return await super().start_kernel(**kw)

    return IpcKernelManager


def kernel_pid(km: object) -> int | None:
    """The kernel's process id (it leads its own process group), or None before it started."""
    return getattr(getattr(km, "provisioner", None), "pid", None)
