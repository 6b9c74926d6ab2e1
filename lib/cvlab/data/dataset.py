"""`Dataset`: train/validation/test splits of images and integer labels, with class names."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import numpy as np

SPLITS = ("train", "val", "test")
T = TypeVar("T")  # a path, or a row number where the images are already in memory


@dataclass
class ImageIndex:
    """A file-based data set before decoding: per split, image paths and integer labels.

    Loaders of on-disk layouts return one (`cvlab.data.index(name)`); `load` decodes it into a
    `Dataset`, and the HDF5 builder streams it to disk in batches without holding it in memory.
    """

    name: str
    class_names: list[str]
    splits: dict[str, tuple[list[Path], np.ndarray]]
    source: str = ""

    def counts(self) -> dict[str, int]:
        return {split: len(paths) for split, (paths, _) in self.splits.items()}


@dataclass
class Dataset:
    """Images as float32 arrays (N, H, W, C) in [0, 1]; labels as int64 (N,)."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: list[str]
    synthetic: bool = False
    source: str = ""
    info: dict[str, object] = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])

    def summary(self) -> str:
        kind = "synthetic" if self.synthetic else "real"
        return (
            f"{self.name} ({kind}; {self.source}): {len(self.x_train)} train, {len(self.x_val)} val, "
            f"{len(self.x_test)} test, {self.num_classes} classes, images {self.input_shape}"
        )


def _as_count(size: int | float, n: int, option: str) -> int:
    """A split size given as a count (int) or a fraction of `n` (float), as a count."""
    if isinstance(size, bool) or not isinstance(size, int | float):
        raise TypeError(f"{option}={size!r}: give a fraction (float) or a count (int)")
    if isinstance(size, float):
        if not 0 <= size < 1:
            raise ValueError(f"{option}={size}: a fraction must be in [0, 1)")
        return int(np.ceil(size * n))  # scikit-learn's rounding for test_size
    if size < 0:
        raise ValueError(f"{option}={size}: a count cannot be negative")
    return size


def split_paths(
    paths: Sequence[T],
    labels: Sequence[int] | np.ndarray,
    *,
    val: int | float,
    test: int | float,
    seed: int,
    what: str,
) -> dict[str, tuple[list[T], np.ndarray]]:
    """Stratified train/val/test split of a list of files (or row numbers): test first, then val from the rest (as
    the book does). Sizes are fractions of all images (float) or counts (int); 0 leaves a split
    empty. The same paths, labels and seed always give the same split, and each split comes
    shuffled (classes mixed), so that a builder writing it in order needs no shuffle later."""
    from sklearn.model_selection import train_test_split  # imported here: it costs ~1 s

    labels = np.asarray(labels, dtype=np.int64)
    n = len(paths)
    n_test, n_val = _as_count(test, n, "test"), _as_count(val, n, "val")
    if n_test + n_val >= n:
        raise ValueError(
            f"{what}: val ({n_val}) + test ({n_test}) would take all {n} images; "
            "fix: use smaller val/test sizes"
        )
    idx = np.arange(n)

    def carve(pool: np.ndarray, count: int, split: str) -> tuple[np.ndarray, np.ndarray]:
        if count == 0:
            return pool, pool[:0]
        try:
            rest, part = train_test_split(
                pool, test_size=count, stratify=labels[pool], random_state=seed
            )
        except ValueError as exc:
            per_class = np.bincount(labels[pool]).tolist()
            raise ValueError(
                f"{what}: cannot carve a stratified {split} split of {count} from {len(pool)} "
                f"images (per class {per_class}): {exc}. Fix: use more images per class, or a "
                f"{split} size of at least one image per class"
            ) from None
        return rest, part

    if n_test == n_val == 0:  # nothing carved: shuffle anyway, as train_test_split does
        idx = np.random.default_rng(seed).permutation(n)
    rest, test_idx = carve(idx, n_test, "test")
    train_idx, val_idx = carve(rest, n_val, "val")
    return {
        split: ([paths[i] for i in part], labels[part])
        for split, part in (("train", train_idx), ("val", val_idx), ("test", test_idx))
    }


def stratified_splits(
    x: np.ndarray, y: np.ndarray, *, val_fraction: float, test_fraction: float, seed: int
) -> tuple[np.ndarray, ...]:
    """In-memory arrays split into train/val/test with the class balance kept in each, by the
    same rule as the file-based data sets (`split_paths`): x_train, y_train, x_val, ..."""
    parts = split_paths(
        np.arange(len(y)), y, val=val_fraction, test=test_fraction, seed=seed, what="data set"
    )
    out: list[np.ndarray] = []
    for split in SPLITS:
        rows, labels = parts[split]
        out += [x[np.asarray(rows, dtype=np.int64)], labels]
    return tuple(out)
