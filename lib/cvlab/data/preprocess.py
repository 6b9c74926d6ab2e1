"""Preprocessing from the book (ch. 10 of the Practitioner Bundle), on arrays: resize (plain and
aspect-aware), per-channel RGB mean subtraction, random patches for training and 10-crop
oversampling for evaluation."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from cvlab.atomic_io import write_json_atomic

CHANNELS = ("R", "G", "B")


def resize(images: np.ndarray, size: int | tuple[int, int], *, aspect: bool = False) -> np.ndarray:
    """Resize a batch (N, H, W, C) to `size`; `aspect=True` centre-crops to the target aspect
    ratio first (the book's AspectAwarePreprocessor), so nothing is stretched."""
    import keras

    h, w = (size, size) if isinstance(size, int) else size
    out = keras.ops.image.resize(
        np.asarray(images, dtype=np.float32), (h, w), crop_to_aspect_ratio=aspect, antialias=True
    )
    out = keras.ops.convert_to_numpy(out)
    if np.asarray(images).dtype == np.uint8:
        return np.clip(np.rint(out), 0, 255).astype(np.uint8)
    return out.astype(np.asarray(images).dtype)


def compute_rgb_means(images: np.ndarray) -> dict[str, float]:
    """Per-channel means of a training split, on the images' own scale (0–255 or 0–1).
    Accumulated in float64 batch by batch, so large uint8 arrays need no float copy."""
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"expected RGB images (N, H, W, 3), got shape {images.shape}")
    total = np.zeros(3, dtype=np.float64)
    for start in range(0, len(images), 1024):
        total += images[start : start + 1024].sum(axis=(0, 1, 2), dtype=np.float64)
    count = images.shape[0] * images.shape[1] * images.shape[2]
    return dict(zip(CHANNELS, (total / count).tolist(), strict=True))


def save_means(path: str | Path, means: dict[str, float]) -> Path:
    """Write `{"R": ..., "G": ..., "B": ...}` beside the data (the book's format)."""
    return write_json_atomic(path, {c: float(means[c]) for c in CHANNELS})


def load_means(path: str | Path) -> dict[str, float]:
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    missing = [c for c in CHANNELS if c not in data]
    if missing:
        raise ValueError(f"{path}: missing channel mean(s) {missing}; expected keys R, G, B")
    return {c: float(data[c]) for c in CHANNELS}


def subtract_means(images: np.ndarray, means: dict[str, float]) -> np.ndarray:
    """Images minus the per-channel training means, as float32 (the book's MeanPreprocessor)."""
    images = np.asarray(images, dtype=np.float32)
    vector = np.array([means[c] for c in CHANNELS], np.float32)
    return images - vector[: images.shape[-1]]  # grey images: the one channel's mean


def random_patch(
    image: np.ndarray, size: int | tuple[int, int], rng: np.random.Generator
) -> np.ndarray:
    """A random `size` crop of one (H, W, C) image: the book's PatchPreprocessor for training."""
    h, w = (size, size) if isinstance(size, int) else size
    if image.shape[0] < h or image.shape[1] < w:
        raise ValueError(f"cannot cut a {h}×{w} patch from an image of {image.shape[:2]}")
    top = int(rng.integers(0, image.shape[0] - h + 1))
    left = int(rng.integers(0, image.shape[1] - w + 1))
    return image[top : top + h, left : left + w]


def ten_crop(image: np.ndarray, size: int | tuple[int, int]) -> np.ndarray:
    """The four corners and the centre at `size`, then their horizontal mirrors: (10, h, w, C).
    Averaging a model's predictions over them (oversampling) usually adds a point or two."""
    h, w = (size, size) if isinstance(size, int) else size
    height, width = image.shape[:2]
    if height < h or width < w:
        raise ValueError(f"cannot cut {h}×{w} crops from an image of {image.shape[:2]}")
    top, left = (height - h) // 2, (width - w) // 2
    crops = [
        image[:h, :w],
        image[:h, width - w :],
        image[height - h :, :w],
        image[height - h :, width - w :],
        image[top : top + h, left : left + w],
    ]
    crops += [crop[:, ::-1] for crop in crops]
    return np.stack(crops)


def predict_ten_crop(
    model, images: np.ndarray, size: int | tuple[int, int], batch_size: int = 64
) -> np.ndarray:
    """Class probabilities averaged over the ten crops of each image. The crops of several
    images go through the model together (`batch_size` crops at a time)."""
    per_call = max(1, batch_size // 10)
    out = []
    for start in range(0, len(images), per_call):
        chunk = images[start : start + per_call]
        crops = np.concatenate([ten_crop(image, size) for image in chunk])
        probs = np.asarray(model.predict_on_batch(crops))
        out.append(probs.reshape(len(chunk), 10, -1).mean(axis=1))
    if not out:
        raise ValueError("images: no images to predict")
    return np.concatenate(out)
