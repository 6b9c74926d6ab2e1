"""Tiny ImageNet (200 classes, 64×64) in its official layout, split the way the book does.

The official test labels are not public, so, as in the book, the official validation set
(labelled by `val/val_annotations.txt`) is the validation split and a stratified test split of
the same size is carved from the training images. Classes are in sorted WordNet-id order (the
book's LabelEncoder), named by the first name words.txt gives each id ("goldfish").
"""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path

import numpy as np

from cvlab.data.cache import data_root, dataset_dir
from cvlab.data.catalog import CatalogEntry, Download, register_dataset
from cvlab.data.dataset import Dataset, ImageIndex
from cvlab.data.image_folder import list_images, natural_key, split_paths, take_per_class
from cvlab.data.images import decode_index
from cvlab.errors import DatasetLayoutError, DatasetNotFoundError

log = logging.getLogger(__name__)

NAME = "tiny-imagenet"
TOP_FOLDER = "tiny-imagenet-200"

LAYOUT = """\
  <folder>/wnids.txt                          one WordNet id per line (the classes)
  <folder>/words.txt                          id <TAB> names, e.g. n01443537 <TAB> goldfish, ...
  <folder>/train/<wnid>/images/<wnid>_N.JPEG  training images
  <folder>/val/images/val_N.JPEG              validation images
  <folder>/val/val_annotations.txt            file <TAB> wnid <TAB> box, one line per image
  (the archive's top folder tiny-imagenet-200/ inside <folder> is accepted too)"""


def _candidates(directory: str | Path | None) -> list[Path]:
    base = dataset_dir(NAME, directory)
    places = [base, base / TOP_FOLDER]
    if directory is None:
        places.append(data_root() / TOP_FOLDER)  # the archive extracted into the data root
    return places


def _find(directory: str | Path | None) -> Path:
    looked = _candidates(directory)
    for folder in looked:
        if (folder / "wnids.txt").is_file() and (folder / "train").is_dir():
            return folder
    places = "\n".join(f"  {p}" for p in looked)
    raise DatasetNotFoundError(
        f"Tiny ImageNet not found: no wnids.txt with a train/ folder beside it in any of:\n"
        f"{places}\nExpected layout:\n{LAYOUT}\n"
        f"Fix: extract tiny-imagenet-200.zip (or .tar.gz) into {looked[0]}, or pass directory= "
        "pointing at the folder that holds wnids.txt"
    )


def read_wnids(root: Path) -> list[str]:
    """The class ids listed in wnids.txt, sorted (the book's label order)."""
    wnids = [line.strip() for line in (root / "wnids.txt").read_text().splitlines()]
    wnids = [w for w in wnids if w]
    if not wnids:
        raise DatasetLayoutError(
            f"{root / 'wnids.txt'} lists no class ids. Fix: restore the file from the archive "
            "(one WordNet id such as n01443537 per line)"
        )
    return sorted(set(wnids))


def class_names(root: Path, wnids: list[str]) -> list[str]:
    """The first name words.txt gives each id; the id itself when it is missing, and
    "name (id)" where two ids would share a name."""
    words: dict[str, str] = {}
    path = root / "words.txt"
    if path.is_file():
        wanted = set(wnids)
        with path.open(encoding="utf-8", errors="replace") as f:
            for line in f:
                wnid, _, names = line.rstrip("\r\n").partition("\t")
                if wnid in wanted and names.strip():
                    words[wnid] = names.split(",")[0].strip()
    else:
        log.warning("%s is missing: the classes are named by their WordNet ids", path)
    names = [words.get(w, w) for w in wnids]
    repeated = {n for n, count in Counter(names).items() if count > 1}
    return [f"{n} ({w})" if n in repeated else n for n, w in zip(names, wnids, strict=True)]


