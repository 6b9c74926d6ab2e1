"""Installing data sets into the data cache: `import` (archive or folder), `fetch`, `list`.

An import unpacks (or copies) into a hidden staging folder inside the cache, checks the layout
with the data set's own loader (the same code `cvlab.data.load` runs), writes a manifest of
what it found, and only then renames the folder to `<data cache>/<name>`: a failed or
interrupted import leaves the cache as it was.
"""

from __future__ import annotations

import datetime as dt
import functools
import importlib
import json
import os
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from cvlab.atomic_io import write_json_atomic
from cvlab.data.archives import copy_folder, extract, folder_size, is_archive
from cvlab.data.cache import data_root
from cvlab.data.catalog import CATALOG, CatalogEntry, entry
from cvlab.data.download import download
from cvlab.errors import (
    CvlabError,
    DatasetExistsError,
    DatasetFetchError,
    DatasetLayoutError,
    DatasetNotFoundError,
)

MANIFEST = ".cvlab-import.json"
STAGING_PREFIX = ".importing-"
DOWNLOADS = ".downloads"


@dataclass
class Survey:
    """What a data set folder holds, as its loader sees it."""

    name: str
    splits: dict[str, int]  # images per split
    classes: int
    per_class: tuple[int, int]  # fewest and most images of one class, over all splits
    location: str = ""
    imported_from: str = ""
    imported_at: str = ""

    @property
    def images(self) -> int:
        return sum(self.splits.values())

    def describe(self) -> str:
        splits = ", ".join(f"{n:,} {split}" for split, n in self.splits.items() if n)
        low, high = self.per_class
        per_class = f"{low:,}" if low == high else f"{low:,}-{high:,}"
        return (
            f"{self.name}: {self.images:,} images ({splits}), {self.classes} classes, "
            f"{per_class} per class"
        )


@dataclass
class ImportResult:
    survey: Survey
    target: Path
    skipped: bool  # already installed from the same source: nothing was done


# ---------------------------------------------------------------- surveying a layout


def _survey_cifar_pickles(folder: Path | None) -> Survey:
    from cvlab.data.cifar10 import load_cifar10

    data = load_cifar10(folder, val_fraction=0)
    labels = np.concatenate([data.y_train, data.y_test])
    counts = {"train": len(data.y_train), "val": 0, "test": len(data.y_test)}
    return Survey("cifar10", counts, len(data.class_names), _per_class(labels), data.source)


def _per_class(labels: np.ndarray) -> tuple[int, int]:
    counts = np.bincount(labels) if len(labels) else np.zeros(1, dtype=int)
    return int(counts.min()), int(counts.max())


def survey(name: str, directory: str | Path | None = None) -> Survey:
    """Count a data set's images per split and class by indexing it with its own loader
    (`directory` None: where `cvlab.data.load(name)` would look)."""
    import cvlab.data

    item = entry(name)
    if item.indexer:  # a set that cvlab.data.index does not name (folders of pictures)
        module, func = item.indexer.split(":")
        indexer = getattr(importlib.import_module(module), func)
    else:
        indexer = functools.partial(cvlab.data.index, item.name)
    try:
        index = indexer(directory=directory, **item.survey_options)
    except DatasetLayoutError as exc:
        if item.name == "cifar10" and "pickles" in str(exc):
            return _survey_cifar_pickles(None if directory is None else Path(directory))
        raise
    labels = np.concatenate([np.asarray(y, dtype=np.int64) for _, y in index.splits.values()])
    result = Survey(
        item.name, index.counts(), len(index.class_names), _per_class(labels), index.source
    )
    if item.classes is not None and result.classes != item.classes:
        raise DatasetLayoutError(
            f"found {result.classes} classes where {item.title} has {item.classes} "
            f"({index.source}). Expected: {item.expected}"
        )
    return result


# ---------------------------------------------------------------- import


def _signature(source: Path) -> dict[str, object]:
    """Enough to tell whether the same archive or folder is imported again."""
    stat = source.stat()
    size = stat.st_size if source.is_file() else folder_size(source)
    return {"source": str(source), "bytes": size, "mtime": int(stat.st_mtime)}


def read_manifest(folder: Path) -> dict | None:
    try:
        return json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _survey_from_manifest(manifest: dict, target: Path) -> Survey:
    fields = dict(manifest["survey"])
    fields["per_class"] = tuple(fields["per_class"])
    fields["location"] = str(target)
    return Survey(**fields)


def _top_entries(folder: Path, limit: int = 8) -> str:
    names = sorted(p.name + ("/" if p.is_dir() else "") for p in folder.iterdir())
    more = f", ... ({len(names)} in all)" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more if names else "nothing"


def _wrong_layout(item: CatalogEntry, source: Path, staged: Path, exc: Exception) -> Exception:
    first = str(exc).splitlines()[0].rstrip(":")
    return DatasetLayoutError(
        f"{source}: not a {item.title} layout. Expected {item.expected}; found at the top: "
        f"{_top_entries(staged)}. ({first})\nFix: import the data set's own archive or "
        f"folder, or the right name (`cvlab data list` shows the names). Nothing was installed."
    )


