"""Best and last value of every per-epoch metric: what a run reached, not only where it ended.

A run that peaked at epoch 30 and drifted down by epoch 40 is ranked by its last value in most
trackers; the record keeps both, with the epochs, so the leaderboard can rank by either
(`rank_by: val_accuracy:best` or `val_accuracy:last`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any, Literal

from pydantic import BaseModel

Mode = Literal["max", "min"]
SUFFIXES = ("best", "last", "best_epoch")
# History columns that describe the training, not a result to rank by.
NOT_RESULTS = frozenset({"epoch", "lr", "learning_rate", "time_s"})
# A metric whose name holds one of these words is better when lower.
_LOWER_IS_BETTER = ("loss", "error", "mse", "mae", "distance", "fid", "perplexity")


def default_mode(metric: str) -> Mode:
    """`min` for losses and errors, `max` for everything else (accuracy, PSNR, ...)."""
    lowered = metric.lower()
    return "min" if any(word in lowered for word in _LOWER_IS_BETTER) else "max"


class EpochSummary(BaseModel):
    """One per-epoch metric of a run: its minimum and maximum (with their epochs) and last value;
    `best` reads the one its direction (`mode`) prefers."""

    mode: Mode
    min: float
    min_epoch: int
    max: float
    max_epoch: int
    last: float
    last_epoch: int

    def best(self, mode: Mode | None = None) -> float:
        return self.max if (mode or self.mode) == "max" else self.min

    def best_epoch(self, mode: Mode | None = None) -> int:
        return self.max_epoch if (mode or self.mode) == "max" else self.min_epoch

    def value(self, suffix: str, mode: Mode | None = None) -> float:
        if suffix == "best":
            return self.best(mode)
        if suffix == "best_epoch":
            return float(self.best_epoch(mode))
        if suffix == "last":
            return self.last
        raise ValueError(f"unknown summary {suffix!r}: use one of {', '.join(SUFFIXES)}")


def summarize_history(rows: Iterable[Mapping[str, Any]]) -> dict[str, EpochSummary]:
    """Per metric of `rows` (one dict per epoch, with `epoch`): min, max, last and their epochs.

    Non-finite values (a diverged epoch) are skipped for min/max; ties keep the earliest epoch.
    """
    found: dict[str, dict[str, Any]] = {}
    for row in rows:
        epoch = int(row["epoch"])
        for name, raw in row.items():
            if name in NOT_RESULTS:
                continue
            try:
                value = float(raw)
            except (TypeError, ValueError):
                continue
            if not math.isfinite(value):
                continue
            entry = found.setdefault(
                name, {"min": value, "min_epoch": epoch, "max": value, "max_epoch": epoch}
            )
            if value < entry["min"]:
                entry["min"], entry["min_epoch"] = value, epoch
            if value > entry["max"]:
                entry["max"], entry["max_epoch"] = value, epoch
            entry["last"], entry["last_epoch"] = value, epoch
    return {name: EpochSummary(mode=default_mode(name), **entry) for name, entry in found.items()}


def split_metric(name: str) -> tuple[str, str | None]:
    """`val_accuracy:best` -> (`val_accuracy`, `best`); a plain name -> (name, None)."""
    base, sep, suffix = name.rpartition(":")
    if sep and suffix in SUFFIXES and base:
        return base, suffix
    return name, None


def resolve_metric(
    name: str,
    metrics: Mapping[str, Any],
    epoch_metrics: Mapping[str, EpochSummary],
    mode: Mode | None = None,
) -> Any:
    """The value `name` means for a run: a final metric, or `<metric>:best|last|best_epoch` of its
    history. `mode` (the grid's rank mode) decides which end is best; else the metric's own."""
    base, suffix = split_metric(name)
    if suffix is None:
        return metrics.get(name)
    summary = epoch_metrics.get(base)
    return None if summary is None else summary.value(suffix, mode)


def flat_summary(epoch_metrics: Mapping[str, EpochSummary]) -> dict[str, float]:
    """`<metric>:best`, `<metric>:best_epoch` and `<metric>:last` of each metric, as plain values."""
    flat: dict[str, float] = {}
    for name, summary in epoch_metrics.items():
        flat[f"{name}:best"] = summary.best()
        flat[f"{name}:best_epoch"] = summary.best_epoch()
        flat[f"{name}:last"] = summary.last
    return flat
