"""Networks as feature extractors (book ch. 3): images in, one feature vector per image out,
written to HDF5 in batches so that a data set larger than memory never has to be held at once.

The HDF5 file (`HDF5DatasetWriter`, data key `features`) keeps the row order of its input and
the class names; an interrupted extraction resumes after the last batch written.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from cvlab.data.hdf5 import HDF5DatasetWriter
from cvlab.data.images import read_image

Preprocess = Callable[[np.ndarray], Any]


def _batches(
    images: np.ndarray | Sequence[str | Path],
    size: int | tuple[int, int] | None,
    aspect: bool,
    batch_size: int,
    start: int,
):
    """(first row, uint8/float batch) from arrays, or decoded from files at `size`."""
    decode = not isinstance(images, np.ndarray)
    if decode and size is None:
        raise ValueError("size: required when images are file paths (e.g. size=224)")
    for first in range(start, len(images), batch_size):
        chunk = images[first : first + batch_size]
        if decode:
            chunk = np.stack([read_image(p, size, aspect=aspect) for p in chunk])
        yield first, np.asarray(chunk)


def extract_features(
    model: Any,
    images: np.ndarray | Sequence[str | Path],
    labels: Sequence[int] | np.ndarray,
    out: str | Path,
    *,
    class_names: Sequence[str] | None = None,
    preprocess: Preprocess | None = None,
    size: int | tuple[int, int] | None = None,
    aspect: bool = True,
    batch_size: int = 32,
    resume: bool = True,
    progress: bool = True,
    meta: dict[str, Any] | None = None,
) -> Path:
    """Run `model` (a headless backbone) over `images` and write its flattened outputs with the
    `labels` to the HDF5 file `out`; returns `out`.

    `images` is an array (N, H, W, 3) or a list of image files decoded at `size` (short side
    resized and centre-cropped when `aspect`). `preprocess` maps a uint8 batch to the model's
    input (e.g. the backbone's own `preprocess_input`); by default batches go in as float32.
    """
    from tqdm.auto import tqdm

    labels = np.asarray(labels, dtype=np.int64)
    if len(labels) != len(images):
        raise ValueError(f"{len(images)} images but {len(labels)} labels")
    if len(images) == 0:
        raise ValueError("images: nothing to extract features from")
    out = Path(out)
    prepare = preprocess or (lambda batch: batch.astype(np.float32))

    def features_of(batch: np.ndarray) -> np.ndarray:
        result = np.asarray(model.predict_on_batch(prepare(batch)))
        return result.reshape(len(batch), -1).astype(np.float32)

    # the file's row width is the model's output size: one image tells it
    dims = features_of(next(_batches(images[:1], size, aspect, 1, 0))[1]).shape[1]
    writer = HDF5DatasetWriter(
        out,
        (len(images), dims),
        data_key="features",
        dtype="float32",
        buffer_size=max(batch_size, 256),
        class_names=class_names,
        resume=resume,
        meta={"images": len(images), "dims": dims, **(meta or {})},
    )
    with writer, tqdm(total=len(images), initial=writer.rows_written, unit="img",
                      desc=f"features -> {out.name}", disable=not progress) as bar:  # fmt: skip
        # a resumed file continues after the rows an interrupted extraction wrote
        for first, batch in _batches(images, size, aspect, batch_size, writer.rows_written):
            writer.add(features_of(batch), labels[first : first + len(batch)])
            bar.update(len(batch))
    return out


def extract_index_features(
    model: Any,
    index: Any,
    out_dir: str | Path,
    *,
    size: int | tuple[int, int],
    preprocess: Preprocess | None = None,
    aspect: bool = True,
    batch_size: int = 32,
    progress: bool = True,
    meta: dict[str, Any] | None = None,
) -> dict[str, Path]:
    """Features for every non-empty split of an `ImageIndex`: `<out_dir>/<split>.hdf5`."""
    out_dir = Path(out_dir)
    paths = {}
    for split, (files, labels) in index.splits.items():
        if len(files) == 0:
            continue
        paths[split] = extract_features(
            model,
            list(files),
            labels,
            out_dir / f"{split}.hdf5",
            class_names=index.class_names,
            preprocess=preprocess,
            size=size,
            aspect=aspect,
            batch_size=batch_size,
            progress=progress,
            meta={"data set": index.name, "split": split, **(meta or {})},
        )
    return paths
