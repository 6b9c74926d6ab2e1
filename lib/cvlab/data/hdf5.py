"""HDF5 files of images (or features) and labels: a buffered, resumable writer and a reader.

The book's `HDF5DatasetWriter` / `HDF5DatasetGenerator` (chapters 3 and 9), rebuilt for long
builds that may be interrupted:

- The writer fills `<path>.partial` and renames it to `path` only when `close()` succeeds, so a
  crashed build never leaves a file that looks complete.
- Every flush records how many rows are on disk (`rows_written` attribute) and flushes the file.
  `resume=True` reopens an unfinished `.partial` of the same shape and continues after the last
  flushed row; rows past the counter (written after the last flush) are overwritten.
- The datasets are chunked and allocated when created, so writes between two flushes touch only
  image data, never the file's bookkeeping: a process killed mid-build leaves a `.partial` that
  reopens at its last flush.

Layout (the book's, so its readers work): `images` (or `features`, the `data_key`), `labels`
(int64), `label_names` (variable-length strings), and attributes `data_key`, `capacity`,
`rows_written`, `complete`, plus whatever the caller stores in `writer.attrs`.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from cvlab.errors import DatasetNotFoundError, IncompleteHDF5Error

log = logging.getLogger(__name__)

PARTIAL_SUFFIX = ".partial"
FORMAT = "cvlab-hdf5/1"
# Chunks of about this many bytes (at most 64 rows): the default HDF5 chunk cache is 1 MiB.
_CHUNK_BYTES = 1 << 20


def partial_path(path: str | Path) -> Path:
    """Where the writer builds `path` until it is complete: `<path>.partial`."""
    path = Path(path)
    return path.with_name(path.name + PARTIAL_SUFFIX)


def _default_chunk_rows(dims: tuple[int, ...], itemsize: int) -> int:
    row_bytes = max(1, int(np.prod(dims[1:], dtype=np.int64)) * itemsize)
    return max(1, min(64, dims[0], _CHUNK_BYTES // row_bytes))


def _early_dcpl() -> h5py.h5p.PropDCID:
    """Allocate every chunk when the dataset is created (no metadata changes while writing)."""
    dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
    dcpl.set_alloc_time(h5py.h5d.ALLOC_TIME_EARLY)
    return dcpl


def _fsync(path: Path) -> None:
    with open(path, "rb+") as fh:
        os.fsync(fh.fileno())


class HDF5DatasetWriter:
    """Buffered writer of rows (images uint8 N×H×W×C, or features float32 N×D) and int labels.

    `dims` is the full shape, `(N, H, W, C)` or `(N, D)`: N is the capacity. `add(rows, labels)`
    buffers rows and writes them every `buffer_size` rows; `close()` writes the rest, trims the
    datasets to the rows written (fewer than N when the caller skipped some, e.g. corrupt
    images), marks the file complete and renames `<path>.partial` to `path` (replacing an older
    `path`). Use it as a context manager: leaving the block normally closes it; leaving on an
    exception (Ctrl-C included) flushes what was added and keeps the `.partial` for `resume=True`.

    `meta` (JSON-able) describes what is being built; a `.partial` is resumed only if its dims,
    dtype, data_key and meta are the same. `add(..., state=...)` lets the caller store its own
    progress (e.g. how many source files it consumed) with the row counter at each flush, read
    back as `writer.state` after resuming: rows and state always describe the same moment.
    """

    def __init__(
        self,
        path: str | Path,
        dims: Sequence[int],
        *,
        data_key: str = "images",
        dtype: str | np.dtype = "uint8",
        buffer_size: int = 1000,
        class_names: Sequence[str] | None = None,
        chunk_rows: int | None = None,
        resume: bool = False,
        meta: Mapping[str, Any] | None = None,
    ):
        dims = tuple(int(d) for d in dims)
        if len(dims) < 2 or any(d < 0 for d in dims) or any(d == 0 for d in dims[1:]):
            raise ValueError(f"dims={dims}: expected (N, H, W, C) or (N, D) with positive sizes")
        if buffer_size < 1:
            raise ValueError(f"buffer_size={buffer_size}: must be at least 1")
        if data_key in ("labels", "label_names"):
            raise ValueError(f"data_key={data_key!r} is reserved; use e.g. 'images' or 'features'")
        self.path = Path(path)
        self.partial = partial_path(self.path)
        self.dims = dims
        self.data_key = data_key
        self.dtype = np.dtype(dtype)
        self.buffer_size = int(buffer_size)
        self.meta = json.loads(json.dumps(dict(meta or {})))  # as it reads back
        self._buffer: list[np.ndarray] = []
        self._label_buffer: list[np.ndarray] = []
        self._buffered = 0
        self._state: dict[str, Any] | None = None
        self._closed = False
        self.resumed = False
        self.path.parent.mkdir(parents=True, exist_ok=True)

        if resume and self.partial.exists():
            self._file = self._reopen()
            self.resumed = True
            log.info("resuming %s after row %d", self.partial, self.rows_written)
        else:
            self._file = self._create(class_names, chunk_rows)
        self._data = self._file[data_key]
        self._labels = self._file["labels"]

    # -- opening ------------------------------------------------------------------------------

    def _create(self, class_names: Sequence[str] | None, chunk_rows: int | None) -> h5py.File:
        n = self.dims[0]
        rows = chunk_rows or _default_chunk_rows(self.dims, self.dtype.itemsize)
        rows = max(1, min(int(rows), max(n, 1)))
        f = h5py.File(self.partial, "w")
        try:
            f.create_dataset(
                self.data_key,
                shape=self.dims,
                dtype=self.dtype,
                chunks=(rows, *self.dims[1:]),
                maxshape=(None, *self.dims[1:]),
                dcpl=_early_dcpl(),
                fill_time="never",
            )
            f.create_dataset(
                "labels",
                shape=(n,),
                dtype="int64",
                chunks=(max(1, min(n, 1 << 16)),),
                maxshape=(None,),
                dcpl=_early_dcpl(),
                fill_time="never",
            )
            if class_names is not None:
                f.create_dataset(
                    "label_names", data=[str(c) for c in class_names], dtype=h5py.string_dtype()
                )
            f.attrs["format"] = FORMAT
            f.attrs["data_key"] = self.data_key
            f.attrs["capacity"] = n
            f.attrs["rows_written"] = 0
            f.attrs["complete"] = False
            f.attrs["meta"] = json.dumps(self.meta, sort_keys=True)
            f.attrs["state"] = "null"
            f.flush()
        except BaseException:
            f.close()
            self.partial.unlink(missing_ok=True)
            raise
        self._rows_written = 0
        return f

    def _reopen(self) -> h5py.File:
        try:
            f = h5py.File(self.partial, "r+")
        except OSError as exc:
            raise IncompleteHDF5Error(
                f"{self.partial} (an unfinished build) cannot be reopened ({exc}); delete it, "
                "or build again without resuming"
            ) from exc
        try:
            data = f.get(self.data_key)
            found = {
                "dims": tuple(data.shape[1:]) if data is not None else None,
                "capacity": int(f.attrs.get("capacity", -1)),
                "dtype": str(data.dtype) if data is not None else None,
                "meta": json.loads(f.attrs.get("meta", "{}")),
            }
            wanted = {
                "dims": self.dims[1:],
                "capacity": self.dims[0],
                "dtype": str(self.dtype),
                "meta": self.meta,
            }
            diff = [k for k in wanted if found[k] != wanted[k]]
            if f.attrs.get("format") != FORMAT or "labels" not in f or diff:
                what = ", ".join(f"{k} {found[k]} != {wanted[k]}" for k in diff) or "not ours"
                raise ValueError(
                    f"cannot resume {self.partial}: it was started for something else ({what}); "
                    "delete it or build without resuming"
                )
            rows = int(f.attrs["rows_written"])
            self._state = json.loads(f.attrs.get("state", "null"))
        except BaseException:
            f.close()
            raise
        self._rows_written = rows
        return f

    # -- writing ------------------------------------------------------------------------------

    @property
    def rows_written(self) -> int:
        """Rows on disk (flushed); rows still in the buffer are not counted."""
        return self._rows_written

    def __len__(self) -> int:
        """Rows added so far: flushed plus buffered."""
        return self.rows_written + self._buffered

    @property
    def state(self) -> dict[str, Any] | None:
        """The caller's progress stored with the last flush (after resuming), or the last added."""
        return self._state

    @property
    def attrs(self) -> h5py.AttributeManager:
        """The file's attributes, for the caller's own metadata (e.g. a skipped-file count)."""
        return self._file.attrs

    @property
    def class_names(self) -> list[str]:
        if "label_names" not in self._file:
            return []
        return [s.decode() if isinstance(s, bytes) else str(s) for s in self._file["label_names"]]

    def add(
        self,
        rows: np.ndarray | Sequence[np.ndarray],
        labels: Sequence[int] | np.ndarray,
        *,
        state: Mapping[str, Any] | None = None,
    ) -> None:
        """Buffer `rows` (shape (n, *dims[1:])) and their `labels`; write when the buffer is full.

        `state` (JSON-able) is the caller's progress after these rows, stored at the next flush.
        """
        self._check_open()
        rows = np.asarray(rows)
        labels = np.asarray(labels)
        expected = self.dims[1:]
        if rows.ndim == len(expected) and rows.shape == expected:
            raise ValueError(
                f"add() takes a batch of rows, shape (n, {', '.join(map(str, expected))}); got "
                f"one row of shape {rows.shape}: pass rows[None] or [row]"
            )
        if rows.shape[1:] != expected:
            raise ValueError(
                f"rows of shape {rows.shape}: this file stores rows of shape {expected} "
                f"(dims={self.dims}), so add() expects (n, {', '.join(map(str, expected))})"
            )
        if labels.shape != (len(rows),):
            raise ValueError(f"{len(rows)} rows but labels of shape {labels.shape}")
        if len(rows) and not np.can_cast(rows.dtype, self.dtype, casting="same_kind"):
            raise ValueError(
                f"rows are {rows.dtype} but the file stores {self.dtype}: convert them first "
                "(images in [0, 1]: (x * 255).round().astype('uint8'))"
            )
        if len(labels) and not np.issubdtype(labels.dtype, np.integer):
            raise ValueError(f"labels must be integers, got {labels.dtype}")
        if len(self) + len(rows) > self.dims[0]:
            raise ValueError(
                f"adding {len(rows)} rows to the {len(self)} already added would exceed the "
                f"capacity of {self.dims[0]} rows (dims={self.dims})"
            )
        if len(rows):
            self._buffer.append(rows.astype(self.dtype, copy=False))
            self._label_buffer.append(labels.astype(np.int64, copy=False))
            self._buffered += len(rows)
        if state is not None:
            self._state = json.loads(json.dumps(dict(state)))
        if self._buffered >= self.buffer_size:
            self.flush()

    def flush(self) -> None:
        """Write the buffer, record the row count (and the caller's state), flush the file."""
        self._check_open()
        start = self.rows_written
        if self._buffered:
            end = start + self._buffered
            self._data[start:end] = np.concatenate(self._buffer)
            self._labels[start:end] = np.concatenate(self._label_buffer)
            self._buffer, self._label_buffer, self._buffered = [], [], 0
        else:
            end = start
        # The data is written before the counter, so the counter never covers unwritten rows.
        self._file.attrs["rows_written"] = end
        self._file.attrs["state"] = json.dumps(self._state)
        self._file.flush()
        self._rows_written = end

    def close(self, *, finish: bool = True) -> Path:
        """Flush; with `finish` (default) trim to the rows written, mark complete and rename
        `.partial` to `path`, returning `path`. `finish=False` keeps the `.partial` to resume."""
        if self._closed:
            return self.path if finish else self.partial
        self.flush()
        rows = self.rows_written
        if finish:
            if rows < self.dims[0]:
                self._data.resize(rows, axis=0)
                self._labels.resize(rows, axis=0)
            self._file.attrs["complete"] = True
        self._file.close()
        self._closed = True
        if not finish:
            return self.partial
        _fsync(self.partial)
        os.replace(self.partial, self.path)
        return self.path

    def _check_open(self) -> None:
        if self._closed:
            raise ValueError(f"the writer of {self.path} is closed")

    def __enter__(self) -> HDF5DatasetWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if self._closed:
            return
        if exc_type is None:
            self.close()
            return
        try:  # keep what was added so far: resume=True continues from here
            self.close(finish=False)
        except Exception:  # noqa: BLE001 - the original exception matters more
            log.exception("could not flush %s after an error", self.partial)

    def __repr__(self) -> str:
        return f"HDF5DatasetWriter({str(self.path)!r}, dims={self.dims}, rows={len(self)})"


