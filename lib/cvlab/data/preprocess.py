"""Preprocessing from the book (ch. 10 of the Practitioner Bundle), on arrays: resize (plain and
aspect-aware), per-channel RGB mean subtraction, random patches for training and 10-crop
oversampling for evaluation. They live in `cvlab.image_prep` (the one image-preparation path);
these names stay importable from here."""

from __future__ import annotations

from cvlab.image_prep import (
    CHANNELS,
    centre_crop,
    compute_rgb_means,
    load_means,
    predict_ten_crop,
    random_patch,
    resize,
    save_means,
    subtract_means,
    ten_crop,
)

__all__ = [
    "CHANNELS",
    "centre_crop",
    "compute_rgb_means",
    "load_means",
    "predict_ten_crop",
    "random_patch",
    "resize",
    "save_means",
    "subtract_means",
    "ten_crop",
]