def _train_files(root: Path, wnids: list[str]) -> tuple[list[Path], np.ndarray]:
    paths: list[Path] = []
    labels: list[int] = []
    for label, wnid in enumerate(wnids):
        folder = root / "train" / wnid
        images = folder / "images"
        files = list_images(images if images.is_dir() else folder)
        if not files:
            raise DatasetLayoutError(
                f"{folder}: no training images for class {wnid} (listed in wnids.txt). "
                f"Expected {folder}/images/{wnid}_0.JPEG, ... Fix: re-extract the archive, or "
                f"remove {wnid} from wnids.txt"
            )
        paths += files
        labels += [label] * len(files)
    return paths, np.asarray(labels, dtype=np.int64)


def _val_files(root: Path, wnids: list[str]) -> tuple[list[Path], np.ndarray]:
    annotations = root / "val" / "val_annotations.txt"
    if not annotations.is_file():
        raise DatasetLayoutError(
            f"{annotations} is missing: it labels the validation images. Expected layout:\n"
            f"{LAYOUT}\nFix: re-extract the archive so that val/ holds images/ and this file"
        )
    label_of = {w: i for i, w in enumerate(wnids)}
    rows: list[tuple[Path, int]] = []
    unknown = 0
    for number, line in enumerate(annotations.read_text().splitlines(), start=1):
        fields = line.strip().split("\t")
        if not fields[0]:
            continue
        if len(fields) < 2:
            raise DatasetLayoutError(
                f"{annotations}, line {number}: {line!r} has no wnid field; each line must be "
                "<file> TAB <wnid> TAB <box>. Fix: restore the file from the archive"
            )
        if fields[1] not in label_of:
            unknown += 1
            continue
        rows.append((root / "val" / "images" / fields[0], label_of[fields[1]]))
    if unknown:
        log.warning("%s: ignored %d line(s) whose wnid is not in wnids.txt", annotations, unknown)
    rows.sort(key=lambda row: natural_key(row[0]))
    return [p for p, _ in rows], np.array([label for _, label in rows], dtype=np.int64)


def index_tiny_imagenet(
    directory: str | Path | None = None,
    *,
    test_size: int | float | None = None,
    seed: int = 42,
    limit_per_class: int | None = None,
) -> ImageIndex:
    """Paths and labels: train and test from train/ (stratified), val from val/.

    `test_size`: a count or a fraction of the training images; by default as many as the
    validation images (the book: 50 per class), but never more than half the training images.
    `limit_per_class` keeps the lowest-numbered training and validation images of each class.
    """
    root = _find(directory)
    wnids = read_wnids(root)
    train_paths, train_labels = take_per_class(*_train_files(root, wnids), limit_per_class)
    val_paths, val_labels = take_per_class(*_val_files(root, wnids), limit_per_class)
    if test_size is None:
        test_size = min(len(val_paths), len(train_paths) // 2)
    carved = split_paths(
        train_paths,
        train_labels,
        val=0,
        test=test_size,
        seed=seed,
        what=f"Tiny ImageNet training images at {root}",
    )
    splits = {"train": carved["train"], "val": (val_paths, val_labels), "test": carved["test"]}
    source = (
        f"Tiny ImageNet at {root} ({len(wnids)} classes; test carved from train, "
        "val = official validation set)"
    )
    return ImageIndex(NAME, class_names(root, wnids), splits, source=source)


@register_dataset(
    name="tiny-imagenet",
    index=index_tiny_imagenet,
    catalog=CatalogEntry(
        "tiny-imagenet",
        "Tiny ImageNet",
        "tiny-imagenet-200/wnids.txt (with train/ and val/ beside it)",
        aliases=("tiny-imagenet-200",),
        download=Download("http://cs231n.stanford.edu/tiny-imagenet-200.zip"),
        survey_options={"test_size": 0},
        classes=200,
    ),
)
def load_tiny_imagenet(
    directory: str | Path | None = None,
    *,
    size: int | tuple[int, int] = 64,
    test_size: int | float | None = None,
    seed: int = 42,
    limit_per_class: int | None = None,
    progress: bool = True,
) -> Dataset:
    """Tiny ImageNet decoded at `size` (64 = native); grayscale images become RGB and corrupt
    ones are skipped and counted in `info["skipped"]`."""
    index = index_tiny_imagenet(
        directory, test_size=test_size, seed=seed, limit_per_class=limit_per_class
    )
    return decode_index(index, size, progress=progress)
