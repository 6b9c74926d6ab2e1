"""Data sets by name: `cvlab.data.load("mnist5k")`, usable from a grid YAML.

`load(name, **options)` returns a `Dataset` (arrays in memory). For data sets stored as image
files, `index(name, **options)` returns an `ImageIndex` (paths and labels per split) that the HDF5
builder streams from without decoding everything at once.

Every built-in data set registers in its own module (`cvlab.data.catalog.register_dataset`:
loader, indexer, catalog entry); this package imports those modules. A user's own data set,
installed with `cvlab data import NAME PATH --layout image-folder`, is a name too: read from the
data cache's manifests. `list_datasets("*cifar*")` lists them all, as `cvlab data list` does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cvlab.data import (  # noqa: F401 - imported for their registrations
    cifar10,
    dogs_vs_cats,
    flowers17,
    image_folder,
    imagenet_sample,
    packaged,
    pictures,
    synthetic,
    tiny_imagenet,
)
from cvlab.data.build import build_hdf5
from cvlab.data.cache import data_root
from cvlab.data.catalog import (
    CATALOG,
    DATASETS,
    dataset,
    indexed_names,
    indexer,
    layout,
    loadable_names,
    register_dataset,
)
from cvlab.data.dataset import SPLITS, Dataset, ImageIndex, stratified_splits
from cvlab.data.hdf5 import HDF5DatasetReader, HDF5DatasetWriter
from cvlab.data.images import preprocessing_of
from cvlab.data.install import Installed, Survey, installed, user_datasets
from cvlab.data.pipeline import make_pipeline
from cvlab.errors import UnknownNameError
from cvlab.registry import Option, fnmatch_names
from cvlab.runs.run import note_data


def names() -> list[str]:
    """Every data set `load` knows: the built-in ones and the user's own in the data cache."""
    return sorted({*loadable_names(), *user_datasets()})


def file_based_names() -> list[str]:
    """Data sets read from image files on disk (they have an `index`)."""
    return sorted({*indexed_names(), *user_datasets()})


def _user(name: str) -> tuple[str, dict] | None:
    """(layout, manifest) of the user's own data set `name`, None when there is none."""
    manifest = user_datasets().get(name)
    return None if manifest is None else (manifest["layout"], manifest)


def load(name: str, /, **options: Any) -> Dataset:
    """Load the data set registered as `name` with its options (splits, seed, size, ...); the
    current run (`cvlab.runs.start`) records it, and whether it is synthetic."""
    if name not in DATASETS and (user := _user(name)) is not None:
        options.setdefault("directory", data_root() / name)
        data = layout(user[0]).builder(**options)
        data.name = name  # the layout's loader names it after its folder
    else:
        data = dataset(name).builder(**options)
    note_data(name, synthetic=data.synthetic, source=data.source)
    return data


def index(name: str, /, **options: Any) -> ImageIndex:
    """The files and labels of a file-based data set, per split, without decoding them."""
    if name not in DATASETS and (user := _user(name)) is not None:
        options.setdefault("directory", data_root() / name)
        found = layout(user[0]).extra["index"](**options)
        found.name = name
        return found
    if name not in indexed_names():
        raise UnknownNameError("file-based data set", name, file_based_names())
    return indexer(name)(**options)


# ---------------------------------------------------------------- the listing


@dataclass(frozen=True)
class DatasetInfo:
    """One row of `list_datasets` / `cvlab data list`: a data set, how to load it, where it is."""

    name: str
    description: str
    options: tuple[Option, ...]
    kind: str  # "built-in" (no files needed), "importable" (needs import/fetch), "yours"
    file_based: bool  # has an `index` (image files on disk)
    loadable: bool  # cvlab.data.load(name) returns it (not a folder of pictures)
    survey: Survey | None = None  # importable/yours: what is installed (None: not installed)
    problem: str = ""  # installed but unreadable: why
    how: str = ""  # how to get it when it is not installed

    @property
    def installed(self) -> bool:
        return self.survey is not None

    def options_text(self) -> str:
        return ", ".join(map(str, self.options))


def _how(name: str) -> str:
    if name not in CATALOG:
        return ""
    hint = f"cvlab data import {name} PATH"
    if CATALOG[name].download is not None:
        hint += f"  or  cvlab data fetch {name}"
    return hint


def list_datasets(pattern: str | None = None, *, survey: bool = True) -> list[DatasetInfo]:
    """Every data set matching `pattern` (a shell glob; all by default): built-in, importable
    (with what the data cache holds, surveyed unless `survey=False`) and the user's own."""
    wanted = set(fnmatch_names([*DATASETS, *user_datasets()], pattern))
    found: dict[str, Installed] = {}
    if survey and any(n in CATALOG or n not in DATASETS for n in wanted):
        found = {i.name: i for i in installed(wanted)}
    rows = []
    for entry in DATASETS.entries():
        if entry.name not in wanted:
            continue
        state = found.get(entry.name)
        importable = entry.name in CATALOG
        rows.append(
            DatasetInfo(
                entry.name,
                entry.description,
                entry.options,
                "importable" if importable else "built-in",
                entry.extra["index"] is not None and entry.extra["loadable"],
                entry.extra["loadable"],
                state.survey if state else None,
                state.problem if state else "",
                _how(entry.name),
            )
        )
    for name, manifest in user_datasets().items():
        if name not in wanted:
            continue
        lay = layout(manifest["layout"])
        state = found.get(name)
        rows.append(
            DatasetInfo(
                name,
                f"your data set ({lay.name} layout, from {manifest['signature']['source']})",
                tuple(o for o in lay.options if o.name not in ("directory", "folder", "name")),
                "yours",
                True,
                True,
                state.survey if state else None,
            )
        )
    return sorted(rows, key=lambda row: row.name)


__all__ = [
    "SPLITS",
    "Dataset",
    "DatasetInfo",
    "HDF5DatasetReader",
    "HDF5DatasetWriter",
    "ImageIndex",
    "build_hdf5",
    "file_based_names",
    "index",
    "list_datasets",
    "load",
    "make_pipeline",
    "names",
    "register_dataset",
    "preprocessing_of",
    "stratified_splits",
]
