"""Chapters 2, 6 and 7 end to end through papermill: the smoke rows of the augmentation,
optimizers and ensembles grids, and an ensemble of another grid's finished runs (slow)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml

from cvlab.grid.cli import main
from cvlab.runs import RunRecord
from cvlab.workspace import Workspace

from chapter_runs import REPO, run_smoke_row
from real_data import installed_dataset

pytestmark = pytest.mark.slow


def _check_flowers_run(run_dir: Path, record: RunRecord, epochs: int) -> None:
    metrics, params = record.metrics, record.params
    assert 0.0 <= metrics["rank1"] <= metrics["rank5"] <= 1.0
    assert record.epochs_completed == epochs
    history = pd.read_csv(run_dir / "history.csv").tail(5)  # the notebook averages the last 5
    assert metrics["final_train_accuracy"] == pytest.approx(history["accuracy"].mean())
    assert metrics["overfit_gap"] == pytest.approx(
        history["accuracy"].mean() - history["val_accuracy"].mean()
    )
    assert len(params["test_set"]) == 16 and params["test_images"] == 34  # 2 of 8 per class
    for name in ("run.html", "history.csv", "curves.png", "model.keras"):
        assert (run_dir / name).exists(), name
    assert "Smoke run" in (run_dir / "run.html").read_text()


def test_augmentation_smoke_row(tmp_path):
    """MiniVGGNet on Flowers-17 with the book's augmentation: the montage, curves and model."""
    installed_dataset("flowers17")
    run_dir, record = run_smoke_row("augmentation", tmp_path)
    _check_flowers_run(run_dir, record, epochs=2)
    assert record.params["augment"]["rotation"] == 30
    assert (run_dir / "figures" / "augmentation.png").is_file()


def test_optimizers_smoke_row(tmp_path):
    installed_dataset("flowers17")
    run_dir, record = run_smoke_row("optimizers", tmp_path)
    _check_flowers_run(run_dir, record, epochs=2)
    assert record.params["optimizer"] == "adam"
    assert "adam (lr 0.001), with augmentation" in (run_dir / "run.html").read_text()


def test_ensembles_smoke_row(tmp_path):
    """Two MiniVGGNets trained as member runs, scored beside their average."""
    installed_dataset("cifar10")
    run_dir, record = run_smoke_row("ensembles", tmp_path)
    metrics = record.metrics
    assert metrics["members"] == 2
    ranks = [metrics["member_0_rank1"], metrics["member_1_rank1"]]
    assert metrics["members_mean_rank1"] == pytest.approx(sum(ranks) / 2)
    assert metrics["ensemble_gain"] == pytest.approx(metrics["rank1"] - sum(ranks) / 2)
    for i in range(2):
        member = RunRecord.load(run_dir / "members" / f"member_{i}")
        assert member.status == "ok" and member.seed == 42 + i
        assert member.params["test_set"] == record.params["test_set"]
        assert member.metrics["rank1"] == metrics[f"member_{i}_rank1"]
        assert (run_dir / "members" / f"member_{i}" / "model.keras").is_file()
    assert (run_dir / "figures" / "ensemble.png").is_file()
    assert "Smoke run" in (run_dir / "run.html").read_text()


def _grid_file(tmp_path: Path, grid: str, runs: list[dict]) -> Path:
    spec = yaml.safe_load((REPO / "grids" / f"{grid}.yaml").read_text())
    spec["notebook"] = str((REPO / "grids" / spec["notebook"]).resolve())
    spec["runs"] = runs
    path = tmp_path / f"{grid}.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def test_ensemble_of_a_grids_top_runs(tmp_path):
    """The optimizers grid's smoke run, then an ensemble of that grid's best run on the same
    test set (a second one on another test set is left out, not averaged)."""
    installed_dataset("flowers17")
    out = tmp_path / "out"
    optimizers = yaml.safe_load((REPO / "grids" / "optimizers.yaml").read_text())
    smoke = next(row for row in optimizers["runs"] if row.get("smoke"))
    other_split = {**smoke, "optimizer": "sgd", "learning_rate": 0.05, "seed": 7}
    path = _grid_file(tmp_path, "optimizers", [smoke, other_split])
    assert main([str(path), "--out", str(out), "--quiet"]) == 0
    member_row = {
        "experiment": "top1",
        "smoke": True,
        "dataset": "flowers17",
        "size": 64,
        "dataset_options": {"limit_per_class": 8},
        "member_grid": "optimizers",
        "top_k": 1,
        "book_value": None,
        "book_member_value": None,
        "book_source": "test",
    }
    path = _grid_file(tmp_path, "ensembles", [member_row])
    assert main([str(path), "--out", str(out), "--quiet"]) == 0
    (run_dir,) = (Workspace.at(out).experiments / "ensembles").iterdir()
    record = RunRecord.load(run_dir)
    assert record.status == "ok", record.error
    (source,) = record.params["member_sources"]
    member = RunRecord.load(source)
    assert member.params["optimizer"] == "adam" and member.seed == 42
    assert member.params["test_set"] == record.params["test_set"]
    assert record.metrics["rank1"] == pytest.approx(member.metrics["rank1"])  # one member
    assert "left out 1 run" in (run_dir / "run.html").read_text()
