"""Data sets by name: `cvlab.data.load("mnist5k")`, usable from a grid YAML.

`load(name, **options)` returns a `Dataset` (arrays in memory). For data sets stored as image
files, `index(name, **options)` returns an `ImageIndex` (paths and labels per split) that the HDF5
builder streams from without decoding everything at once.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from cvlab.data.build import build_hdf5
from cvlab.data.dataset import SPLITS, Dataset, ImageIndex, stratified_splits
from cvlab.data.hdf5 import HDF5DatasetReader, HDF5DatasetWriter
from cvlab.data.images import preprocessing_of
from cvlab.data.pipeline import make_pipeline
from cvlab.errors import UnknownNameError

# name -> "module:function"; modules load on first use, so listing names is cheap.
_LOADERS: dict[str, str] = {
    "mnist5k": "cvlab.data.packaged:load_mnist5k",
    "digits": "cvlab.data.packaged:load_digits",
    "lfw-faces": "cvlab.data.packaged:load_lfw_faces",
    "photo-crops": "cvlab.data.packaged:load_photo_crops",
    "shapes": "cvlab.data.synthetic:load_shapes",
    "cifar10": "cvlab.data.cifar10:load_cifar10",
    "tiny-imagenet": "cvlab.data.tiny_imagenet:load_tiny_imagenet",
    "image-folder": "cvlab.data.image_folder:load_image_folder",
    "dogs-vs-cats": "cvlab.data.dogs_vs_cats:load_dogs_vs_cats",
    "flowers17": "cvlab.data.flowers17:load_flowers17",
    "imagenet-sample": "cvlab.data.imagenet_sample:load_imagenet_sample",
}
_INDEXERS: dict[str, str] = {
    "cifar10": "cvlab.data.cifar10:index_cifar10",
    "tiny-imagenet": "cvlab.data.tiny_imagenet:index_tiny_imagenet",
    "image-folder": "cvlab.data.image_folder:index_image_folder",
    "dogs-vs-cats": "cvlab.data.dogs_vs_cats:index_dogs_vs_cats",
    "flowers17": "cvlab.data.flowers17:index_flowers17",
    "imagenet-sample": "cvlab.data.imagenet_sample:index_imagenet_sample",
}


def _resolve(table: dict[str, str], kind: str, name: str) -> Callable[..., Any]:
    try:
        module, func = table[name].split(":")
    except KeyError:
        raise UnknownNameError(kind, name, list(table)) from None
    return getattr(importlib.import_module(module), func)


def names() -> list[str]:
    """Every registered data set name."""
    return sorted(_LOADERS)


def file_based_names() -> list[str]:
    """Data sets read from image files on disk (they have an `index`)."""
    return sorted(_INDEXERS)


def load(name: str, /, **options: Any) -> Dataset:
    """Load the data set registered as `name` with its options (splits, seed, size, ...)."""
    return _resolve(_LOADERS, "data set", name)(**options)


def index(name: str, /, **options: Any) -> ImageIndex:
    """The files and labels of a file-based data set, per split, without decoding them."""
    return _resolve(_INDEXERS, "file-based data set", name)(**options)


__all__ = [
    "SPLITS",
    "Dataset",
    "HDF5DatasetReader",
    "HDF5DatasetWriter",
    "ImageIndex",
    "build_hdf5",
    "file_based_names",
    "index",
    "load",
    "make_pipeline",
    "names",
    "preprocessing_of",
    "stratified_splits",
]
