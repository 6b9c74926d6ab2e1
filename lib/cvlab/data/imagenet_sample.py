"""One labelled photo per ImageNet-1k class (1,000 images): for checking ImageNet models.

Layout: `<folder>/<wnid>_<name>.JPEG` and `<folder>/labels.csv` with columns `file,wnid,index`,
where `index` is the wnid's position in the sorted list of the 1,000 wnids (the Keras/PyTorch
class order). Every image is in the `test` split; `train` and `val` are empty, since the set is
for evaluating pretrained networks, not for training.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from cvlab.data.cache import dataset_dir
from cvlab.data.catalog import CatalogEntry, register_dataset
from cvlab.data.dataset import Dataset, ImageIndex
from cvlab.data.images import decode_index
from cvlab.errors import DatasetLayoutError, DatasetNotFoundError

NAME = "imagenet-sample"
LABELS_FILE = "labels.csv"
COLUMNS = ("file", "wnid", "index")
CLASSES = 1000

LAYOUT = """\
  <folder>/labels.csv               columns file,wnid,index (index 0-999 = sorted wnid order)
  <folder>/<wnid>_<name>.JPEG       the images labels.csv names
  (the archive's top folder imagenet-sample/ inside <folder> is accepted too)"""


def _find(directory: str | Path | None) -> Path:
    base = dataset_dir(NAME, directory)
    looked = [base, base / NAME]
    for folder in looked:
        if (folder / LABELS_FILE).is_file():
            return folder
    places = "\n".join(f"  {p}" for p in looked)
    raise DatasetNotFoundError(
        f"ImageNet sample not found: no {LABELS_FILE} in any of:\n{places}\n"
        f"Expected layout:\n{LAYOUT}\n"
        f"Fix: cvlab data import imagenet-sample PATH (the archive or folder), or pass directory="
    )


def _read_labels(folder: Path) -> list[tuple[Path, str, int]]:
    path = folder / LABELS_FILE
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise DatasetLayoutError(
                f"{path}: no column(s) {', '.join(missing)} (found: "
                f"{', '.join(reader.fieldnames or []) or 'none'}). Fix: the header must be "
                "file,wnid,index"
            )
        rows = []
        for line, row in enumerate(reader, start=2):
            try:
                index = int(row["index"])
            except ValueError:
                raise DatasetLayoutError(
                    f"{path}, line {line}: index {row['index']!r} is not an integer. "
                    "Fix: the class position 0-999"
                ) from None
            if not 0 <= index < CLASSES:
                raise DatasetLayoutError(
                    f"{path}, line {line}: index {index} is outside 0-{CLASSES - 1}. "
                    "Fix: the wnid's position in the sorted list of the 1,000 wnids"
                )
            rows.append((folder / row["file"], row["wnid"], index))
    absent = [p.name for p, _, _ in rows if not p.is_file()]
    if absent:
        raise DatasetLayoutError(
            f"{path} names {len(absent)} file(s) that are not in {folder}, e.g. {absent[0]}. "
            "Fix: re-extract the archive, or remove those lines"
        )
    return rows


def index_imagenet_sample(directory: str | Path | None = None) -> ImageIndex:
    """All images in `test`, labelled by ImageNet class index; class names are the wnids in
    index order (`cvlab.models.decode_predictions` gives readable names)."""
    folder = _find(directory)
    rows = _read_labels(folder)
    wnids = [""] * CLASSES
    for _, wnid, index in rows:
        if wnids[index] and wnids[index] != wnid:
            raise DatasetLayoutError(
                f"{folder / LABELS_FILE}: index {index} is given to both {wnids[index]} and "
                f"{wnid}. Fix: one wnid per index"
            )
        wnids[index] = wnid
    empty = ([], np.empty(0, dtype=np.int64))
    test = ([p for p, _, _ in rows], np.asarray([i for _, _, i in rows], dtype=np.int64))
    source = f"ImageNet sample at {folder} ({len(rows):,} images, one per class)"
    return ImageIndex(NAME, wnids, {"train": empty, "val": empty, "test": test}, source=source)


@register_dataset(
    name="imagenet-sample",
    index=index_imagenet_sample,
    catalog=CatalogEntry(
        "imagenet-sample",
        "ImageNet sample (one image per class)",
        "labels.csv (columns file,wnid,index) beside <wnid>_<name>.JPEG files",
        no_download="it has no official source: use the imagenet-sample archive you were given",
    ),
)
def load_imagenet_sample(
    directory: str | Path | None = None,
    *,
    size: int | tuple[int, int] = 224,
    aspect: bool = True,
    progress: bool = True,
) -> Dataset:
    """The images decoded at `size` (default: short side resized, centre crop 224).

    For the exact ImageNet evaluation crop (short side 256, then a 224 centre crop) use the
    ImageNet helpers in `cvlab.models` on the index's files.
    """
    return decode_index(index_imagenet_sample(directory), size, aspect=aspect, progress=progress)
