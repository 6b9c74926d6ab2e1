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
    # TensorFlow's C++ start-up chatter goes to the kernel's stderr, i.e. the terminal.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


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
            return await super().start_kernel(**kw)

    return IpcKernelManager


def kernel_pid(km: object) -> int | None:
    """The kernel's process id (it leads its own process group), or None before it started."""
    return getattr(getattr(km, "provisioner", None), "pid", None)
