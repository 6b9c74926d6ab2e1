"""Rank-k accuracy (the book's `rank5_accuracy`): a foundation, since the ImageNet helpers of
`cvlab.models` and the evaluation of `cvlab.train` both score with it."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np


def as_labels(labels: Any) -> np.ndarray:
    """Integer labels from integers or one-hot rows."""
    labels = np.asarray(labels)
    if labels.ndim == 2 and labels.shape[1] > 1:
        return labels.argmax(axis=1)
    return labels.reshape(-1).astype(np.int64)


def rank_accuracy(
    probabilities: Any, labels: Any, k: int | Iterable[int] = (1, 5)
) -> dict[str, float]:
    """`{"rank1": ..., "rank5": ...}`: the share of samples whose true class is among the `k`
    most probable, as the book's `rank5_accuracy` (probabilities N×T, labels N integers or
    one-hot). Ties go to the lower class index (so rank-1 equals argmax accuracy); a `k` at or
    above the number of classes gives 1.0.
    """
    probs = np.asarray(probabilities)
    if probs.ndim != 2:
        raise ValueError(f"probabilities: expected shape (N, classes), got {probs.shape}")
    truth = as_labels(labels)
    if len(truth) != len(probs):
        raise ValueError(f"{len(probs)} predictions but {len(truth)} labels")
    ks = [k] if isinstance(k, int) else list(k)
    if not ks or any(int(v) < 1 for v in ks):
        raise ValueError(f"k: ranks from 1 up, got {k!r}")
    if len(probs) == 0:
        return {f"rank{int(v)}": float("nan") for v in ks}
    order = np.argsort(-probs, axis=1, kind="stable")  # most probable first, ties by class index
    position = np.argmax(order == truth[:, None], axis=1)  # where the true class landed (0 = top)
    return {f"rank{int(v)}": float(np.mean(position < int(v))) for v in ks}
