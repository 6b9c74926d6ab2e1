"""Seeds aggregated (mean, std, finished count, significance), best and last per epoch metric,
ranking by either, and `cvlab.leaderboard()` as a DataFrame, on hand-made leaderboards."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

import cvlab
from cvlab.report.seed_groups import NOT_SIGNIFICANT, WORSE, confidence_interval, group_by_seed
from cvlab.report.store import LeaderboardStore
from cvlab.runs import RunRecord
from cvlab.runs.epoch_metrics import resolve_metric, split_metric, summarize_history
from cvlab.workspace import Workspace

# (lr, seed) -> test accuracy; lr 0.1 is clearly better than 0.001, 0.01 overlaps 0.1
ACCURACY = {
    (0.1, 0): 0.90, (0.1, 1): 0.92, (0.1, 2): 0.91,
    (0.01, 0): 0.89, (0.01, 1): 0.93, (0.01, 2): 0.88,
    (0.001, 0): 0.60, (0.001, 1): 0.61, (0.001, 2): 0.62,
}  # fmt: skip


def _record(grid, run_id, params, metrics, status="ok", history=None, seed=None):
    rec = RunRecord(
        run_id=run_id, grid=grid, name=run_id, params=params, metrics=metrics, status=status,
        seed=seed if seed is not None else params.get("seed"),
        started_at=pd.Timestamp("2026-01-01", tz="UTC").to_pydatetime(),
    )  # fmt: skip
    if history is not None:
        rec.epoch_metrics = summarize_history(history)
    return rec


def _store(tmp_path, records, metric="test_accuracy", mode="max", grid="g"):
    ws = Workspace.at(tmp_path)
    store = LeaderboardStore(ws.leaderboard_db)
    store.register_grid(grid, notebook="nb.ipynb", spec_path="g.yaml", rank_metric=metric,
                        rank_mode=mode)  # fmt: skip
    store.upsert(records)
    return store


def _seed_records(failed=()):
    records = []
    for (lr, seed), acc in ACCURACY.items():
        status = "failed" if (lr, seed) in failed else "ok"
        metrics = {} if status == "failed" else {"test_accuracy": acc, "test_loss": 1 - acc}
        records.append(_record("g", f"r{lr}-{seed}", {"lr": lr, "seed": seed}, metrics, status))
    return records


def test_mean_and_std_over_seeds_match_numpy(tmp_path):
    _store(tmp_path, _seed_records())
    groups = cvlab.leaderboard("g", group_by_seed=True, out=tmp_path)
    assert list(groups["params.lr"]) == [0.1, 0.01, 0.001]  # best mean first
    assert "params.seed" not in groups.columns
    for _, row in groups.iterrows():
        values = np.array([ACCURACY[(row["params.lr"], s)] for s in (0, 1, 2)])
        assert row["test_accuracy.mean"] == pytest.approx(values.mean())
        assert row["test_accuracy.std"] == pytest.approx(values.std(ddof=1))
        assert row["test_loss.mean"] == pytest.approx((1 - values).mean())
        assert row["rank_mean"] == pytest.approx(values.mean())
        assert (row["seeds_finished"], row["seeds_total"]) == (3, 3)
        assert row["seeds"] == [0, 1, 2]


def test_a_failed_seed_counts_two_of_three_and_the_mean_is_over_the_two(tmp_path):
    _store(tmp_path, _seed_records(failed={(0.001, 1)}))
    groups = cvlab.leaderboard("g", group_by_seed=True, out=tmp_path).set_index("params.lr")
    row = groups.loc[0.001]
    assert (row["seeds_finished"], row["seeds_total"]) == (2, 3)
    assert row["test_accuracy.mean"] == pytest.approx((0.60 + 0.62) / 2)
    assert row["test_accuracy.std"] == pytest.approx(np.std([0.60, 0.62], ddof=1))
    assert row["statuses"] == ["ok", "failed", "ok"]


def test_intervals_decide_significance(tmp_path):
    groups = group_by_seed(_store(tmp_path, _seed_records()).frame()).set_index("params.lr")
    # 95% Student-t interval: mean +- t(0.975, n-1) * s / sqrt(n); t(0.975, 2) = 4.3027
    values = np.array([0.90, 0.92, 0.91])
    half = 4.302653 * values.std(ddof=1) / math.sqrt(3)
    assert confidence_interval(values) == pytest.approx((0.91 - half, 0.91 + half), abs=1e-6)
    assert groups.loc[0.1, "rank_ci_low"] == pytest.approx(0.91 - half, abs=1e-6)
    assert groups.loc[0.1, "vs_best"] == "best"
    assert groups.loc[0.01, "vs_best"] == NOT_SIGNIFICANT  # 0.90 +- wide overlaps 0.91 +- narrow
    assert groups.loc[0.001, "vs_best"] == WORSE
    assert math.isnan(confidence_interval(np.array([0.5]))[0])


def test_min_mode_ranks_the_lowest_mean_first(tmp_path):
    _store(tmp_path, _seed_records(), metric="test_loss", mode="min")
    groups = cvlab.leaderboard("g", group_by_seed=True, out=tmp_path)
    assert list(groups["params.lr"]) == [0.1, 0.01, 0.001]
    assert groups["rank_mean"].iloc[0] == pytest.approx(0.09)


HISTORY = [
    {"epoch": 1, "loss": 1.0, "val_accuracy": 0.50, "val_loss": 0.9, "lr": 0.1},
    {"epoch": 2, "loss": 0.6, "val_accuracy": 0.80, "val_loss": 0.5, "lr": 0.1},
    {"epoch": 3, "loss": 0.4, "val_accuracy": 0.80, "val_loss": 0.6, "lr": 0.01},
    {"epoch": 4, "loss": 0.3, "val_accuracy": 0.70, "val_loss": 0.7, "lr": 0.01},
]


def test_best_and_last_from_a_hand_made_history():
    summary = summarize_history(HISTORY)
    assert "lr" not in summary and "epoch" not in summary
    acc, val_loss = summary["val_accuracy"], summary["val_loss"]
    assert (acc.mode, acc.best(), acc.best_epoch(), acc.last, acc.last_epoch) == (
        "max",
        0.80,
        2,
        0.70,
        4,
    )  # a tie keeps the earliest epoch
    assert (val_loss.mode, val_loss.best(), val_loss.best_epoch(), val_loss.last) == (
        "min",
        0.5,
        2,
        0.7,
    )
    assert split_metric("val_accuracy:best") == ("val_accuracy", "best")
    assert split_metric("a:b") == ("a:b", None)
    assert resolve_metric("val_loss:best", {}, summary) == 0.5
    assert resolve_metric("val_loss:best", {}, summary, mode="max") == 0.9
    assert resolve_metric("val_accuracy:best_epoch", {}, summary) == 2
    assert resolve_metric("val_accuracy:last", {}, summary) == 0.70
    assert resolve_metric("test_accuracy", {"test_accuracy": 0.6}, summary) == 0.6
    assert resolve_metric("nothing:best", {}, summary) is None


def test_log_epoch_keeps_the_summary_in_the_record(tmp_path):
    run = cvlab.runs.start(tmp_path / "run", params={}, seed=0)
    for row in HISTORY:
        run.log_epoch(row["epoch"], **{k: v for k, v in row.items() if k != "epoch"})
    record = RunRecord.load(tmp_path / "run")
    assert record.epoch_metrics["val_accuracy"].best_epoch() == 2
    assert record.epoch_metrics["loss"].last == 0.3


def test_ranking_by_best_and_by_last_gives_their_orders(tmp_path):
    # a peaks high then falls; b climbs steadily and ends highest
    peak = [{"epoch": e, "val_accuracy": v} for e, v in enumerate([0.5, 0.9, 0.6], 1)]
    climb = [{"epoch": e, "val_accuracy": v} for e, v in enumerate([0.5, 0.7, 0.8], 1)]
    records = [
        _record("g", "a", {"x": 1}, {}, history=peak),
        _record("g", "b", {"x": 2}, {}, history=climb),
    ]
    by_best = cvlab.leaderboard(
        out=_store(tmp_path / "best", records, "val_accuracy:best").path.parents[1]
    )
    by_last = cvlab.leaderboard(
        out=_store(tmp_path / "last", records, "val_accuracy:last").path.parents[1]
    )
    assert list(by_best["run_id"]) == ["a", "b"]
    assert list(by_best["rank_value"]) == [0.9, 0.8]
    assert list(by_last["run_id"]) == ["b", "a"]
    assert list(by_last["rank_value"]) == [0.8, 0.6]
    # best and last side by side, with the epoch of the best
    row = by_best.set_index("run_id").loc["a"]
    assert (row["metrics.val_accuracy:best"], row["metrics.val_accuracy:best_epoch"]) == (0.9, 2)
    assert row["metrics.val_accuracy:last"] == 0.6


def test_leaderboard_errors_name_the_fix(tmp_path):
    with pytest.raises(FileNotFoundError, match="run a grid first"):
        cvlab.leaderboard(out=tmp_path)
    _store(tmp_path, _seed_records())
    with pytest.raises(KeyError, match="grids: g"):
        cvlab.leaderboard("nope", out=tmp_path)
    runs = cvlab.leaderboard(out=tmp_path)
    assert len(runs) == 9 and runs["rank_value"].iloc[0] == 0.93


def test_rank_figure_draws_seeds_as_error_bars(tmp_path, monkeypatch):
    from matplotlib.container import ErrorbarContainer

    from cvlab.report import plots

    figures = []
    monkeypatch.setattr(plots, "save_png", lambda fig, path: figures.append(fig) or path)
    frame = _store(tmp_path, _seed_records()).frame()
    assert plots.plot_rank_vs_params(frame, tmp_path / "rank.png") is not None
    (fig,) = figures
    (ax,) = fig.axes  # one panel, learning rate: the seeds are no panel of their own
    (bars,) = [c for c in ax.containers if isinstance(c, ErrorbarContainer)]
    assert len(bars.lines[2][0].get_segments()) == 3  # one bar per learning rate
