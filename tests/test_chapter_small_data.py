"""Notebook 08_small_data runs end to end through papermill with its grid's smoke row (slow):
both tricks on, each scored beside the plain prediction of the same run."""

from __future__ import annotations

import json

import pytest

from chapter_runs import predicts_a_file, run_smoke_row
from real_data import installed_dataset

pytestmark = pytest.mark.slow


def test_small_data_smoke_row(tmp_path):
    installed_dataset("dogs-vs-cats")
    run_dir, record = run_smoke_row("small_data", tmp_path, "setting=smoke")
    predicts_a_file(run_dir, tmp_path)  # the notebook records its preprocessing
    metrics, images = record.metrics, record.params["images"]
    # 120 images: 24 test, 12 validation, 84 training of which 20 keep their labels
    assert images == {"labelled": 20, "unlabelled_pool": 64, "val": 12, "test": 24}
    for key in ("rank1", "tta_rank1", "pseudo_rank1", "pseudo_tta_rank1"):
        assert 0.0 <= metrics[key] <= 1.0, key
    # TTA: its first view is the original, which scores exactly as the plain prediction
    assert metrics["tta_views"] == 3
    assert metrics["tta_first_view_rank1"] == metrics["rank1"]
    assert metrics["tta_gain"] == pytest.approx(metrics["tta_rank1"] - metrics["rank1"])
    # pseudo-labels at threshold 0: every pool image kept, scored against its hidden label
    assert metrics["pseudo_pool"] == metrics["pseudo_kept"] == 64
    assert metrics["pseudo_labels_right"] + metrics["pseudo_labels_wrong"] == 64
    assert metrics["pseudo_label_accuracy"] == pytest.approx(metrics["pseudo_labels_right"] / 64)
    # the second training ran on the labelled images plus the kept ones, as its own small run
    stage = json.loads((run_dir / "pseudo_stage" / "record.json").read_text())
    assert stage["status"] == "ok" and stage["params"]["training_images"] == 20 + 64
    assert stage["metrics"]["rank1"] == metrics["pseudo_rank1"]
    assert metrics["final_rank1"] == metrics["pseudo_tta_rank1"]
    for name in (
        "model.keras",
        "curves.png",
        "pseudo_stage/curves.png",
        "figures/tta_views.png",
        "figures/tta_by_views.png",
        "figures/pseudo_label_confidence.png",
        "figures/pseudo_tta_confusion_matrix.png",
    ):
        assert (run_dir / name).is_file(), name
    html = (run_dir / "run.html").read_text()
    assert "Smoke run" in html and "not comparable with anything" in html
