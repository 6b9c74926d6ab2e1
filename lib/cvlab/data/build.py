"""Build HDF5 files for a named data set: one file per split, plus the training RGB means.

`build_hdf5("tiny-imagenet", "data/tiny-imagenet.hdf5", size=64)` writes, beside `out`:

    data/tiny-imagenet_train.hdf5   images uint8 (N, 64, 64, 3), labels int64, label_names
    data/tiny-imagenet_val.hdf5
    data/tiny-imagenet_test.hdf5
    data/tiny-imagenet_mean.json    {"R": ..., "G": ..., "B": ..., "channels": 3, "images": N}

The means are per channel over every pixel of the training split, on the 0–255 scale (the
book's `{"R", "G", "B"}` for mean subtraction), summed in float64 as the rows are written.
Grey data sets (one channel, e.g. `mnist5k`, `digits`) are written with their one channel, as
they are; their mean file repeats the grey mean under R, G and B and says `"channels": 1`.

File-based data sets (`cvlab.data.file_based_names()`) are streamed from `cvlab.data.index`:
`batch_size` files are decoded at a time, so memory stays flat however large the data set.
Corrupt or unreadable files are skipped; the file is trimmed to the rows written, and the count
(and the first few paths) is stored in the attributes `skipped` / `skipped_files`. Other data
sets come from `cvlab.data.load` (float32 in [0, 1] -> uint8 0–255, resized by
`cvlab.image_prep`'s policy when `size` differs from theirs).

Rows are written in a shuffled order (`shuffle_seed`; None keeps the source order), so
contiguous batches mix the classes. Each file is built as `<file>.partial` and renamed when
finished. A build that stops (crash, Ctrl-C) resumes where its last flush left off when run
again with the same arguments (`resume=True`, the default); a split whose finished file was
built with the same arguments is not built again. Changed arguments start that split over.
"""

from __future__ import annotations

import inspect
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

import cvlab.data as data
from cvlab.atomic_io import write_json_atomic
from cvlab.data.cache import data_root
from cvlab.data.catalog import DATASETS, indexed_names, indexer
from cvlab.data.dataset import SPLITS
from cvlab.data.hdf5 import HDF5DatasetWriter, partial_path
from cvlab.data.images import decode_images
from cvlab.errors import DatasetLayoutError
from cvlab.image_prep import resize, to_uint8

log = logging.getLogger(__name__)

MEAN_KEYS = ("R", "G", "B")
_SKIPPED_LISTED = 20


def output_paths(out: str | Path) -> dict[str, Path]:
    """`data/NAME.hdf5` -> `data/NAME_train.hdf5`, `_val`, `_test` and `data/NAME_mean.json`."""
    out = Path(out)
    suffix = out.suffix if out.suffix in (".hdf5", ".h5", ".hdf") else ".hdf5"
    stem = out.stem if out.suffix == suffix else out.name
    paths = {split: out.with_name(f"{stem}_{split}{suffix}") for split in SPLITS}
    paths["mean"] = out.with_name(f"{stem}_mean.json")
    return paths


@dataclass
class _Batch:
    images: np.ndarray  # uint8 (n, H, W, C)
    labels: np.ndarray  # int64 (n,)
    consumed: int  # source items consumed after this batch
    skipped: list[tuple[str, str]]


@dataclass
class _Source:
    """One split of a data set, read `batch_size` items at a time from item `start` on."""

    count: int
    shape: tuple[int, int, int]
    kind: str
    read: Any  # (start, stop) -> (images, labels, skipped)

    def batches(self, start: int, batch_size: int) -> Iterator[_Batch]:
        for lo in range(start, self.count, batch_size):
            hi = min(lo + batch_size, self.count)
            images, labels, skipped = self.read(lo, hi)
            yield _Batch(images, labels, hi, skipped)


def _order(count: int, seed: int | None, split: str) -> np.ndarray:
    if seed is None:
        return np.arange(count)
    return np.random.default_rng([seed, SPLITS.index(split)]).permutation(count)


def _index_source(idx, split: str, hw: tuple[int, int], aspect: bool, seed: int | None):
    paths, labels = idx.splits.get(split, ([], np.empty(0, dtype=np.int64)))
    labels = np.asarray(labels, dtype=np.int64)
    if len(paths) != len(labels):
        raise ValueError(f"{idx.name} {split}: {len(paths)} files but {len(labels)} labels")
    order = _order(len(paths), seed, split)
    paths = [paths[i] for i in order]
    labels = labels[order]

    def read(lo: int, hi: int):
        decoded = decode_images(paths[lo:hi], labels[lo:hi], hw, aspect=aspect, progress=False)
        return decoded.images, decoded.labels, decoded.skipped

    return _Source(len(paths), (*hw, 3), "files", read)


