"""What runs on a Dask worker: one grid run, its GPU, and the way its files reach the driver.

Two ways for the files (`run_grid.py --scheduler ...`):

- returned (the default): the worker executes into a private temporary folder, then sends the
  run's files (run directory, log, curves figure) back with its record; the driver writes them
  into its own `--out`, each file atomically and `record.json` last. No shared file system.
- `--shared-out`: `--out` is a folder every worker sees at the same path (NFS, a bind mount);
  the worker writes there directly, as a local run does, and returns only the record.

Either way the driver alone writes the leaderboard store, the CSV and the page.

GPU placement: a run submitted with the `GPU` resource takes one of its worker's devices for
itself (CUDA_VISIBLE_DEVICES in its kernel's environment), and gives it back when it ends.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import socket
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from cvlab.atomic_io import write_bytes_atomic
from cvlab.backends import backend_env
from cvlab.grid.execute import execute_run, fresh_record, interrupt_active_runs, notebook_label
from cvlab.grid.expand import RunPlan
from cvlab.grid.kernel_pool import KernelPool, KernelSpec
from cvlab.runs.record import RECORD_FILE, RunRecord
from cvlab.workspace import Workspace

GPU = "GPU"  # the Dask resource name: `dask worker ... --resources GPU=1`


@dataclass
class RunOutput:
    """A run's record and files, sent from a worker to the driver (returned mode)."""

    record: RunRecord
    # path relative to the output folder (POSIX form) -> content
    files: dict[str, bytes] = field(default_factory=dict)
    host: str = ""


# ---------------------------------------------------------------- GPU slots of this worker

_gpu_lock = threading.Lock()
_gpu_busy: set[str] = set()
_gpu_local = threading.local()  # the device this thread used last: its warm kernel matches it


def worker_gpu_devices() -> list[str]:
    """The devices this worker hands out: the first N of CUDA_VISIBLE_DEVICES (or 0..N-1),
    N being the worker's `GPU` resource."""
    from distributed import get_worker

    count = int(get_worker().state.total_resources.get(GPU, 0))
    visible = os.environ.get("CUDA_VISIBLE_DEVICES", "").strip()
    ids = [d.strip() for d in visible.split(",") if d.strip()] if visible else []
    if not ids:
        ids = [str(i) for i in range(count)]
    if len(ids) < count:
        raise RuntimeError(
            f"worker {socket.gethostname()} advertises {GPU}={count} but CUDA_VISIBLE_DEVICES "
            f"lists {len(ids)} device(s) ({visible}). Start it with --resources {GPU}={len(ids)}"
        )
    return ids[:count]


def acquire_gpu() -> str:
    devices = worker_gpu_devices()
    with _gpu_lock:
        free = [d for d in devices if d not in _gpu_busy]
        if not free:  # Dask's resource accounting should make this impossible
            raise RuntimeError(f"no free GPU on this worker (devices {devices}, all busy)")
        preferred = getattr(_gpu_local, "device", None)
        device = preferred if preferred in free else free[0]
        _gpu_busy.add(device)
    _gpu_local.device = device
    return device


def release_gpu(device: str) -> None:
    with _gpu_lock:
        _gpu_busy.discard(device)


# ---------------------------------------------------------------- warm kernels per thread

_pools = threading.local()
_all_pools: list[KernelPool] = []
_pools_lock = threading.Lock()


def _thread_pool() -> KernelPool:
    pool = getattr(_pools, "pool", None)
    if pool is None or pool.closed:  # closed by close_worker_pools after an earlier grid
        pool = KernelPool()
        _pools.pool = pool
        with _pools_lock:
            _all_pools.append(pool)
    return pool


def close_worker_pools() -> int:
    """Kill the warm spare kernels of this worker (run by the driver on every worker when the
    grid ends: a long-lived worker must not keep idle kernels). Returns how many pools closed."""
    with _pools_lock:
        pools = list(_all_pools)
        _all_pools.clear()
    for pool in pools:
        pool.close()  # each thread makes a fresh pool on its next run
    return len(pools)


def interrupt_runs(run_ids: list[str]) -> list[str]:
    """Interrupt the runs of `run_ids` executing on this worker (their driver has stopped)."""

    return interrupt_active_runs(set(run_ids))


# ---------------------------------------------------------------- files of a run


def run_files(ws: Workspace, plan: RunPlan) -> list[Path]:
    """Every file of a run under `ws`: its directory, its log and its curves figure."""
    files = [p for p in sorted(ws.run_dir(plan.grid, plan.run_id).rglob("*")) if p.is_file()]
    # Temporary files of an interrupted atomic write are not part of the run.
    files = [p for p in files if not (p.name.startswith(".") and p.name.endswith(".tmp"))]
    for extra in (
        ws.run_log(plan.grid, plan.run_id),
        ws.grid_figs(plan.grid) / f"{plan.run_id}-curves.png",
    ):
        if extra.is_file():
            files.append(extra)
    return files


