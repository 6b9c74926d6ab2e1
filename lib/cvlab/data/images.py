"""Decoding image files into arrays: resized, RGB, corrupt files skipped and counted (the pixels
themselves are `cvlab.image_prep`'s)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cvlab.data.dataset import SPLITS, Dataset
from cvlab.errors import UnreadableImageError
from cvlab.image_prep import PixelScale, Preprocessing, as_rgb_uint8, decode, pair, resize, to_scale

__all__ = [
    "DecodedImages",
    "as_rgb_uint8",
    "decode_images",
    "decode_index",
    "preprocessing_of",
    "read_image",
]

log = logging.getLogger(__name__)


def read_image(
    path: str | Path, size: int | tuple[int, int] | None = None, *, aspect: bool = False
) -> np.ndarray:
    """One image as uint8 (H, W, 3) RGB. `size` resizes to (size, size) or (H, W);
    `aspect=True` crops the centred window of the target's aspect ratio first (no distortion).
    Decoding and resizing are `cvlab.image_prep`'s, so every loader gets the same pixels."""
    image = decode(path)
    return image if size is None else resize(image, size, aspect=aspect)


@dataclass
class DecodedImages:
    """Images decoded from files, the labels of those that decoded, and the files skipped."""

    images: np.ndarray  # uint8 (N, H, W, 3)
    labels: np.ndarray  # int64 (N,)
    skipped: list[tuple[str, str]]  # (path, reason)


def decode_images(
    paths: Sequence[str | Path],
    labels: Sequence[int] | np.ndarray,
    size: int | tuple[int, int],
    *,
    aspect: bool = False,
    desc: str = "decoding",
    progress: bool = True,
) -> DecodedImages:
    """Decode `paths` at one size; unreadable or corrupt files are skipped and reported, so a
    build never stops halfway. Shows a progress bar."""
    from tqdm.auto import tqdm

    h, w = pair(size)
    out = np.empty((len(paths), h, w, 3), dtype=np.uint8)
    kept: list[int] = []
    skipped: list[tuple[str, str]] = []
    for i, path in enumerate(tqdm(paths, desc=desc, unit="img", disable=not progress, leave=False)):
        try:
            out[len(kept)] = read_image(path, (h, w), aspect=aspect)
        except (UnreadableImageError, ValueError) as exc:
            skipped.append((str(path), f"{type(exc).__name__}: {exc}"))
            continue
        kept.append(i)
    if skipped:
        log.warning("skipped %d unreadable image(s), e.g. %s", len(skipped), skipped[0][0])
    labels = np.asarray(labels, dtype=np.int64)
    return DecodedImages(out[: len(kept)], labels[kept], skipped)


def decode_index(
    index, size: int | tuple[int, int], *, aspect: bool = False, progress: bool = True
):
    """Decode every split of an `ImageIndex` into a `Dataset` (float32 in [0, 1]).

    The count and names of skipped files go to `dataset.info["skipped"]`.
    """
    arrays: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    skipped: list[tuple[str, str]] = []
    h, w = pair(size)
    for split in SPLITS:
        paths, labels = index.splits.get(split, ([], np.empty(0, dtype=np.int64)))
        decoded = decode_images(
            paths, labels, (h, w), aspect=aspect, desc=f"{index.name} {split}", progress=progress
        )
        arrays[split] = (to_scale(decoded.images, "0-1", source="0-255"), decoded.labels)
        skipped += decoded.skipped
    return Dataset(
        index.name,
        *arrays["train"],
        *arrays["val"],
        *arrays["test"],
        class_names=list(index.class_names),
        source=index.source,
        info={
            "skipped": len(skipped),
            "skipped_files": skipped[:20],
            "size": (h, w),
            "aspect": aspect,
        },
    )


def preprocessing_of(
    data: Dataset,
    *,
    means: dict[str, float] | None = None,
    scale: PixelScale = "0-1",
    keras_preprocess: str | None = None,
    recipe: str = "",
) -> Preprocessing:
    """The preparation a `cvlab.data` Dataset's images went through on the way to a model, as
    the run records it (`run.log_preprocessing(cvlab.data.preprocessing_of(data))`): decoded at
    its input size, aspect-aware if it was built so, on `scale` (a Dataset's own is [0, 1]; say
    "0-255" when the model was fed 0-255 pixels), minus `means` (on that scale), then a
    backbone's `keras_preprocess` (`cvlab.models.applications.preprocess_module(name)`)."""
    return Preprocessing(
        size=data.input_shape[:2],
        channels=data.input_shape[-1],
        aspect=bool(data.info.get("aspect", False)),
        scale=scale,
        means=means,
        class_names=[str(name) for name in data.class_names],
        keras_preprocess=keras_preprocess,
        recipe=recipe,
    )
