"""`Dataset`: train/validation/test splits of images and integer labels, with class names."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

SPLITS = ("train", "val", "test")


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


def stratified_splits(
    x: np.ndarray, y: np.ndarray, *, val_fraction: float, test_fraction: float, seed: int
) -> tuple[np.ndarray, ...]:
    """Split into train/val/test with the class balance kept in each (scikit-learn)."""
    from sklearn.model_selection import train_test_split  # imported here: it costs ~1 s

    if not 0 < test_fraction < 1 or not 0 <= val_fraction < 1 or val_fraction + test_fraction >= 1:
        raise ValueError(
            f"val_fraction={val_fraction} and test_fraction={test_fraction}: each must be in [0, 1) "
            "and together below 1"
        )
    x_rest, x_test, y_rest, y_test = train_test_split(
        x, y, test_size=test_fraction, stratify=y, random_state=seed
    )
    if val_fraction == 0:
        return x_rest, y_rest, x_rest[:0], y_rest[:0], x_test, y_test
    x_train, x_val, y_train, y_val = train_test_split(
        x_rest,
        y_rest,
        test_size=val_fraction / (1 - test_fraction),
        stratify=y_rest,
        random_state=seed,
    )
    return x_train, y_train, x_val, y_val, x_test, y_test
