"""Every chapter notebook runs end to end through papermill with its grid's smoke row (slow)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from cvlab.grid.cli import main
from cvlab.runs import RunRecord
from cvlab.workspace import Workspace

REPO = Path(__file__).resolve().parents[1]
CHAPTER_GRIDS = [
    "resnet_cifar",
    "resnet_tiny_imagenet",
    "googlenet_cifar",
    "googlenet_tiny_imagenet",
]

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("grid", CHAPTER_GRIDS)
def test_smoke_row_runs(grid, tmp_path):
    spec = yaml.safe_load((REPO / "grids" / f"{grid}.yaml").read_text())
    spec["notebook"] = str((REPO / "grids" / spec["notebook"]).resolve())
    path = tmp_path / f"{grid}.yaml"
    path.write_text(yaml.safe_dump(spec))
    out = tmp_path / "out"
    assert main([str(path), "--out", str(out), "--only", "smoke=true", "--quiet"]) == 0
    (run_dir,) = (Workspace.at(out).experiments / grid).iterdir()
    record = RunRecord.load(run_dir)
    assert record.status == "ok", record.error
    assert (
        0.0 <= record.metrics["rank1"] <= 1.0
        and record.epochs_completed == spec["runs"][-1]["epochs"]
    )
    for name in (
        "run.html",
        "history.csv",
        "curves.png",
        "model.keras",
        "figures/confusion_matrix.png",
    ):
        assert (run_dir / name).exists(), name
    html = (run_dir / "run.html").read_text()
    assert "Smoke run" in html and "not comparable with the book" in html
