"""CIFAR-10 (60,000 32×32 images, 10 classes), from the official pickles or from JPEG folders.

Looked for in `directory`, else `<data root>/cifar10`, then Keras's download cache; with
`download=True` Keras fetches the official pickles when none is found. Validation is carved from
the training set (stratified); test is the official test set.
"""

from __future__ import annotations

import logging
import os
import pickle
import socket
from pathlib import Path
from typing import Any

import numpy as np

from cvlab.data.cache import data_root, dataset_dir
from cvlab.data.catalog import CatalogEntry, Download, register_dataset
from cvlab.data.dataset import Dataset, ImageIndex
from cvlab.data.image_folder import list_images, split_paths, subfolders, take_per_class
from cvlab.data.images import decode_index
from cvlab.errors import DatasetLayoutError, DatasetNotFoundError
from cvlab.image_prep import resize, to_scale

log = logging.getLogger(__name__)

NAME = "cifar10"
CLASS_NAMES = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
]
PICKLE_FOLDER = "cifar-10-batches-py"
SPLIT_DIRS = ("train", "test")  # the JPEG layout
TRAIN_BATCHES = [f"data_batch_{i}" for i in range(1, 6)]
DOWNLOAD_HOST = "www.cs.toronto.edu"  # where keras.datasets.cifar10 downloads from

LAYOUTS = """\
  either the official python pickles (cifar-10-python.tar.gz):
    <folder>/cifar-10-batches-py/data_batch_1 ... data_batch_5, test_batch, batches.meta
    (or those files directly in <folder>)
  or JPEG folders, one per class:
    <folder>/train/<class>/*.jpg and <folder>/test/<class>/*.jpg
    (or under the archive's top folder <folder>/cifar10/)"""


# ---------------------------------------------------------------- finding the files


def keras_cache_dirs() -> list[Path]:
    """Where `keras.datasets.cifar10` leaves the pickles (Keras 3, then Keras 2)."""
    home = Path(os.environ.get("KERAS_HOME") or Path.home() / ".keras").expanduser()
    datasets = home / "datasets"
    return [datasets / f"{PICKLE_FOLDER}-target" / PICKLE_FOLDER, datasets / PICKLE_FOLDER]


def _places(directory: str | Path | None) -> list[Path]:
    """An explicit `directory` only; else the data cache, then Keras's cache."""
    if directory is not None:
        return [dataset_dir(NAME, directory)]
    return [data_root() / NAME, *keras_cache_dirs()]


def _is_pickle_dir(folder: Path) -> bool:
    return all((folder / name).is_file() for name in [*TRAIN_BATCHES, "test_batch"])


def _is_jpeg_dir(folder: Path) -> bool:
    return all((folder / split).is_dir() and subfolders(folder / split) for split in SPLIT_DIRS)


def _find(places: list[Path]) -> tuple[str, Path] | None:
    """The first ("jpeg" | "pickle", folder) found, JPEG first within a place (as the index
    reads it, so that `index` and `load` see the same files)."""
    for place in places:
        for folder in (place, place / NAME):
            if _is_jpeg_dir(folder):
                return "jpeg", folder
        for folder in (place, place / PICKLE_FOLDER):
            if _is_pickle_dir(folder):
                return "pickle", folder
    return None


def _not_found(places: list[Path], extra: str = "") -> DatasetNotFoundError:
    listed = "\n".join(f"  {p}" for p in places)
    target = places[0]
    return DatasetNotFoundError(
        f"CIFAR-10 not found in any of:\n{listed}\nExpected layout:\n{LAYOUTS}\n"
        f"Fix: extract the official cifar-10-python.tar.gz, or the JPEG folders (cifar10.tar.gz), "
        f"into {target}; or pass directory=; or download=True when online.{extra}"
    )


# ---------------------------------------------------------------- JPEG folders


def _jpeg_split(folder: Path, classes: list[str]) -> tuple[list[Path], np.ndarray]:
    paths: list[Path] = []
    labels: list[int] = []
    for label, name in enumerate(classes):
        files = list_images(folder / name)
        paths += files
        labels += [label] * len(files)
    return paths, np.asarray(labels, dtype=np.int64)


