"""The papermill engine of grid runs: papermill's nbclient engine, on a kernel started before the
run (a warm one, `km=`) or on one nbclient starts, and leaving no kernel or channel behind.

papermill's own engine already passes `km=` through to nbclient, which then uses that kernel
instead of starting one; but nbclient leaves a kernel it does not own running, with its client's
sockets open, and it cleans up only once its client is connected.
"""

from __future__ import annotations

import logging
import os

from jupyter_core.utils import run_sync
from papermill.clientwrap import PapermillNotebookClient
from papermill.engines import NBClientEngine, papermill_engines
from papermill.iorw import LocalHandler, papermill_io
from papermill.log import logger
from papermill.utils import chdir, merge_kwargs, remove_args

from cvlab.atomic_io import write_text_atomic

ENGINE = "cvlab"


class _DeadKernelAfterInterrupt(logging.Filter):
    """Drops asyncio's "Task exception was never retrieved ... DeadKernelError: Kernel died":
    a Ctrl-C cuts `run_sync` while nbclient's cell task waits, the kernel is then shut down and
    the orphaned task ends with DeadKernelError when collected. The run is recorded
    `interrupted` already; the traceback would only bury the resume line."""

    def filter(self, record: logging.LogRecord) -> bool:
        from nbclient.exceptions import DeadKernelError

        exc = record.exc_info[1] if record.exc_info else None
        return not (
            isinstance(exc, DeadKernelError)
            and str(record.msg).startswith("Task exception was never retrieved")
        )


logging.getLogger("asyncio").addFilter(_DeadKernelAfterInterrupt())


class CvlabEngine(NBClientEngine):
    """NBClientEngine that shuts the kernel down (warm or not) and closes its channels."""

    @classmethod
    def execute_managed_notebook(
        cls,
        nb_man,
        kernel_name,
        log_output=False,
        stdout_file=None,
        stderr_file=None,
        start_timeout=60,
        execution_timeout=None,
        km=None,
        **kwargs,
    ):
        if km is not None and not km.has_kernel:
            raise ValueError(f"the {ENGINE!r} papermill engine needs a started kernel (km=)")
        # The same argument handling as NBClientEngine.execute_managed_notebook.
        kwargs = remove_args(["input_path"], **kwargs)
        safe_kwargs = remove_args(["timeout", "startup_timeout"], **kwargs)
        final_kwargs = merge_kwargs(
            safe_kwargs,
            timeout=execution_timeout if execution_timeout else kwargs.get("timeout"),
            startup_timeout=start_timeout,
            kernel_name=kernel_name,
            log=logger,
            log_output=log_output,
            stdout_file=stdout_file,
            stderr_file=stderr_file,
        )
        client = PapermillNotebookClient(nb_man, km=km, **final_kwargs)
        try:
            # cleanup_kc=True: shut the kernel down (as `shutdown_kernel` says) and close the
            # client's channels, for a warm kernel as nbclient does for one it started.
            return client.execute(cleanup_kc=True)
        finally:
            # An interrupt (Ctrl-C) while nbclient starts the kernel or connects to it skips
            # its clean-up: the kernel would outlive the run, and the channels' zmq context,
            # collected later with its sockets open, would block the garbage collector.
            if client.kc is not None:
                client.kc.stop_channels()
                client.kc = None
            if client.owns_km and client.km is not None and client.km.has_kernel:
                run_sync(client.km.shutdown_kernel)(now=True)


papermill_engines.register(ENGINE, CvlabEngine)


class AtomicLocalHandler(LocalHandler):
    """papermill's local file handler, writing each save of the output notebook atomically:
    papermill saves `run.ipynb` after every cell, and a driver killed during a save must leave
    the previous save, not half a notebook."""

    def write(self, buf, path):
        with chdir(self._cwd):
            if not os.path.isdir(os.path.dirname(path) or "."):
                raise FileNotFoundError(f"output folder {os.path.dirname(path)} doesn't exist.")
            write_text_atomic(os.path.abspath(path), buf)


# papermill's public I/O registry picks a handler by path prefix, newest first, and falls back
# to the oldest "local" one for paths no scheme matches: registering "local" again would never
# be chosen. The scheme "/" takes every absolute path, which is what the grid runner passes
# (execute.py resolves the notebook and the run folder); a relative path keeps papermill's own.
ABSOLUTE_PATHS = "/"
papermill_io.register(ABSOLUTE_PATHS, AtomicLocalHandler())