class HDF5DatasetReader:
    """A finished HDF5 file, read-only: `.images` or `.features` (the data key), `.labels`,
    `.class_names`, `len()`, and `batches()`. Refuses unfinished builds.

    `.images` / `.features` / `.data` are h5py datasets (read slices, e.g. `r.images[:32]`);
    `.labels` is an int64 numpy array (small, read once).
    """

    def __init__(self, path: str | Path, *, data_key: str | None = None):
        self.path = Path(path)
        if self.path.name.endswith(PARTIAL_SUFFIX):
            raise IncompleteHDF5Error(
                f"{self.path} is an unfinished build; resume the build with the same command"
            )
        if not self.path.exists():
            if partial_path(self.path).exists():
                raise IncompleteHDF5Error(
                    f"{self.path} is not finished ({partial_path(self.path).name} is there): "
                    "resume the build with the same command"
                )
            raise DatasetNotFoundError(f"no HDF5 file at {self.path}")
        self._file = h5py.File(self.path, "r")
        try:
            self.data_key = data_key or self._find_data_key()
            if self.data_key not in self._file:
                raise KeyError(
                    f"{self.path} has no dataset {self.data_key!r}; it has {list(self._file)}"
                )
            self.data = self._file[self.data_key]
            self.labels = np.asarray(self._file["labels"][:], dtype=np.int64)
            attrs = self._file.attrs
            if not bool(attrs.get("complete", True)) or int(
                attrs.get("rows_written", len(self.labels))
            ) != len(self.labels):
                raise IncompleteHDF5Error(
                    f"{self.path} is incomplete ({int(attrs.get('rows_written', -1))} of "
                    f"{len(self.labels)} rows written): resume the build with the same command"
                )
            if len(self.data) != len(self.labels):
                raise IncompleteHDF5Error(
                    f"{self.path}: {len(self.data)} rows of {self.data_key} but "
                    f"{len(self.labels)} labels"
                )
        except BaseException:
            self._file.close()
            raise

    def _find_data_key(self) -> str:
        key = self._file.attrs.get("data_key")
        if key:
            return str(key)
        for key in ("images", "features"):
            if key in self._file:
                return key
        others = [k for k in self._file if k not in ("labels", "label_names")]
        if len(others) == 1:
            return others[0]
        raise KeyError(f"{self.path}: which dataset holds the data? it has {list(self._file)}")

    @property
    def images(self) -> h5py.Dataset:
        return self._named("images")

    @property
    def features(self) -> h5py.Dataset:
        return self._named("features")

    def _named(self, key: str) -> h5py.Dataset:
        if key not in self._file:
            raise AttributeError(f"{self.path} has no {key!r}; its data is {self.data_key!r}")
        return self._file[key]

    @property
    def class_names(self) -> list[str]:
        if "label_names" not in self._file:
            return []
        return [s.decode() if isinstance(s, bytes) else str(s) for s in self._file["label_names"]]

    @property
    def attrs(self) -> dict[str, Any]:
        return {
            k: (v.item() if isinstance(v, np.generic) else v) for k, v in self._file.attrs.items()
        }

    def __len__(self) -> int:
        return len(self.labels)

    def batches(
        self, batch_size: int, *, shuffle: bool = False, seed: int | None = None
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """One pass over the file in (x, y) numpy batches of `batch_size` rows (the last smaller).

        `shuffle` reads contiguous slices (fast with chunked HDF5) in a random order and shuffles
        the rows inside each batch, so a pass covers every row once; `seed` makes it
        reproducible. Which rows share a batch is fixed by their position, so write the rows in
        a shuffled order (the builder does).
        """
        if batch_size < 1:
            raise ValueError(f"batch_size={batch_size}: must be at least 1")
        n = len(self)
        starts = np.arange(0, n, batch_size)
        rng = np.random.default_rng(seed) if shuffle else None
        if rng is not None:
            starts = rng.permutation(starts)
        for start in starts:
            stop = min(int(start) + batch_size, n)
            x = self.data[int(start) : stop]
            y = self.labels[int(start) : stop]
            if rng is not None:
                order = rng.permutation(len(y))
                x, y = x[order], y[order]
            yield x, y

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> HDF5DatasetReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"HDF5DatasetReader({str(self.path)!r}: {len(self)} rows of {self.data_key} "
            f"{tuple(self.data.shape[1:])}, {len(self.class_names)} classes)"
        )
