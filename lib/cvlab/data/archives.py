"""Unpacking a data set archive (.tar, .tar.gz, .tgz, .zip) or copying a folder, with progress.

The standard library's `tarfile` and `zipfile` do the work; the only code here is the progress
bar (by compressed bytes read, so a .tar.gz is not read twice to count its members) and the
safety filter: tar members go through `filter="data"` (no absolute paths, no `..`, no links out
of the folder, no device files), and zip names are made safe by `zipfile` itself.
"""

from __future__ import annotations

import os
import shutil
import tarfile
import zipfile
from pathlib import Path

from cvlab.errors import DatasetLayoutError

ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar.bz2", ".tar.xz", ".tar", ".zip")


def archive_stem(path: str | Path) -> str:
    """`tiny-imagenet-200.tar.gz` -> `tiny-imagenet-200`."""
    name = Path(path).name
    for suffix in ARCHIVE_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return Path(name).stem


def is_archive(path: str | Path) -> bool:
    return Path(path).is_file() and (tarfile.is_tarfile(path) or zipfile.is_zipfile(path))


def _bar(total: int, desc: str, progress: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="B", unit_scale=True, disable=not progress)


def extract(archive: str | Path, dest: str | Path, *, progress: bool = True) -> Path:
    """Unpack `archive` into the folder `dest` (created); returns `dest`."""
    archive, dest = Path(archive), Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            members = zf.infolist()
            with _bar(sum(m.file_size for m in members), f"unzip {archive.name}", progress) as bar:
                for member in members:
                    zf.extract(member, dest)
                    bar.update(member.file_size)
        return dest
    try:
        with (
            archive.open("rb") as raw,
            tarfile.open(fileobj=raw, mode="r:*") as tar,
            _bar(archive.stat().st_size, f"untar {archive.name}", progress) as bar,
        ):
            for member in tar:
                tar.extract(member, dest, filter="data")
                bar.update(raw.tell() - bar.n)
    except (tarfile.TarError, EOFError, OSError) as exc:
        if isinstance(exc, OSError) and not isinstance(exc, EOFError) and exc.errno is not None:
            raise  # a disk or permission problem, not the archive's fault
        raise DatasetLayoutError(
            f"{archive}: not a readable .tar/.tar.gz/.zip archive ({type(exc).__name__}: {exc}). "
            "Fix: download it again, or extract it yourself and import the folder"
        ) from None
    return dest


def copy_folder(src: str | Path, dest: str | Path, *, progress: bool = True) -> Path:
    """Copy the folder `src` to `dest` (which must not exist), file by file with a progress bar."""
    src, dest = Path(src), Path(dest)
    files = [p for p in src.rglob("*") if p.is_file()]
    with _bar(sum(p.stat().st_size for p in files), f"copy {src.name}", progress) as bar:
        for path in files:
            target = dest / path.relative_to(src)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)
            bar.update(path.stat().st_size)
    dest.mkdir(parents=True, exist_ok=True)
    return dest


def folder_size(folder: str | Path) -> int:
    """Bytes in all files under `folder`."""
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(folder) for f in fs)
