"""Every chapter notebook runs end to end through papermill with its grid's smoke row (slow)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from cvlab.grid.cli import main
from cvlab.runs import RunRecord
from cvlab.workspace import Workspace

from chapter_runs import run_smoke_row
from real_data import installed_dataset

REPO = Path(__file__).resolve().parents[1]
CHAPTER_GRIDS = [
    "alexnet_dogs_vs_cats",
    pytest.param("resnet_cifar", marks=pytest.mark.backends),  # classification on every backend
    "resnet_tiny_imagenet",
    "googlenet_cifar",
    "googlenet_tiny_imagenet",
]
# Grids whose smoke row reads a real data set from the data cache (skipped where not imported)
NEEDS_DATA = {"alexnet_dogs_vs_cats": "dogs-vs-cats"}

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("grid", CHAPTER_GRIDS)
def test_smoke_row_runs(grid, tmp_path):
    if grid in NEEDS_DATA:
        installed_dataset(NEEDS_DATA[grid])
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
    if grid == "alexnet_dogs_vs_cats":  # both evaluations, and the transfer route beside them
        metrics = record.metrics
        assert metrics["oversampling_gain"] == pytest.approx(
            metrics["crops_rank1"] - metrics["rank1"]
        )
        assert 0.0 <= metrics["transfer_rank1"] <= 1.0
        assert (run_dir / "features" / "train.hdf5").is_file()
        assert "transfer route" in html


def test_pretrained_imagenet_smoke_row(tmp_path):
    """The offline ImageNet backbone classifies photos and scores the ImageNet sample."""
    installed_dataset("imagenet-sample")
    run_dir, record = run_smoke_row("pretrained_imagenet", tmp_path)
    assert record.metrics["images"] == 40
    assert 0.6 <= record.metrics["top1"] <= record.metrics["top5"] <= 1.0  # real weights
    assert (run_dir / "figures" / "what_the_network_sees.png").is_file()
    assert "top-1" in (run_dir / "run.html").read_text()


@pytest.mark.backends
def test_feature_extraction_smoke_row(tmp_path):
    """Flowers-17 features to HDF5, then a logistic regression scored on the test split."""
    installed_dataset("flowers17")
    run_dir, record = run_smoke_row("feature_extraction", tmp_path, "experiment=smoke")
    assert record.params["feature_dims"] == 1280 and record.params["best_c"] in (1.0, 10.0)
    assert 0.3 <= record.metrics["rank1"] <= record.metrics["rank5"] <= 1.0
    for split in ("train", "test"):
        assert (run_dir / "features" / f"{split}.hdf5").is_file()
    assert "Smoke run" in (run_dir / "run.html").read_text()
