"""Kaggle Dogs vs. Cats: flat files named `cat.N.jpg` / `dog.N.jpg`, the label in the name.

The book carves validation and test sets from Kaggle's labelled training images (stratified);
here they are fractions by default, or counts (`val_size=2500, test_size=2500` as in the book).
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np

from cvlab.data.cache import dataset_dir
from cvlab.data.catalog import CatalogEntry, register_dataset
from cvlab.data.dataset import Dataset, ImageIndex
from cvlab.data.image_folder import is_image, natural_key, split_paths
from cvlab.data.images import decode_index
from cvlab.errors import DatasetLayoutError, DatasetNotFoundError

log = logging.getLogger(__name__)

NAME = "dogs-vs-cats"
CLASS_NAMES = ["cat", "dog"]
_PATTERN = re.compile(r"^(cat|dog)\.(\d+)\.[^.]+$", re.IGNORECASE)

LAYOUT = """\
  <folder>/train/cat.0.jpg, cat.1.jpg, ..., dog.0.jpg, dog.1.jpg, ...   (Kaggle's train.zip)
  The files may also sit directly in <folder>, or under the archive's top folder
  <folder>/dogs-vs-cats/train/. Files not named cat.N.<ext> / dog.N.<ext> are ignored."""


def _candidates(base: Path) -> list[Path]:
    top = base / NAME
    return [base / "train", base, top / "train", top]


def _scan(folder: Path) -> tuple[dict[int, list[Path]], list[Path]]:
    """The images of each class (lowest number first) and the files that don't match."""
    by_class: dict[int, list[tuple[int, Path]]] = {0: [], 1: []}
    ignored: list[Path] = []
    for path in folder.iterdir():
        if not is_image(path):
            continue
        match = _PATTERN.match(path.name)
        if match is None:
            ignored.append(path)
            continue
        by_class[CLASS_NAMES.index(match[1].lower())].append((int(match[2]), path))
    ordered = {
        label: [p for _, p in sorted(files, key=lambda t: (t[0], natural_key(t[1])))]
        for label, files in by_class.items()
    }
    return ordered, sorted(ignored, key=natural_key)


def _find(directory: str | Path | None) -> tuple[Path, dict[int, list[Path]], list[Path]]:
    base = dataset_dir(NAME, directory)
    looked = _candidates(base)
    for folder in looked:
        if folder.is_dir():
            files, ignored = _scan(folder)
            if files[0] or files[1]:
                return folder, files, ignored
    places = "\n".join(f"  {p}" for p in looked)
    raise DatasetNotFoundError(
        f"Dogs vs. Cats not found: no cat.N.jpg / dog.N.jpg files in any of:\n{places}\n"
        f"Expected layout:\n{LAYOUT}\n"
        f"Fix: extract Kaggle's train.zip (or dogs-vs-cats.tar) into {base}, or pass "
        "directory= pointing at the folder that holds the files. (Class folders such as "
        "Microsoft's PetImages/Cat/, PetImages/Dog/ are read by the image-folder loader.)"
    )


def _index(
    directory: str | Path | None,
    *,
    limit: int | None,
    val_fraction: float,
    test_fraction: float,
    val_size: int | None,
    test_size: int | None,
    seed: int,
) -> tuple[ImageIndex, list[Path]]:
    folder, files, ignored = _find(directory)
    missing = [CLASS_NAMES[label] for label, paths in files.items() if not paths]
    if missing:
        raise DatasetLayoutError(
            f"{folder}: no {missing[0]}.N.jpg files; both classes are needed. Expected layout:\n"
            f"{LAYOUT}\nFix: copy the {missing[0]} images (named {missing[0]}.N.jpg) there too"
        )
    if ignored:
        log.warning(
            "%s: ignored %d file(s) not named cat.N / dog.N, e.g. %s",
            folder,
            len(ignored),
            ignored[0].name,
        )
    if limit is not None:
        if limit < 2:
            raise ValueError(f"limit={limit}: must be at least 2 (one image per class)")
        per_class = limit // 2
        short = {CLASS_NAMES[k]: len(v) for k, v in files.items() if len(v) < per_class}
        if short:
            log.warning("limit=%d: fewer than %d images for %s", limit, per_class, short)
        files = {label: paths[:per_class] for label, paths in files.items()}
    paths = files[0] + files[1]
    labels = np.array([0] * len(files[0]) + [1] * len(files[1]), dtype=np.int64)
    splits = split_paths(
        paths,
        labels,
        val=val_size if val_size is not None else float(val_fraction),
        test=test_size if test_size is not None else float(test_fraction),
        seed=seed,
        what=f"Dogs vs. Cats at {folder}",
    )
    note = f"; {len(ignored)} file(s) ignored (not named cat.N / dog.N)" if ignored else ""
    source = f"Kaggle Dogs vs. Cats at {folder} ({len(paths):,} images{note})"
    return ImageIndex(NAME, list(CLASS_NAMES), splits, source=source), ignored


def index_dogs_vs_cats(
    directory: str | Path | None = None,
    *,
    limit: int | None = None,
    val_fraction: float = 0.1,
    test_fraction: float = 0.1,
    val_size: int | None = None,
    test_size: int | None = None,
    seed: int = 42,
) -> ImageIndex:
    """Paths and labels (0 = cat, 1 = dog) in stratified train/val/test splits.

    `limit` keeps that many images in all, half per class, the lowest-numbered ones (numeric
    order: cat.2 before cat.10). `val_size`/`test_size` (counts) override the fractions.
    """
    index, _ = _index(
        directory,
        limit=limit,
        val_fraction=val_fraction,
        test_fraction=test_fraction,
        val_size=val_size,
        test_size=test_size,
        seed=seed,
    )
    return index


@register_dataset(
    name="dogs-vs-cats",
    index=index_dogs_vs_cats,
    catalog=CatalogEntry(
        "dogs-vs-cats",
        "Kaggle Dogs vs. Cats",
        "train/cat.0.jpg ... dog.0.jpg (Kaggle's train.zip)",
        aliases=("dogs-vs-cats-redux-kernels-edition",),
        no_download=(
            "Kaggle serves it only to signed-in users: download train.zip from the "
            "'Dogs vs. Cats' competition page on kaggle.com"
        ),
        survey_options={"val_fraction": 0, "test_fraction": 0},
        classes=2,
    ),
)
def load_dogs_vs_cats(
    directory: str | Path | None = None,
    *,
    size: int | tuple[int, int] = 64,
    aspect: bool = False,
    limit: int | None = None,
    val_fraction: float = 0.1,
    test_fraction: float = 0.1,
    val_size: int | None = None,
    test_size: int | None = None,
    seed: int = 42,
    progress: bool = True,
) -> Dataset:
    """Dogs vs. Cats decoded at `size`; `info` counts the corrupt files skipped and the files
    ignored for their names."""
    index, ignored = _index(
        directory,
        limit=limit,
        val_fraction=val_fraction,
        test_fraction=test_fraction,
        val_size=val_size,
        test_size=test_size,
        seed=seed,
    )
    dataset = decode_index(index, size, aspect=aspect, progress=progress)
    dataset.info["ignored"] = len(ignored)
    dataset.info["ignored_files"] = [str(p) for p in ignored[:20]]
    return dataset