def pack_run(ws: Workspace, plan: RunPlan, record: RunRecord) -> RunOutput:
    files = {p.relative_to(ws.root).as_posix(): p.read_bytes() for p in run_files(ws, plan)}
    return RunOutput(record=record, files=files, host=socket.gethostname())


def _target(ws: Workspace, plan: RunPlan, rel: str) -> Path:
    """Where a returned file goes; refuses anything outside the run's own places."""
    pure = PurePosixPath(rel)
    if pure.is_absolute() or ".." in pure.parts or not pure.parts:
        raise ValueError(f"refused file {rel!r} from a worker: not a plain relative path")
    target = ws.root.joinpath(*pure.parts)
    run_dir = ws.run_dir(plan.grid, plan.run_id)
    allowed = {
        ws.run_log(plan.grid, plan.run_id),
        ws.grid_figs(plan.grid) / f"{plan.run_id}-curves.png",
    }
    if target not in allowed and run_dir not in target.parents:
        raise ValueError(f"refused file {rel!r} from a worker: outside run {plan.run_id}'s folders")
    return target


def unpack_run(ws: Workspace, plan: RunPlan, output: RunOutput) -> RunRecord:
    """Write a returned run into the driver's `ws`: every file atomically, `record.json` last
    (a driver stopped half-way leaves the run `pending`, to be run again, never a record that
    claims files that are not there). The log is appended to the run's log."""
    targets = {rel: _target(ws, plan, rel) for rel in output.files}
    record_path = ws.run_dir(plan.grid, plan.run_id) / RECORD_FILE
    log_path = ws.run_log(plan.grid, plan.run_id)
    for rel, target in targets.items():
        if target in (record_path, log_path):
            continue
        write_bytes_atomic(target, output.files[rel])
    for rel, target in targets.items():
        if target == log_path:
            log_path.parent.mkdir(parents=True, exist_ok=True)
            with open(log_path, "ab") as log:
                log.write(f"--- (executed on worker {output.host})\n".encode())
                log.write(output.files[rel])
    record = output.record
    record.notebook = notebook_label(plan.notebook, ws)
    record.save(record_path.parent)
    return record


def mark_pending(ws: Workspace, plan: RunPlan) -> None:
    """Returned mode: the driver's own trace that a run was sent out (`pending`), so a driver
    killed before the run comes back finds it and runs it again."""
    fresh_record(plan, ws, status="pending")


# ---------------------------------------------------------------- the task


def run_on_worker(
    plan: RunPlan,
    workspace_root: str,
    echo: bool,
    prewarm: tuple[str, ...] | None,
    more_to_come: bool,
    shared_out: bool,
    gpu: bool,
    notebook_source: bytes,
) -> RunRecord | RunOutput:
    """One run on a Dask worker. Returns its record (shared mode) or its record and files."""
    device = acquire_gpu() if gpu else None
    kernel_env = {"CUDA_VISIBLE_DEVICES": device} if device is not None else None
    scratch = None
    try:
        if shared_out:
            root = Path(workspace_root)
            if not root.is_dir():
                raise FileNotFoundError(
                    f"--shared-out: {root} is not a folder on worker {socket.gethostname()}; "
                    "mount the output folder at the same path on every worker, or leave out "
                    "--shared-out to have the files sent back"
                )
        else:
            scratch = Path(tempfile.mkdtemp(prefix="cvlab-run-"))
            root = scratch / "out"
        if not plan.notebook.is_file():
            # Not on this machine: run the driver's copy (files it reads by relative path must
            # then be found from the scratch folder, so keep the project at the same path).
            copy = (scratch or Path(tempfile.mkdtemp(prefix="cvlab-nb-"))) / plan.notebook.name
            copy.write_bytes(notebook_source)
            plan = dataclasses.replace(plan, notebook=copy)
        lease = None
        if prewarm is not None:
            pool = _thread_pool()
            env = {**backend_env(plan.backend), **(kernel_env or {})}  # as execute_run's cold one
            spec = KernelSpec.current(plan.kernel, plan.notebook.parent, prewarm, env)
            lease = pool.acquire(spec, spec if more_to_come else None)
        record = execute_run(
            plan, root, echo, kernel=lease, export_html=False, kernel_env=kernel_env
        )
        if device is not None:
            record.environment["cuda_visible_devices"] = device
            record.save(Workspace.at(root).run_dir(plan.grid, plan.run_id))
        if shared_out:
            return record
        return pack_run(Workspace.at(root), plan, record)
    finally:
        if device is not None:
            release_gpu(device)
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
