"""Decoding image files into arrays: resized, RGB, corrupt files skipped and counted."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

log = logging.getLogger(__name__)


def read_image(
    path: str | Path, size: int | tuple[int, int] | None = None, *, aspect: bool = False
) -> np.ndarray:
    """One image as uint8 (H, W, 3) RGB. `size` resizes to (size, size) or (H, W);
    `aspect=True` resizes the short side and centre-crops (no distortion)."""
    with Image.open(path) as img:
        img = ImageOps.exif_transpose(img).convert("RGB")
        if size is not None:
            h, w = (size, size) if isinstance(size, int) else size
            if aspect:
                img = ImageOps.fit(img, (w, h), method=Image.Resampling.BILINEAR)
            else:
                img = img.resize((w, h), Image.Resampling.BILINEAR)
        return np.asarray(img, dtype=np.uint8)


def as_rgb_uint8(image: np.ndarray) -> np.ndarray:
    """An in-memory image as uint8 (H, W, 3) RGB: grey repeated on three channels, alpha
    dropped, floats in [0, 1] scaled to 0-255 and other floats taken as 0-255 (scikit-image's
    photos and models' outputs come in all these forms)."""
    array = np.asarray(image)
    if array.ndim == 2:
        array = np.repeat(array[..., None], 3, axis=-1)
    if array.ndim != 3 or array.shape[-1] not in (3, 4):
        raise ValueError(f"expected an HxW or HxWx3/4 image, got shape {array.shape}")
    array = array[..., :3]
    if array.dtype != np.uint8:
        array = array.astype(np.float64)
        if array.max(initial=0) <= 1.0:
            array = array * 255.0
        array = np.clip(np.rint(array), 0, 255).astype(np.uint8)
    return array


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

    h, w = (size, size) if isinstance(size, int) else size
    out = np.empty((len(paths), h, w, 3), dtype=np.uint8)
    kept: list[int] = []
    skipped: list[tuple[str, str]] = []
    for i, path in enumerate(tqdm(paths, desc=desc, unit="img", disable=not progress, leave=False)):
        try:
            out[len(kept)] = read_image(path, (h, w), aspect=aspect)
        except (
            OSError,
            UnidentifiedImageError,
            Image.DecompressionBombError,
            ValueError,
            SyntaxError,
        ) as exc:
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
    from cvlab.data.dataset import SPLITS, Dataset

    arrays: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    skipped: list[tuple[str, str]] = []
    h, w = (size, size) if isinstance(size, int) else size
    for split in SPLITS:
        paths, labels = index.splits.get(split, ([], np.empty(0, dtype=np.int64)))
        decoded = decode_images(
            paths, labels, (h, w), aspect=aspect, desc=f"{index.name} {split}", progress=progress
        )
        arrays[split] = (decoded.images.astype(np.float32) / 255.0, decoded.labels)
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
