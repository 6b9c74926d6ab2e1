"""Any folder of images with one sub-folder per class (Flowers-17, your own photos, ...).

Also home to the small file helpers the other on-disk loaders share: which files count as
images, a stable (natural) file order, and deterministic stratified splits of path lists.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TypeVar

import numpy as np

from cvlab.data.cache import data_root, dataset_dir
from cvlab.data.catalog import register_dataset
from cvlab.data.dataset import Dataset, ImageIndex, split_paths
from cvlab.data.images import decode_index
from cvlab.errors import DatasetLayoutError, DatasetNotFoundError

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp"})
# Folders that archive tools add beside the data; never a class.
_JUNK_DIRS = frozenset({"__MACOSX"})

FOLDER_LAYOUT = """\
  <folder>/<class name>/<image>.jpg     (one sub-folder per class, at least 2 classes)
  e.g.  flowers17/daffodil/image_0001.jpg
        flowers17/snowdrop/image_0081.jpg
  or the same with split folders: <folder>/train/<class name>/<image>.jpg (and val/, test/)
  Extensions: jpg, jpeg, png, bmp, gif, webp (any case); hidden files are ignored. A single
  top folder around the class folders (as archives have, e.g. flowers17/) is accepted."""
SPLIT_FOLDERS = ("train", "val", "test")

T = TypeVar("T")  # a path, or a row number where the images are already in memory


# ---------------------------------------------------------------- shared file helpers


def natural_key(path: str | Path) -> tuple:
    """Sort key that orders numbers by value: cat.2.jpg before cat.10.jpg (platform independent)."""
    parts = re.split(r"(\d+)", str(path))
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in parts)


def is_hidden(path: Path) -> bool:
    """Dot-files and archive junk (__MACOSX) are not data."""
    return path.name.startswith(".") or path.name in _JUNK_DIRS


def is_image(path: Path) -> bool:
    """A visible file whose extension is one of `IMAGE_EXTENSIONS` (case-insensitive)."""
    return path.suffix.lower() in IMAGE_EXTENSIONS and not is_hidden(path) and path.is_file()


def list_images(folder: Path, *, recursive: bool = True) -> list[Path]:
    """The images in `folder` (and below, skipping hidden folders), in natural order."""
    if not recursive:
        return sorted((p for p in folder.iterdir() if is_image(p)), key=natural_key)
    found = [
        p
        for p in folder.rglob("*")
        if not any(is_hidden(Path(part)) for part in p.relative_to(folder).parts) and is_image(p)
    ]
    return sorted(found, key=natural_key)


def subfolders(folder: Path) -> list[Path]:
    """Visible sub-folders, sorted by name."""
    return sorted(p for p in folder.iterdir() if p.is_dir() and not is_hidden(p))


def take_per_class(
    paths: Sequence[T], labels: Sequence[int] | np.ndarray, limit: int | None
) -> tuple[list[T], np.ndarray]:
    """At most `limit` images per class, the first ones in the given order (for quick runs)."""
    if limit is None:
        return list(paths), np.asarray(labels, dtype=np.int64)
    if limit < 1:
        raise ValueError(f"limit_per_class={limit}: must be at least 1 (or None for all images)")
    seen: dict[int, int] = {}
    keep: list[int] = []
    for i, label in enumerate(np.asarray(labels).tolist()):
        if seen.get(label, 0) < limit:
            seen[label] = seen.get(label, 0) + 1
            keep.append(i)
    return [paths[i] for i in keep], np.asarray(labels, dtype=np.int64)[keep]


# ---------------------------------------------------------------- the image-folder loader


def _class_folders(folder: Path) -> list[Path]:
    return [d for d in subfolders(folder) if list_images(d)]


def _split_folders(folder: Path) -> dict[str, Path] | None:
    """`{split: folder}` when `folder` holds train/ (and val/, test/) instead of classes."""
    children = {d.name: d for d in subfolders(folder)}
    if "train" not in children or not set(children) <= set(SPLIT_FOLDERS):
        return None
    return {split: children[split] for split in SPLIT_FOLDERS if split in children}


def _index_split_folders(
    root: Path,
    folders: dict[str, Path],
    *,
    val_fraction: float,
    test_fraction: float,
    seed: int,
    limit_per_class: int | None,
) -> ImageIndex:
    """train/ val/ test/ folders of class folders: their own splits, and a split that has no
    folder carved from train (stratified, `val_fraction` / `test_fraction` of it)."""
    per_split = {split: _class_folders(folder) for split, folder in folders.items()}
    names = sorted({d.name for dirs in per_split.values() for d in dirs})
    if len(names) < 2:
        raise DatasetLayoutError(
            f"{root}: found {len(names)} class folder(s) with images in "
            f"{', '.join(f'{s}/' for s in folders)}; a classifier needs at least 2. "
            f"Expected layout:\n{FOLDER_LAYOUT}"
        )
    label_of = {name: i for i, name in enumerate(names)}
    found: dict[str, tuple[list[Path], np.ndarray]] = {}
    for split, dirs in per_split.items():
        paths: list[Path] = []
        labels: list[int] = []
        for class_dir in dirs:
            files = list_images(class_dir)
            paths += files
            labels += [label_of[class_dir.name]] * len(files)
        found[split] = take_per_class(paths, np.asarray(labels, dtype=np.int64), limit_per_class)
    carved = split_paths(
        *found["train"],
        val=0 if "val" in found else float(val_fraction),
        test=0 if "test" in found else float(test_fraction),
        seed=seed,
        what=str(folders["train"]),
    )
    splits = {split: found.get(split, carved[split]) for split in SPLIT_FOLDERS}
    splits["train"] = carved["train"]
    total = sum(len(paths) for paths, _ in splits.values())
    return ImageIndex(
        root.name,
        names,
        splits,
        source=f"image folder {root} ({total:,} images, {len(names)} classes, split folders "
        f"{', '.join(f'{s}/' for s in folders)})",
    )


def find_class_root(folder: Path) -> Path:
    """`folder` itself, or its single sub-folder when that one holds the class folders."""
    children = subfolders(folder)
    if len(children) == 1 and (
        len(_class_folders(children[0])) >= 2 or _split_folders(children[0]) is not None
    ):
        return children[0]
    return folder


def _resolve(directory: str | Path | None, folder: str | None, name: str | None) -> Path:
    if folder is not None and name is not None and folder != name:
        raise ValueError(
            f"folder={folder!r} and name={name!r}: give one of them (they are aliases)"
        )
    folder = folder or name
    if directory is None and folder is None:
        raise ValueError(
            "image-folder needs a folder: pass directory='path/to/folder', or folder='flowers17' "
            f"for a folder under the data root {data_root()}"
        )
    path = dataset_dir(str(folder), directory)
    if not path.is_dir():
        where = (
            "the folder passed as directory="
            if directory is not None
            else "folder= or the data root ($CVLAB_DATA, else data/ in the project)"
        )
        raise DatasetNotFoundError(
            f"image folder not found: {path} does not exist. Expected layout:\n{FOLDER_LAYOUT}\n"
            f"Fix: create {path} in this layout (e.g. extract the data set's archive into "
            f"{path.parent}), or correct {where}"
        )
    return path


def index_image_folder(
    directory: str | Path | None = None,
    *,
    folder: str | None = None,
    name: str | None = None,
    val_fraction: float = 0.1,
    test_fraction: float = 0.2,
    seed: int = 42,
    limit_per_class: int | None = None,
) -> ImageIndex:
    """Paths and labels of a class-per-folder image set in stratified train/val/test splits.

    `directory`, or `folder` for `<data root>/<folder>` (`name` is an alias for direct calls;
    through `cvlab.data.load("image-folder", ...)` use `folder`, as `name` is the data set's).
    Class names are the sorted folder names.
    `val_fraction=0` gives the book's train/test-only split (e.g. Flowers-17 at 75/25).
    With train/ (val/, test/) split folders of class folders, those are the splits; one without
    a folder is carved from train (`val_fraction` / `test_fraction` of it).
    """
    root = find_class_root(_resolve(directory, folder, name))
    folders = _split_folders(root)
    if folders is not None:
        return _index_split_folders(
            root,
            folders,
            val_fraction=val_fraction,
            test_fraction=test_fraction,
            seed=seed,
            limit_per_class=limit_per_class,
        )
    classes = _class_folders(root)
    if len(classes) < 2:
        found = ", ".join(d.name for d in classes) or "none"
        raise DatasetLayoutError(
            f"{root}: found {len(classes)} class folder(s) with images ({found}); a classifier "
            f"needs at least 2. Expected layout:\n{FOLDER_LAYOUT}\n"
            "Fix: put each class's images in its own sub-folder of this folder"
        )
    loose = list_images(root, recursive=False)
    if loose:
        log.warning(
            "%s: ignored %d image(s) outside the class folders, e.g. %s",
            root,
            len(loose),
            loose[0].name,
        )
    empty = [d.name for d in subfolders(root) if d not in classes]
    if empty:
        log.warning("%s: ignored folder(s) without images: %s", root, ", ".join(empty))
    paths: list[Path] = []
    labels: list[int] = []
    for label, class_dir in enumerate(classes):
        files = list_images(class_dir)
        paths += files
        labels += [label] * len(files)
    paths, y = take_per_class(paths, np.asarray(labels), limit_per_class)
    splits = split_paths(
        paths, y, val=float(val_fraction), test=float(test_fraction), seed=seed, what=str(root)
    )
    return ImageIndex(
        root.name,
        [d.name for d in classes],
        splits,
        source=f"image folder {root} ({len(paths):,} images, {len(classes)} classes)",
    )


@register_dataset(name="image-folder", index=index_image_folder, layout=FOLDER_LAYOUT)
def load_image_folder(
    directory: str | Path | None = None,
    *,
    folder: str | None = None,
    name: str | None = None,
    size: int | tuple[int, int] = 64,
    aspect: bool = False,
    val_fraction: float = 0.1,
    test_fraction: float = 0.2,
    seed: int = 42,
    limit_per_class: int | None = None,
    progress: bool = True,
) -> Dataset:
    """A class-per-folder image set decoded at `size` (`aspect=True` crops instead of
    stretching); corrupt files are skipped and counted in `info["skipped"]`."""
    index = index_image_folder(
        directory,
        folder=folder,
        name=name,
        val_fraction=val_fraction,
        test_fraction=test_fraction,
        seed=seed,
        limit_per_class=limit_per_class,
    )
    return decode_index(index, size, aspect=aspect, progress=progress)
