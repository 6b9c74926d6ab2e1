"""The fine-tuning and progressive-resizing notebooks run end to end through papermill with their
grids' smoke rows on real Flowers-17 images (slow)."""

from __future__ import annotations

import pandas as pd
import pytest

from chapter_runs import predicts_a_file, run_smoke_row
from real_data import installed_dataset

pytestmark = pytest.mark.slow


def test_fine_tuning_smoke_row(tmp_path):
    """Warm-up with the body frozen, then the top blocks unfrozen; both evaluations recorded."""
    installed_dataset("flowers17")
    run_dir, record = run_smoke_row("fine_tuning", tmp_path, "experiment=smoke")
    predicts_a_file(run_dir, tmp_path)  # the notebook records its preprocessing
    params, metrics = record.params, record.metrics
    assert record.epochs_completed == params["warmup_epochs"] + params["finetune_epochs"] == 2
    body_params = params["parameters"] - params["head_parameters"]
    assert params["unfrozen_layers"] > 0 and 0 < params["body_trainable_params"] < body_params
    for key in ("warmup_rank1", "rank1", "rank5"):
        assert 0.0 <= metrics[key] <= 1.0, key
    assert metrics["finetune_gain"] == pytest.approx(metrics["rank1"] - metrics["warmup_rank1"])
    assert pd.read_csv(run_dir / "history.csv")["epoch"].tolist() == [1, 2]
    for name in ("figures/stages.png", "figures/warmup_confusion_matrix.png", "model.keras"):
        assert (run_dir / name).is_file(), name
    html = (run_dir / "run.html").read_text()
    assert "Smoke run" in html and "not comparable with the book" in html and "block6" in html


@pytest.mark.parametrize(("row", "stages"), [("smoke", 3), ("smoke-scratch", 1)])
def test_progressive_resizing_smoke_rows(tmp_path, row, stages):
    """Progressive: three stages (16, 32, 64 px) in one history; scratch: one stage at 64 px."""
    installed_dataset("flowers17")
    run_dir, record = run_smoke_row("progressive_resizing", tmp_path, f"experiment={row}")
    predicts_a_file(run_dir, tmp_path)  # the notebook records its preprocessing
    assert record.params["stage_epochs"] == [1] * stages
    assert record.epochs_completed == record.metrics["epochs"] == stages
    assert 0.0 <= record.metrics["rank1"] <= 1.0 and record.metrics["train_seconds"] > 0
    assert (run_dir / "figures" / "stages.png").is_file() and (run_dir / "model.keras").is_file()
    html = (run_dir / "run.html").read_text()
    assert "Smoke run" in html and "minivggnet_64px" in html
    if row == "smoke":
        assert "minivggnet_32px" in html and "→" in html