def _array_source(ds, split: str, hw: tuple[int, int] | None, aspect: bool, seed: int | None):
    x = getattr(ds, f"x_{split}")
    y = np.asarray(getattr(ds, f"y_{split}"), dtype=np.int64)
    if x.ndim == 3:  # (N, H, W): grey without a channel axis
        x = x[..., np.newaxis]
    if x.ndim != 4 or x.shape[-1] not in (1, 3):
        raise ValueError(
            f"{ds.name} {split}: images of shape {x.shape}; expected (N, H, W, 1 or 3)"
        )
    native = (int(x.shape[1]), int(x.shape[2]))
    target = hw or native
    order = _order(len(x), seed, split)

    def read(lo: int, hi: int):
        rows = order[lo:hi]
        images = to_uint8(x[rows], scale="0-1")  # cvlab.data's float images are on [0, 1]
        if target != native:
            images = resize(images, target, aspect=aspect)
        return images, y[rows], []

    return _Source(len(x), (*target, int(x.shape[-1])), "arrays", read)


def _finished_meta(path: Path) -> dict[str, Any] | None:
    """The build arguments recorded in a finished file, or None if it is not one of ours."""
    try:
        with h5py.File(path, "r") as f:
            if not bool(f.attrs.get("complete", False)):
                return None
            return json.loads(f.attrs.get("meta", "null"))
    except (OSError, ValueError):
        return None


def _stats_of(path: Path) -> tuple[np.ndarray, int, int, int]:
    with h5py.File(path, "r") as f:
        return (
            np.asarray(f.attrs["channel_sums"], dtype=np.float64),
            int(f.attrs["pixels"]),
            int(f["labels"].shape[0]),
            int(f.attrs.get("skipped", 0)),
        )


def _parameters(name: str, *, index: bool) -> set[str] | None:
    """The keyword names a registered data set's indexer (`index=True`) or loader takes; None
    for names the registry does not hold (a user's own set: its layout decides)."""
    if index:
        return set(inspect.signature(indexer(name)).parameters) if name in indexed_names() else None
    return (
        set(inspect.signature(DATASETS.get(name).builder).parameters) if name in DATASETS else None
    )


def build_hdf5(
    name: str,
    out: str | Path | None = None,
    /,
    *,
    size: int | tuple[int, int] | None = 64,
    aspect: bool = False,
    batch_size: int = 500,
    resume: bool = True,
    progress: bool = True,
    shuffle_seed: int | None = 0,
    **options: Any,
) -> dict[str, Path]:
    """Write `<out stem>_{train,val,test}.hdf5` and `<out stem>_mean.json` for data set `name`.

    `options` go to the data set's indexer or loader (e.g. `directory=...`, `limit=200`).
    `out` defaults to `<data cache>/NAME.hdf5`. `size` is the image side (or (H, W));
    None keeps an in-memory data set's own size. `aspect=True` resizes the short side and
    centre-crops instead of stretching. Returns the paths by key: train, val, test, mean.
    """

    if batch_size < 1:
        raise ValueError(f"batch_size={batch_size}: must be at least 1")
    hw = (size, size) if isinstance(size, int) else (tuple(int(s) for s in size) if size else None)
    out = Path(out) if out is not None else data_root() / f"{name}.hdf5"
    paths = output_paths(out)

    idx = None
    if name in data.file_based_names():
        if hw is None:
            raise ValueError(f"{name} is read from image files: give a size, e.g. size=64")
        # Options only the loader knows (e.g. cifar10's `download`) are not the indexer's.
        index_params = _parameters(name, index=True)
        load_params = _parameters(name, index=False)
        index_options = {
            k: v
            for k, v in options.items()
            if index_params is None or k in index_params or k not in (load_params or ())
        }
        try:
            idx = data.index(name, **index_options)
        except DatasetLayoutError:
            idx = None  # e.g. CIFAR-10's pickles: loaded into memory below instead
    if idx is not None:
        class_names = list(idx.class_names)
        sources = {s: _index_source(idx, s, hw, aspect, shuffle_seed) for s in SPLITS}
    else:
        # Loaders that can render or decode at the target size get it (no upsampling later).
        loader_options = dict(options)
        accepted = _parameters(name, index=False) or ()
        if hw is not None and "size" in accepted and "size" not in loader_options:
            loader_options["size"] = hw[0] if hw[0] == hw[1] else hw
        if aspect and "aspect" in accepted:
            loader_options.setdefault("aspect", True)
        ds = data.load(name, **loader_options)
        class_names = list(ds.class_names)
        sources = {s: _array_source(ds, s, hw, aspect, shuffle_seed) for s in SPLITS}
    if sources["train"].count == 0:
        raise ValueError(f"{name} has no training images (options {options})")

    stats: dict[str, tuple[np.ndarray, int, int, int]] = {}
    for split in SPLITS:
        source = sources[split]
        meta = {
            "name": name,
            "split": split,
            "source": source.kind,
            "count": source.count,
            "shape": list(source.shape),
            "aspect": bool(aspect),
            "shuffle_seed": shuffle_seed,
            "options": json.loads(json.dumps(options, sort_keys=True, default=str)),
        }
        final = paths[split]
        if resume and final.exists() and _finished_meta(final) == meta:
            stats[split] = _stats_of(final)
            log.info("%s is already built with these arguments; kept", final)
            continue
        stats[split] = _build_split(
            final, source, meta, class_names, batch_size=batch_size, resume=resume,
            progress=progress, desc=f"{name} {split}",
        )  # fmt: skip

    sums, pixels, rows, _ = stats["train"]
    channels = sources["train"].shape[-1]
    means = [float(v) for v in sums / pixels]
    if channels == 1:
        means = means * 3
    write_json_atomic(
        paths["mean"],
        {**dict(zip(MEAN_KEYS, means, strict=True)), "channels": channels, "images": rows},
    )
    return paths


