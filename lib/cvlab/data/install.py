"""Installing data sets into the data cache: `import` (archive or folder), `fetch`, `list`.

An import unpacks (or copies) into a hidden staging folder inside the cache, checks the layout
with the data set's own loader (the same code `cvlab.data.load` runs), writes a manifest of
what it found, and only then renames the folder to `<data cache>/<name>`: a failed or
interrupted import leaves the cache as it was.

A name that is not a built-in data set is the user's own: `import_dataset("animals", path,
layout="image-folder")` (the layout detected when not given) checks it with that layout's
indexer and records the layout in the manifest; `user_datasets()` reads them back, which is how
`cvlab.data.load("animals")`, `cvlab.data.names()` and `cvlab data list` know them.
"""

from __future__ import annotations

import datetime as dt
import difflib
import json
import os
import re
import shutil
from collections.abc import Callable, Collection
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cvlab.atomic_io import write_json_atomic
from cvlab.data.archives import copy_folder, extract, folder_size, is_archive
from cvlab.data.cache import data_root
from cvlab.data.catalog import CATALOG, DATASETS, CatalogEntry, entry, indexer, layouts
from cvlab.data.catalog import layout as layout_entry
from cvlab.data.cifar10 import load_cifar10
from cvlab.data.download import download
from cvlab.errors import (
    CvlabError,
    DatasetExistsError,
    DatasetFetchError,
    DatasetLayoutError,
    DatasetNameError,
    DatasetNotFoundError,
    UnknownNameError,
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
    data = load_cifar10(folder, val_fraction=0)
    labels = np.concatenate([data.y_train, data.y_test])
    counts = {"train": len(data.y_train), "val": 0, "test": len(data.y_test)}
    return Survey("cifar10", counts, len(data.class_names), _per_class(labels), data.source)


def _per_class(labels: np.ndarray) -> tuple[int, int]:
    counts = np.bincount(labels) if len(labels) else np.zeros(1, dtype=int)
    return int(counts.min()), int(counts.max())


@dataclass(frozen=True)
class Target:
    """What an import installs: the catalog entry, the function that indexes its layout, and
    the layout's name (a built-in set's own name, or e.g. "image-folder" for a user's set)."""

    item: CatalogEntry
    index: Callable[..., Any]
    layout: str

    @property
    def user(self) -> bool:
        return self.item.name not in DATASETS


_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def _user_entry(name: str, layout_name: str) -> CatalogEntry:
    return CatalogEntry(
        name,
        f"{layout_name!r}",
        layout_entry(layout_name).extra["layout"].strip(),
        # the folders' own splits: nothing carved when surveying
        survey_options={"val_fraction": 0, "test_fraction": 0},
    )


def import_target(name: str, layout_name: str | None = None) -> Target:
    """The built-in importable set `name` (or an alias), or the user's own set `name` in
    `layout_name` (None: the layout recorded by an earlier import, else detected at import)."""
    try:
        item = entry(name)
    except UnknownNameError:
        item = None
    if item is not None:
        if layout_name not in (None, item.name):
            raise DatasetNameError(
                f"{item.name} is a built-in data set with its own layout ({item.expected}); "
                f"--layout is for your own data sets. Fix: leave --layout out, or import under "
                f"another name"
            )
        return Target(item, indexer(item.name), item.name)
    if name in DATASETS:
        raise DatasetNameError(
            f"{name!r} is a built-in data set name (cvlab.data.load({name!r}) needs no import); "
            f"your own data set cannot shadow it. Fix: import it under another name, e.g. "
            f"my-{name}"
        )
    if not _NAME.fullmatch(name):
        raise DatasetNameError(
            f"{name!r} cannot name a data set: use letters, digits, '.', '_' and '-' (it becomes "
            f"the folder <data cache>/{name})"
        )
    if layout_name is None:
        recorded = user_datasets().get(name)
        if recorded is None:
            close = difflib.get_close_matches(name, [*CATALOG, *_aliases()], n=1, cutoff=0.75)
            if close:  # a typo of a built-in name, not a new data set
                raise DatasetNameError(
                    f"unknown importable data set {name!r} (did you mean {close[0]!r}?). Fix: "
                    f"the built-in name, or --layout {layouts()[0]} to install your own data "
                    f"set as {name!r}"
                )
            return Target(_user_entry(name, layouts()[0]), _detect, "")
        layout_name = recorded["layout"]
    entry_ = layout_entry(layout_name)
    return Target(_user_entry(name, layout_name), entry_.extra["index"], layout_name)


def _aliases() -> list[str]:
    return [alias for item in CATALOG.values() for alias in item.aliases]


def _detect(directory: str | Path | None = None, **options: Any):
    """Index `directory` with the first layout that reads it (the last one's error if none)."""
    error: Exception | None = None
    for name in layouts():
        try:
            return layout_entry(name).extra["index"](directory=directory, **options)
        except (DatasetLayoutError, DatasetNotFoundError, ValueError) as exc:
            error = exc
    assert error is not None
    raise error


def detect_layout(directory: str | Path) -> str:
    """The name of the first layout whose indexer reads `directory`."""
    for name in layouts():
        try:
            layout_entry(name).extra["index"](directory=directory, val_fraction=0, test_fraction=0)
        except (DatasetLayoutError, DatasetNotFoundError, ValueError):
            continue
        return name
    raise DatasetLayoutError(f"{directory}: in none of the layouts {', '.join(layouts())}")


def survey(name: str, directory: str | Path | None = None, *, layout: str | None = None) -> Survey:
    """Count a data set's images per split and class by indexing it with its own loader
    (`directory` None: where `cvlab.data.load(name)` would look)."""
    found = import_target(name, layout)
    item = found.item
    if directory is None and found.user:
        directory = data_root() / item.name
    try:
        index = found.index(directory=directory, **item.survey_options)
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
    layout: str | None = None,
) -> ImportResult:
    """Install data set `name` into the data cache from an archive or a folder, after checking
    its layout. `link=True` (folders only) records a symbolic link instead of copying.

    A name that is not built in installs the user's own data set, in `layout` ("image-folder":
    class folders, optionally inside train/ val/ test/), detected when None."""
    found_target = import_target(name, layout)
    item = found_target.item
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
        layout_name = found_target.layout
        try:
            if not layout_name:
                layout_name = detect_layout(checked)
            found = survey(item.name, checked, layout=layout_name if found_target.user else None)
        except (DatasetLayoutError, DatasetNotFoundError) as exc:
            raise _wrong_layout(item, source, checked, exc) from None
        found.imported_from = str(source)
        found.imported_at = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        found.location = ""
        record = {
            "name": item.name,
            "signature": signature,
            "link": link,
            "layout": layout_name,
            "user": found_target.user,
            "survey": asdict(found),
        }
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