def _jpeg_index(
    root: Path, *, val_fraction: float, seed: int, limit_per_class: int | None
) -> ImageIndex:
    classes = [d.name for d in subfolders(root / "train")]
    test_classes = [d.name for d in subfolders(root / "test")]
    if classes != test_classes:
        raise DatasetLayoutError(
            f"{root}: the class folders of train/ ({', '.join(classes)}) and test/ "
            f"({', '.join(test_classes)}) differ. Fix: give both the same class sub-folders"
        )
    train = take_per_class(*_jpeg_split(root / "train", classes), limit_per_class)
    test = take_per_class(*_jpeg_split(root / "test", classes), limit_per_class)
    carved = split_paths(
        *train, val=float(val_fraction), test=0, seed=seed, what=f"CIFAR-10 train at {root}"
    )
    splits = {"train": carved["train"], "val": carved["val"], "test": test}
    source = f"CIFAR-10 JPEG folders at {root} (val carved from train)"
    return ImageIndex(NAME, classes, splits, source=source)


# ---------------------------------------------------------------- official pickles


def _unpickle(path: Path) -> dict[str, Any]:
    """One CIFAR pickle with str keys (the official files have bytes keys)."""
    try:
        with path.open("rb") as f:
            raw = pickle.load(f, encoding="bytes")
    except (OSError, pickle.UnpicklingError, EOFError, ValueError) as exc:
        raise DatasetLayoutError(
            f"{path}: not a readable CIFAR-10 pickle ({type(exc).__name__}: {exc}). Fix: "
            "re-extract the official cifar-10-python.tar.gz"
        ) from None
    return {k.decode() if isinstance(k, bytes) else k: v for k, v in raw.items()}


def _read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    batch = _unpickle(path)
    try:
        data = np.asarray(batch["data"], dtype=np.uint8)
        labels = np.asarray(batch["labels"], dtype=np.int64)
    except KeyError as exc:
        raise DatasetLayoutError(
            f"{path}: no {exc.args[0]!r} entry (a CIFAR-10 batch has 'data' and 'labels'). "
            "Fix: re-extract the official cifar-10-python.tar.gz"
        ) from None
    return data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), labels  # CHW rows -> NHWC


