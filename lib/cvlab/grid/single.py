"""One notebook, one run, from Python: `cvlab.run_notebook(notebook, params, out_dir)`.

The same checks as a grid's (parameters, registry names, data directories, data sets in the
cache, output folder) and the same lock: the run is grid `<notebook stem>` of `out_dir`.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from cvlab.backends import ENV_VAR, check_backend, chosen_backend, gpu_warning
from cvlab.errors import GridSpecError, SpecProblem
from cvlab.grid.execute import execute_run
from cvlab.grid.expand import RunPlan, notebook_digest, readable_name, run_id_for
from cvlab.grid.runner import publish_safely, reserve
from cvlab.grid.spec import validate_params
from cvlab.report.store import LeaderboardStore
from cvlab.runs.record import RunRecord
from cvlab.workspace import Workspace


def run_single_notebook(
    notebook: str | Path,
    params: dict[str, Any],
    out_dir: str | Path | None,
    *,
    timeout: float | None = None,
    kernel_name: str = "python3",
    rank_by: str | None = None,
    rank_mode: str = "max",
    backend: str | None = None,
) -> RunRecord:
    """Validate `params` against the notebook, execute it as grid `<notebook stem>`, record it.

    Raises GridSpecError (bad parameters), MissingDataError, OutputFolderError or
    GridLockedError (another driver runs that grid into `out_dir`), BackendError (`backend`, or
    $KERAS_BACKEND, unknown or not installed) before the kernel starts.
    """
    backend = check_backend(chosen_backend(backend), where="backend" if backend else ENV_VAR)
    notebook = Path(notebook).resolve()
    if not notebook.is_file():
        raise GridSpecError(
            [SpecProblem(str(notebook), "notebook", "no such notebook", "check the path")]
        )
    parameters = validate_params(notebook, params)
    ws = Workspace.at(out_dir or ".")
    grid = notebook.stem
    digest = notebook_digest(notebook)
    plan = RunPlan(
        run_id=run_id_for(digest, params, backend),
        name=readable_name(params, list(params)),
        grid=grid,
        notebook=notebook,
        params=dict(params),
        seed=params.get("seed"),
        timeout=timeout,
        kernel=kernel_name,
        code_digest=digest,
        backend=backend,
    )
    lock = reserve(ws, grid, [plan], parameters)  # the data, the folder, the lock: as a grid
    try:
        store = LeaderboardStore(ws.leaderboard_db)
        if rank_by is not None or grid not in store.grids():
            store.register_grid(
                grid,
                notebook=str(notebook),
                spec_path="",
                rank_metric=rank_by or "",
                rank_mode=rank_mode,
            )
        if warning := gpu_warning(backend):
            print(f"warning: {warning}", file=sys.stderr)
        record = execute_run(plan, ws.root, echo=True)
        store.upsert([record])
        publish_safely(ws, grid)
        return record
    finally:
        lock.release()
