"""Finding what an earlier run saved: `run:<run_id>` (or `run:<grid>/<run_id>`) → its model file."""

from __future__ import annotations

import glob
from pathlib import Path

from cvlab.errors import AmbiguousRunError, RunModelNotFoundError
from cvlab.workspace import Workspace, project_root

MODEL_FILE = "model.keras"


def find_run_model(run: str, root: str | Path | None = None) -> Path:
    """The `model.keras` an earlier run saved: `<root>/experiments/*/<run_id>/model.keras`.

    `run` is "<run_id>" or "<grid>/<run_id>" (a leading "run:" is accepted); `root` is the
    workspace (`--out`) folder, by default the project root.
    """

    ws = Workspace.at(project_root() if root is None else root)
    run = run.strip().removeprefix("run:")
    parts = run.split("/")
    if not 1 <= len(parts) <= 2 or any(p in ("", ".", "..") or "\\" in p for p in parts):
        raise ValueError(f"'run:{run}' must name a run as run:<run_id> or run:<grid>/<run_id>")
    if len(parts) == 2:
        pattern = ws.run_dir(parts[0], parts[1]) / MODEL_FILE
        found = [pattern] if pattern.is_file() else []
    else:
        pattern = ws.experiments / "*" / parts[0] / MODEL_FILE
        found = sorted(ws.experiments.glob(f"*/{glob.escape(parts[0])}/{MODEL_FILE}"))
    if not found:
        raise RunModelNotFoundError(
            f"no saved model for run {run!r}: looked for {pattern} (workspace {ws.root}). Check the "
            f"run id on the leaderboard, that the run saved its model (run.save_model(model)), or "
            f"pass root= the folder the grid wrote to (its --out)."
        )
    if len(found) > 1:
        grids = ", ".join(path.parent.parent.name for path in found)
        raise AmbiguousRunError(
            f"run id {run!r} is in several grids ({grids}) under {ws.experiments}; "
            f"say which with 'run:<grid>/{run}'"
        )
    return found[0]
