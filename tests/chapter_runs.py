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


def predicts_a_file(run_dir: Path, tmp_path: Path) -> str:
    """`cvlab.runs.load` on the run and one image file through it: the run recorded the
    preprocessing its model was trained with (refused otherwise), and that preprocessing
    fits the saved model. Returns the predicted class name."""
    import numpy as np
    from PIL import Image

    import cvlab

    rng = np.random.default_rng(0)
    path = tmp_path / "photo.png"
    Image.fromarray(rng.integers(0, 256, (96, 128, 3), dtype=np.uint8)).save(path)
    loaded = cvlab.runs.load(run_dir)
    (prediction,) = loaded.predict(path)
    assert prediction.label in loaded.class_names and 0.0 <= prediction.probability <= 1.0
    return prediction.label
