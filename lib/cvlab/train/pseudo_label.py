"""Pseudo-labelling: a model trained on the few labelled images labels the unlabelled ones; the
images it is confident about join the training set with the model's labels, and the model is
trained again on more data than was ever labelled by hand.

For an experiment, the unlabelled pool is made by hiding the labels of part of a training split
(`hide_labels`); the hidden labels are kept aside only to report how many pseudo-labels were
right, never to choose them.

    labelled, pool = hide_labels(data, labelled=400, seed=42)
    ...train a model on `labelled`...
    chosen = pseudo_label(model, pool.images, threshold=0.9, true_labels=pool.hidden_labels)
    bigger = add_pseudo_labels(labelled, pool.images, chosen)   # train again on this
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from cvlab.data.dataset import Dataset, split_paths
from cvlab.figures import new_figure
from cvlab.train.tta import tta_predict

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = [
    "PseudoLabels",
    "confidence_figure",
    "UnlabelledPool",
    "add_pseudo_labels",
    "hide_labels",
    "pseudo_label",
    "select_pseudo_labels",
]


@dataclass
class UnlabelledPool:
    """Images treated as unlabelled, with their true labels kept aside for the report only."""

    images: np.ndarray
    hidden_labels: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.images)


def hide_labels(
    data: Dataset, labelled: int | float, *, seed: int
) -> tuple[Dataset, UnlabelledPool]:
    """Split `data`'s training split into a labelled part (`labelled` images: a count, or a
    fraction as a float) and an unlabelled pool (the rest), stratified by class and fixed by
    `seed`. Validation and test splits are left as they are."""
    n = len(data.y_train)
    if isinstance(labelled, bool) or not isinstance(labelled, int | float):
        raise TypeError(f"labelled={labelled!r}: a count (int) or a fraction (float)")
    keep = labelled if isinstance(labelled, int) else round(float(labelled) * n)
    if not data.num_classes <= keep <= n - data.num_classes:
        raise ValueError(
            f"labelled={labelled!r} keeps {keep} of the {n} training images; keep at least one "
            f"image per class on each side ({data.num_classes} to {n - data.num_classes})"
        )
    parts = split_paths(
        np.arange(n), data.y_train, val=0, test=n - keep, seed=seed, what="the training split"
    )
    kept = np.asarray(parts["train"][0], dtype=np.int64)
    hidden = np.asarray(parts["test"][0], dtype=np.int64)
    labelled_data = replace(
        data,
        x_train=data.x_train[kept],
        y_train=data.y_train[kept],
        info={**data.info, "labelled": len(kept), "unlabelled": len(hidden)},
    )
    return labelled_data, UnlabelledPool(data.x_train[hidden], data.y_train[hidden])


@dataclass
class PseudoLabels:
    """The pool images kept (`indices` into the pool), the model's labels for them and its
    confidence (top probability); `correct` counts the labels that match the hidden ones,
    when those were given."""

    indices: np.ndarray
    labels: np.ndarray
    confidence: np.ndarray
    threshold: float
    pool_size: int
    num_classes: int
    correct: int | None = None

    @property
    def count(self) -> int:
        return len(self.indices)

    @property
    def accuracy(self) -> float | None:
        """Share of the kept labels that are right (None without hidden labels or when none kept)."""
        if self.correct is None or self.count == 0:
            return None
        return self.correct / self.count

    def per_class(self) -> list[int]:
        """How many pseudo-labels each class received."""
        return np.bincount(self.labels, minlength=self.num_classes).tolist()

    def metrics(self, prefix: str = "pseudo_") -> dict[str, Any]:
        """Counts (and accuracy, when known) for `run.log_metrics(**...)`."""
        out: dict[str, Any] = {
            f"{prefix}pool": self.pool_size,
            f"{prefix}kept": self.count,
            f"{prefix}kept_fraction": self.count / self.pool_size if self.pool_size else 0.0,
        }
        if self.correct is not None:
            out[f"{prefix}labels_right"] = self.correct
            out[f"{prefix}labels_wrong"] = self.count - self.correct
            out[f"{prefix}label_accuracy"] = self.accuracy
        return out


def select_pseudo_labels(
    probabilities: Any,
    threshold: float,
    *,
    true_labels: Sequence[int] | np.ndarray | None = None,
) -> PseudoLabels:
    """Keep the rows whose top probability is above `threshold` (strictly), labelled with their
    most probable class. `threshold=0` keeps every row (the seed's recipe: label them all)."""
    probs = np.asarray(probabilities, dtype=np.float64)
    if probs.ndim != 2 or probs.shape[1] < 2:
        raise ValueError(
            f"probabilities: expected shape (N, classes) with 2 classes or more, got {probs.shape}"
        )
    if not 0.0 <= threshold < 1.0:
        raise ValueError(f"threshold={threshold}: a probability in [0, 1); 0 keeps every image")
    confidence = probs.max(axis=1)
    indices = np.flatnonzero(confidence > threshold)
    labels = probs[indices].argmax(axis=1).astype(np.int64)
    correct = None
    if true_labels is not None:
        truth = np.asarray(true_labels, dtype=np.int64).reshape(-1)
        if len(truth) != len(probs):
            raise ValueError(f"{len(probs)} predictions but {len(truth)} true labels")
        correct = int(np.sum(truth[indices] == labels))
    return PseudoLabels(
        indices=indices,
        labels=labels,
        confidence=confidence[indices],
        threshold=float(threshold),
        pool_size=len(probs),
        num_classes=probs.shape[1],
        correct=correct,
    )


def pseudo_label(
    model: Any,
    images: np.ndarray,
    threshold: float,
    *,
    true_labels: Sequence[int] | np.ndarray | None = None,
    batch_size: int = 64,
    tta: Any = None,
) -> PseudoLabels:
    """Label `images` with `model` (a Keras model, or a function from a batch to probabilities)
    and keep those above `threshold`. `tta` (a `TTAConfig` or its dict) labels from the average
    over augmented copies instead of one prediction. `true_labels` only scores the result."""
    images = np.asarray(images)
    if tta is not None:
        probs = tta_predict(model, images, tta, batch_size=batch_size).probabilities
    elif hasattr(model, "predict"):
        probs = np.asarray(model.predict(images, batch_size=batch_size, verbose=0))
    elif callable(model):
        probs = np.asarray(model(images))
    else:
        raise TypeError(
            f"model: a Keras model or a function of a batch, got {type(model).__name__}"
        )
    return select_pseudo_labels(probs, threshold, true_labels=true_labels)


def add_pseudo_labels(data: Dataset, pool_images: np.ndarray, chosen: PseudoLabels) -> Dataset:
    """`data` with the chosen pool images and their pseudo-labels appended to the training
    split (validation and test unchanged): the set to train again on."""
    pool_images = np.asarray(pool_images)
    if len(pool_images) != chosen.pool_size:
        raise ValueError(
            f"pool_images has {len(pool_images)} images but the pseudo-labels were chosen from "
            f"a pool of {chosen.pool_size}; pass the same pool"
        )
    if pool_images.shape[1:] != data.x_train.shape[1:]:
        raise ValueError(
            f"pool images are {pool_images.shape[1:]} but the training images "
            f"{data.x_train.shape[1:]}; load both at the same size"
        )
    x = np.concatenate([data.x_train, pool_images[chosen.indices].astype(data.x_train.dtype)])
    y = np.concatenate([data.y_train, chosen.labels.astype(data.y_train.dtype)])
    return replace(data, x_train=x, y_train=y, info={**data.info, "pseudo_labelled": chosen.count})


def confidence_figure(
    probabilities: Any, threshold: float, true_labels: Sequence[int] | np.ndarray | None = None
) -> Figure:
    """Histogram of the model's confidence over the whole pool with the threshold marked; with
    the hidden labels, right and wrong labels stacked apart (what the threshold lets through)."""

    probs = np.asarray(probabilities)
    confidence = probs.max(axis=1)
    low = 1.0 / probs.shape[1]
    bins = np.linspace(low, 1.0, 21)
    fig, axes = new_figure(figsize=(7.0, 3.6))
    ax = axes[0, 0]
    if true_labels is None:
        ax.hist(confidence, bins=bins, color="tab:blue", label="pool images")
    else:
        right = probs.argmax(axis=1) == np.asarray(true_labels).reshape(-1)
        ax.hist([confidence[right], confidence[~right]], bins=bins, stacked=True,
                color=["tab:green", "tab:red"], label=["label right", "label wrong"])  # fmt: skip
    ax.axvline(threshold, color="black", linestyle="--", label=f"threshold {threshold:g}")
    ax.set_xlim(min(low, threshold) - 0.02, 1.0)
    ax.set_xlabel("confidence (top probability)")
    ax.set_ylabel("pool images")
    ax.set_title(f"pseudo-labels: {int(np.sum(confidence > threshold))} of {len(probs)} kept")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
