"""Oxford Flowers-17 (1,360 photos, 17 classes of 80): class folders, or the official flat layout.

The official `17flowers.tgz` holds `jpg/image_0001.jpg ... image_1360.jpg` with no class
folders: the classes are consecutive runs of 80 images in Oxford's order (image_0001-0080 are
daffodils, and so on). Both layouts give the same labels: classes sorted by name, as the
image-folder loader names them. The default split is the book's: 75% train, 25% test, no val.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from cvlab.data.cache import dataset_dir
from cvlab.data.catalog import CatalogEntry, Download, register_dataset
from cvlab.data.dataset import Dataset, ImageIndex, split_paths
from cvlab.data.image_folder import index_image_folder, list_images, take_per_class
from cvlab.data.images import decode_index
from cvlab.errors import DatasetNotFoundError

NAME = "flowers17"
# Oxford's order: image numbers 80·k+1 ... 80·(k+1) belong to OXFORD_ORDER[k].
OXFORD_ORDER = [
    "daffodil", "snowdrop", "lily_valley", "bluebell", "crocus", "iris", "tigerlily", "tulip",
    "fritillary", "sunflower", "daisy", "colts_foot", "dandelion", "cowslip", "buttercup",
    "windflower", "pansy",
]  # fmt: skip
PER_CLASS = 80
_OFFICIAL_NAME = re.compile(r"^image_(\d{4})\.jpg$", re.IGNORECASE)

LAYOUT = """\
  either one folder per class:  <folder>/<class>/image_XXXX.jpg  (e.g. flowers17/daffodil/)
  or Oxford's 17flowers.tgz:    <folder>/jpg/image_0001.jpg ... image_1360.jpg
  (a single top folder around either, as archives have, is accepted)"""


def _official_folder(base: Path) -> Path | None:
    for folder in (base / "jpg", base / NAME / "jpg", base / "17flowers" / "jpg"):
        if folder.is_dir() and any(_OFFICIAL_NAME.match(p.name) for p in folder.iterdir()):
            return folder
    return None


def _official_index(folder: Path, *, val: float, test: float, seed: int, limit: int | None):
    classes = sorted(OXFORD_ORDER)
    paths: list[Path] = []
    labels: list[int] = []
    for path in list_images(folder, recursive=False):
        match = _OFFICIAL_NAME.match(path.name)
        position = (int(match[1]) - 1) // PER_CLASS if match else len(OXFORD_ORDER)
        if position < len(OXFORD_ORDER):  # other files in jpg/ are not the data set's
            paths.append(path)
            labels.append(classes.index(OXFORD_ORDER[position]))
    paths, y = take_per_class(paths, np.asarray(labels, dtype=np.int64), limit)
    splits = split_paths(paths, y, val=val, test=test, seed=seed, what=str(folder))
    source = f"Flowers-17 (Oxford layout) at {folder} ({len(paths):,} images, 17 classes)"
    return ImageIndex(NAME, classes, splits, source=source)


def index_flowers17(
    directory: str | Path | None = None,
    *,
    val_fraction: float = 0.0,
    test_fraction: float = 0.25,
    seed: int = 42,
    limit_per_class: int | None = None,
) -> ImageIndex:
    """Paths and labels in stratified splits (default: the book's 75/25 train/test)."""
    base = dataset_dir(NAME, directory)
    if not base.is_dir():
        raise DatasetNotFoundError(
            f"Flowers-17 not found: {base} does not exist. Expected layout:\n{LAYOUT}\n"
            f"Fix: cvlab data import flowers17 PATH (an archive or folder), or pass directory="
        )
    official = _official_folder(base)
    if official is not None:
        return _official_index(
            official, val=val_fraction, test=test_fraction, seed=seed, limit=limit_per_class
        )
    index = index_image_folder(
        base,
        val_fraction=val_fraction,
        test_fraction=test_fraction,
        seed=seed,
        limit_per_class=limit_per_class,
    )
    index.name = NAME
    return index


@register_dataset(
    name="flowers17",
    index=index_flowers17,
    catalog=CatalogEntry(
        "flowers17",
        "Oxford Flowers-17",
        "<class>/image_XXXX.jpg folders, or jpg/image_0001.jpg (Oxford's 17flowers.tgz)",
        aliases=("17flowers", "flowers-17"),
        download=Download("https://www.robots.ox.ac.uk/~vgg/data/flowers/17/17flowers.tgz"),
        survey_options={"val_fraction": 0, "test_fraction": 0},
        classes=17,
    ),
)
def load_flowers17(
    directory: str | Path | None = None,
    *,
    size: int | tuple[int, int] = 224,
    aspect: bool = True,
    val_fraction: float = 0.0,
    test_fraction: float = 0.25,
    seed: int = 42,
    limit_per_class: int | None = None,
    progress: bool = True,
) -> Dataset:
    """Flowers-17 decoded at `size` (default 224, short side resized and centre-cropped)."""
    index = index_flowers17(
        directory,
        val_fraction=val_fraction,
        test_fraction=test_fraction,
        seed=seed,
        limit_per_class=limit_per_class,
    )
    return decode_index(index, size, aspect=aspect, progress=progress)