def _build_split(
    final: Path,
    source: _Source,
    meta: dict[str, Any],
    class_names: list[str],
    *,
    batch_size: int,
    resume: bool,
    progress: bool,
    desc: str,
) -> tuple[np.ndarray, int, int, int]:
    """Stream one split into `final` (via `.partial`); returns (channel sums, pixels, rows, skipped)."""
    from tqdm.auto import tqdm

    channels = source.shape[-1]
    partial = partial_path(final)
    can_resume = resume and partial.exists()
    if can_resume:
        try:  # resume only the same build, with a progress record that matches the rows on disk
            with h5py.File(partial, "r") as f:
                saved = json.loads(f.attrs.get("state", "null"))
                can_resume = (
                    json.loads(f.attrs.get("meta", "null")) == meta
                    and isinstance(saved, dict)
                    and saved.get("rows") == int(f.attrs.get("rows_written", -1))
                )
        except (OSError, ValueError, KeyError):
            can_resume = False
        if not can_resume:
            log.warning("%s: other arguments, or unreadable; starting that split over", partial)

    with HDF5DatasetWriter(
        final,
        (source.count, *source.shape),
        data_key="images",
        dtype="uint8",
        buffer_size=batch_size,
        class_names=class_names,
        resume=can_resume,
        meta=meta,
    ) as writer:
        state = writer.state if writer.resumed else None
        if state is None:
            state = {"consumed": 0, "rows": 0, "skipped": 0, "skipped_files": [],
                     "sums": [0.0] * channels, "pixels": 0}  # fmt: skip
        else:
            log.info("%s: resuming after %d of %d", desc, state["consumed"], source.count)
        sums = np.asarray(state["sums"], dtype=np.float64)
        bar = tqdm(
            total=source.count, initial=state["consumed"], desc=desc, unit="img",
            disable=not progress,
        )  # fmt: skip
        with bar:
            for batch in source.batches(state["consumed"], batch_size):
                sums += batch.images.reshape(-1, channels).sum(axis=0, dtype=np.float64)
                state["pixels"] += int(batch.images.size // channels)
                state["rows"] += len(batch.images)
                state["skipped"] += len(batch.skipped)
                room = _SKIPPED_LISTED - len(state["skipped_files"])
                state["skipped_files"] += [list(s) for s in batch.skipped[: max(room, 0)]]
                state["consumed"] = batch.consumed
                state["sums"] = sums.tolist()
                writer.add(batch.images, batch.labels, state=state)
                bar.update(batch.consumed - bar.n)
        if state["skipped"]:
            log.warning(
                "%s: skipped %d unreadable file(s), e.g. %s",
                desc, state["skipped"], state["skipped_files"][0][0],
            )  # fmt: skip
        if meta["split"] == "train" and state["rows"] == 0:
            raise ValueError(
                f"{desc}: no training image could be read ({state['skipped']} skipped, e.g. "
                f"{state['skipped_files'][:1]})"
            )
        writer.attrs["skipped"] = state["skipped"]
        writer.attrs["skipped_files"] = json.dumps(state["skipped_files"])
        writer.attrs["channel_sums"] = sums
        writer.attrs["pixels"] = state["pixels"]
        if state["pixels"]:
            writer.attrs["channel_means"] = sums / state["pixels"]
    return sums, state["pixels"], state["rows"], state["skipped"]