def read_pickles(folder: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """The official batches: uint8 train and test images (NHWC), labels, and class names."""
    parts = [_read_batch(folder / name) for name in TRAIN_BATCHES]
    x_test, y_test = _read_batch(folder / "test_batch")
    names = list(CLASS_NAMES)
    if (folder / "batches.meta").is_file():
        meta = _unpickle(folder / "batches.meta").get("label_names")
        if meta:
            names = [n.decode() if isinstance(n, bytes) else str(n) for n in meta]
    x_train = np.concatenate([x for x, _ in parts])
    y_train = np.concatenate([y for _, y in parts])
    return x_train, y_train, x_test, y_test, names


def _first_per_class(
    x: np.ndarray, y: np.ndarray, limit: int | None
) -> tuple[np.ndarray, np.ndarray]:
    if limit is None:
        return x, y
    kept, labels = take_per_class(list(range(len(y))), y, limit)
    return x[kept], labels


def _from_arrays(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray,
    y_test: np.ndarray,
    names: list[str],
    *,
    size: int | tuple[int, int],
    val_fraction: float,
    seed: int,
    limit_per_class: int | None,
    source: str,
) -> Dataset:
    """A `Dataset` from uint8 arrays: limit, carve val from train, resize, scale to [0, 1]."""
    x_train, y_train = _first_per_class(x_train, y_train.astype(np.int64), limit_per_class)
    x_test, y_test = _first_per_class(x_test, y_test.astype(np.int64), limit_per_class)
    carved = split_paths(
        list(range(len(y_train))),
        y_train,
        val=float(val_fraction),
        test=0,
        seed=seed,
        what="CIFAR-10 train",
    )
    arrays = {}
    for split, (rows, labels) in carved.items():
        arrays[split] = (x_train[np.asarray(rows, dtype=np.int64)], labels)
    arrays["test"] = (x_test, y_test)
    h, w = (size, size) if isinstance(size, int) else size
    scaled = {
        split: (to_scale(resize(x, (h, w)), "0-1", source="0-255"), y)
        for split, (x, y) in arrays.items()
    }
    return Dataset(
        NAME,
        *scaled["train"],
        *scaled["val"],
        *scaled["test"],
        class_names=names,
        source=source,
        info={"skipped": 0, "skipped_files": [], "size": (h, w)},
    )


# ---------------------------------------------------------------- download


def _keras_load_data() -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """`keras.datasets.cifar10.load_data()` (imported here: TensorFlow is slow to import)."""
    from keras.datasets import cifar10

    return cifar10.load_data()


def _download(places: list[Path]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Fetch the official pickles through Keras; offline, fail within seconds, not minutes."""
    try:
        socket.create_connection((DOWNLOAD_HOST, 443), timeout=5).close()
    except OSError as exc:
        raise _not_found(
            places, f"\nThe download failed: {DOWNLOAD_HOST} is unreachable ({exc}); offline?"
        ) from None
    log.info("downloading CIFAR-10 (about 170 MB) with keras.datasets.cifar10")
    try:
        (x_train, y_train), (x_test, y_test) = _keras_load_data()
    except Exception as exc:  # Keras raises a bare Exception for URL failures
        raise _not_found(places, f"\nThe download failed: {type(exc).__name__}: {exc}") from None
    return x_train, y_train.reshape(-1), x_test, y_test.reshape(-1)


# ---------------------------------------------------------------- public API


def index_cifar10(
    directory: str | Path | None = None,
    *,
    val_fraction: float = 0.1,
    seed: int = 42,
    limit_per_class: int | None = None,
) -> ImageIndex:
    """Paths and labels of the JPEG-folder layout: val carved from train (stratified), test =
    the official test set. The pickle layout has no image files: use `load_cifar10` for it."""
    places = _places(directory)
    found = _find(places)
    if found is None:
        raise _not_found(places)
    layout, folder = found
    if layout == "pickle":
        raise DatasetLayoutError(
            f"{folder} holds the official CIFAR-10 pickles, which have no image files to index. "
            "Fix: use cvlab.data.load('cifar10') (it reads the pickles into memory), or extract "
            f"the JPEG folders (train/<class>/*.jpg, test/<class>/*.jpg) into {places[0]}"
        )
    return _jpeg_index(
        folder, val_fraction=val_fraction, seed=seed, limit_per_class=limit_per_class
    )


@register_dataset(
    name="cifar10",
    index=index_cifar10,
    catalog=CatalogEntry(
        "cifar10",
        "CIFAR-10",
        "train/<class>/*.jpg + test/<class>/*.jpg, or cifar-10-batches-py/data_batch_1",
        aliases=("cifar-10-python", "cifar-10-batches-py", "cifar-10"),
        download=Download(
            "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
            md5="c58f30108f718f92721af3b95e74349a",
        ),
        survey_options={"val_fraction": 0},
        classes=10,
    ),
)
def load_cifar10(
    directory: str | Path | None = None,
    *,
    size: int | tuple[int, int] = 32,
    val_fraction: float = 0.1,
    seed: int = 42,
    limit_per_class: int | None = None,
    download: bool = True,
    progress: bool = True,
) -> Dataset:
    """CIFAR-10 as arrays at `size` (32 = native), from whichever layout is found first.

    `limit_per_class` keeps the first images of each class in train and in test (quick runs).
    `download=True` fetches the official pickles with Keras when nothing is found locally
    (not when an explicit `directory` is empty: that is reported, not silently replaced).
    """
    places = _places(directory)
    found = _find(places)
    if found is not None and found[0] == "jpeg":
        index = _jpeg_index(
            found[1], val_fraction=val_fraction, seed=seed, limit_per_class=limit_per_class
        )
        return decode_index(index, size, progress=progress)
    options = {
        "size": size,
        "val_fraction": val_fraction,
        "seed": seed,
        "limit_per_class": limit_per_class,
    }
    if found is not None:
        *arrays, names = read_pickles(found[1])
        return _from_arrays(
            *arrays, names, **options, source=f"CIFAR-10 official pickles at {found[1]}"
        )
    if not download or directory is not None:
        raise _not_found(places)
    arrays = _download(places)
    return _from_arrays(
        *arrays, list(CLASS_NAMES), **options, source="CIFAR-10 downloaded by Keras"
    )