def installed(names: Collection[str] | None = None) -> list[Installed]:
    """Every catalog data set (those in `names` when given) and the user's own: what is
    installed (from its manifest, else by indexing it where the loader looks), or None."""
    root = data_root()
    out = []
    for item in CATALOG.values():
        if names is not None and item.name not in names:
            continue
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
    for name, manifest in user_datasets().items():
        if names is None or name in names:
            out.append(Installed(name, _survey_from_manifest(manifest, root / name)))
    return out


def user_datasets() -> dict[str, dict]:
    """The user's own data sets in the data cache (name -> manifest, with its "layout"), read
    from the manifests `import_dataset` wrote; built-in names are never among them."""
    root = data_root()
    if not root.is_dir():
        return {}
    found: dict[str, dict] = {}
    for path in sorted(root.iterdir()):
        if path.name.startswith(".") or path.name in DATASETS or not path.is_dir():
            continue
        manifest = read_manifest(path) or read_manifest_beside(root, path.name)
        if manifest and manifest.get("user") and manifest.get("layout") in layouts():
            found[path.name] = manifest
    return found


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
    users = user_datasets()
    return sorted(
        p.name + ("/" if p.is_dir() else "")
        for p in root.iterdir()
        if not p.name.startswith(".") and p.name not in CATALOG and p.name not in users
    )
