"""Data sets by name: `cvlab.data.load("mnist5k")`, usable from a grid YAML."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from cvlab.data.dataset import Dataset, stratified_splits
from cvlab.data.packaged import load_digits, load_mnist5k
from cvlab.errors import UnknownNameError

DATASETS: dict[str, Callable[..., Dataset]] = {
    "mnist5k": load_mnist5k,
    "digits": load_digits,
}


def load(name: str, **options: Any) -> Dataset:
    """Load the data set registered as `name` with its options (splits, seed, ...)."""
    try:
        loader = DATASETS[name]
    except KeyError:
        raise UnknownNameError("data set", name, list(DATASETS)) from None
    return loader(**options)


__all__ = ["DATASETS", "Dataset", "load", "stratified_splits"]