def _replace(staging: Path, target: Path) -> None:
    """Swap `staging` in as `target` with renames, removing any old copy last."""
    old = target.with_name(f"{STAGING_PREFIX}old-{target.name}-{os.getpid()}")
    if target.is_symlink() or target.is_file():
        target.unlink()
    elif target.exists():
        os.rename(target, old)
    os.rename(staging, target)
    shutil.rmtree(old, ignore_errors=True)


def import_dataset(
    name: str,
    source: str | Path,
    *,
    force: bool = False,
    link: bool = False,
    progress: bool = True,
) -> ImportResult:
    """Install data set `name` into the data cache from an archive or a folder, after checking
    its layout. `link=True` (folders only) records a symbolic link instead of copying."""
    item = entry(name)
    source = Path(source).expanduser().resolve()
    if not source.exists():
        raise DatasetNotFoundError(
            f"{source} does not exist. Fix: give the path of the {item.title} archive "
            f"(.tar, .tar.gz, .zip) or of the folder that holds it"
        )
    if source.is_file() and not is_archive(source):
        raise DatasetLayoutError(
            f"{source}: not a .tar, .tar.gz or .zip archive. Fix: give an archive or a folder"
        )
    if link and not source.is_dir():
        raise DatasetLayoutError(f"{source}: link=True needs a folder, not an archive")
    root = data_root()
    target = root / item.name
    signature = _signature(source)
    manifest = read_manifest(target) if target.exists() else None
    if target.exists() and not force:
        if manifest and manifest.get("signature") == signature:
            return ImportResult(_survey_from_manifest(manifest, target), target, skipped=True)
        origin = manifest["signature"]["source"] if manifest else "a copy made by hand"
        raise DatasetExistsError(
            f"{target} already holds {item.title} (from {origin}). Fix: pass --force to "
            "replace it, or set $CVLAB_DATA to use another data cache"
        )
    root.mkdir(parents=True, exist_ok=True)
    staging = root / f"{STAGING_PREFIX}{item.name}-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    try:
        if link:
            staging.mkdir()
            checked = source
        elif source.is_dir():
            checked = copy_folder(source, staging, progress=progress)
        else:
            checked = extract(source, staging, progress=progress)
        try:
            found = survey(item.name, checked)
        except (DatasetLayoutError, DatasetNotFoundError) as exc:
            raise _wrong_layout(item, source, checked, exc) from None
        found.imported_from = str(source)
        found.imported_at = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        found.location = ""
        record = {"name": item.name, "signature": signature, "link": link, "survey": asdict(found)}
        if link:
            staging.rmdir()
            staging.symlink_to(source, target_is_directory=True)
            # a link's manifest lives beside it, since the linked folder may be read-only
            write_json_atomic(root / f".{item.name}{MANIFEST}", record)
        else:
            write_json_atomic(staging / MANIFEST, record)
        _replace(staging, target)
    finally:
        if staging.is_symlink():
            staging.unlink()
        else:
            shutil.rmtree(staging, ignore_errors=True)
    found.location = str(target)
    return ImportResult(found, target, skipped=False)


# ---------------------------------------------------------------- fetch


def fetch_dataset(name: str, *, force: bool = False, progress: bool = True) -> ImportResult:
    """Download `name` from its official source and import it; offline, a `DatasetFetchError`
    that names the import command."""
    item = entry(name)
    how = f"cvlab data import {item.name} PATH"
    if item.download is None:
        raise DatasetFetchError(
            f"{item.title} cannot be downloaded by cvlab: {item.no_download}. Then run: {how}"
        )
    folder = data_root() / DOWNLOADS
    try:
        archive = download(item.download, folder, progress=progress)
    except DatasetFetchError as exc:
        raise DatasetFetchError(
            f"{exc}. Offline? Download {item.download.url} on a machine with internet, copy it "
            f"here and run: {how.replace('PATH', '/path/to/' + item.download.file_name)}"
        ) from None
    try:
        return import_dataset(item.name, archive, force=force, progress=progress)
    finally:
        archive.unlink(missing_ok=True)


# ---------------------------------------------------------------- list


@dataclass
class Installed:
    name: str
    survey: Survey | None  # None: not on this machine
    problem: str = ""  # why it could not be read, when it is there but broken


def installed() -> list[Installed]:
    """Every catalog data set: what is installed (from its manifest, else by indexing it where
    the loader looks), or None."""
    root = data_root()
    out = []
    for item in CATALOG.values():
        target = root / item.name
        manifest = read_manifest(target) or read_manifest_beside(root, item.name)
        if target.exists() and manifest:
            out.append(Installed(item.name, _survey_from_manifest(manifest, target)))
            continue
        try:
            found = survey(item.name)
        except DatasetNotFoundError:
            out.append(Installed(item.name, None))
        except (DatasetLayoutError, CvlabError, ValueError) as exc:
            out.append(Installed(item.name, None, problem=str(exc).splitlines()[0]))
        else:
            out.append(Installed(item.name, found))
    return out


def read_manifest_beside(root: Path, name: str) -> dict | None:
    """The manifest of a linked import (kept beside the link)."""
    try:
        return json.loads((root / f".{name}{MANIFEST}").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def other_entries() -> list[str]:
    """Folders and files in the data cache that are not catalog data sets (image folders, HDF5)."""
    root = data_root()
    if not root.is_dir():
        return []
    return sorted(
        p.name + ("/" if p.is_dir() else "")
        for p in root.iterdir()
        if not p.name.startswith(".") and p.name not in CATALOG
    )
