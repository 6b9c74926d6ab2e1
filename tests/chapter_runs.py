"""Running a chapter grid's smoke row through the real CLI (papermill), for the chapter tests."""

from __future__ import annotations

from pathlib import Path

import yaml

from cvlab.grid.cli import main
from cvlab.runs import RunRecord
from cvlab.workspace import Workspace

REPO = Path(__file__).resolve().parents[1]


def run_smoke_row(grid: str, tmp_path: Path, only: str = "smoke=true") -> tuple[Path, RunRecord]:
    """Run a grid's smoke row through the CLI (papermill); its run folder and record."""
    spec = yaml.safe_load((REPO / "grids" / f"{grid}.yaml").read_text())
    spec["notebook"] = str((REPO / "grids" / spec["notebook"]).resolve())
    path = tmp_path / f"{grid}.yaml"
    path.write_text(yaml.safe_dump(spec))
    out = tmp_path / "out"
    assert main([str(path), "--out", str(out), "--only", only, "--quiet"]) == 0
    (run_dir,) = (Workspace.at(out).experiments / grid).iterdir()
    record = RunRecord.load(run_dir)
    assert record.status == "ok", record.error
    return run_dir, record
