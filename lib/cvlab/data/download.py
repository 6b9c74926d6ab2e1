"""Downloading a data set's official archive, with a progress bar and a checksum.

`urllib` from the standard library: one GET of one file needs no more. The file is written as
`<name>.part` and renamed when complete and verified, so an interrupted download never looks
finished.
"""

from __future__ import annotations

import hashlib
import os
import urllib.error
import urllib.request
from pathlib import Path

from cvlab.data.catalog import Download
from cvlab.errors import DatasetFetchError

CHUNK = 1 << 20
TIMEOUT_S = 20


def download(source: Download, folder: str | Path, *, progress: bool = True) -> Path:
    """Fetch `source` into `folder`; returns the file. Raises `DatasetFetchError` on failure."""
    from tqdm.auto import tqdm

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / source.file_name
    part = target.with_name(target.name + ".part")
    md5 = hashlib.md5(usedforsecurity=False)
    try:
        with urllib.request.urlopen(source.url, timeout=TIMEOUT_S) as response:
            total = int(response.headers.get("Content-Length") or 0) or None
            with (
                part.open("wb") as out,
                tqdm(total=total, desc=source.file_name, unit="B", unit_scale=True,
                     disable=not progress) as bar,
            ):  # fmt: skip
                while chunk := response.read(CHUNK):
                    out.write(chunk)
                    md5.update(chunk)
                    bar.update(len(chunk))
    except (urllib.error.URLError, OSError, ValueError) as exc:
        part.unlink(missing_ok=True)
        reason = getattr(exc, "reason", None) or exc
        raise DatasetFetchError(f"could not download {source.url} ({reason})") from None
    if source.md5 and md5.hexdigest() != source.md5:
        part.unlink(missing_ok=True)
        raise DatasetFetchError(
            f"{source.url}: the download's MD5 is {md5.hexdigest()}, expected {source.md5} "
            "(a corrupt or changed file); it was deleted"
        )
    os.replace(part, target)
    return target
