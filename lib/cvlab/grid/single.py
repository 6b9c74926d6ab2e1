"""One notebook, one run, from Python: `cvlab.run_notebook(notebook, params, out_dir)`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cvlab.errors import GridSpecError, SpecProblem
from cvlab.grid.execute import execute_run
from cvlab.grid.expand import RunPlan, notebook_digest, readable_name, run_id_for
from cvlab.grid.spec import parameter_problems, read_notebook_parameters
from cvlab.report.publish import publish
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
) -> RunRecord:
    """Validate `params` against the notebook, execute it as grid `<notebook stem>`, record it."""
    notebook = Path(notebook).resolve()
    label = str(notebook)
    if not notebook.is_file():
        raise GridSpecError([SpecProblem(label, "notebook", "no such notebook", "check the path")])
    parameters = read_notebook_parameters(notebook)
    if parameters is None:
        raise GridSpecError(
            [
                SpecProblem(
                    label,
                    "notebook",
                    "no cell tagged 'parameters'",
                    "tag the first code cell 'parameters'",
                )
            ]
        )
    problems = parameter_problems(label, {"params": params}, parameters, notebook)
    if problems:
        raise GridSpecError(problems)
    ws = Workspace.at(out_dir or ".")
    grid = notebook.stem
    digest = notebook_digest(notebook)
    plan = RunPlan(
        run_id=run_id_for(digest, params),
        name=readable_name(params, list(params)),
        grid=grid,
        notebook=notebook,
        params=dict(params),
        seed=params.get("seed"),
        timeout=timeout,
        kernel=kernel_name,
        code_digest=digest,
    )
    store = LeaderboardStore(ws.leaderboard_db)
    if rank_by is not None or grid not in store.grids():
        store.register_grid(
            grid,
            notebook=str(notebook),
            spec_path="",
            rank_metric=rank_by or "",
            rank_mode=rank_mode,
        )
    record = execute_run(plan, ws.root, echo=True)
    store.upsert([record])
    publish(ws, [grid])
    return record
