"""Object detection with an image classifier (book ch. 13.3): every window of every pyramid layer
is classified in batches, the windows whose class probability passes `min_prob` become boxes,
and non-maxima suppression keeps the most confident box per object, per label.

    model = cvlab.models.build("efficientnet_lite0", weights="imagenet")
    result = detect(skimage.data.chelsea(), model, window=224, step=16, scale=1.5, min_prob=0.5)
    result.detections      # [Detection(label='tabby cat', probability=0.81, box=(x1, y1, x2, y2)), ...]
    result.seconds         # time for this image: pyramid, windows, classification and NMS

The model takes 0-255 pixels (as `efficientnet_lite0`); give `preprocess` for one that wants
another scale. Windows of another size than the model's input are resized to it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cvlab.detection.nms import BOOK_OVERLAP, non_maxima_suppression
from cvlab.detection.pyramid import _pair, image_pyramid
from cvlab.detection.sliding_window import window_positions
from cvlab.image_prep import as_rgb_uint8, decode, resize
from cvlab.models.imagenet import CLASSES, imagenet_class_names, imagenet_wnids

# The book's constants (ch. 13.3, simple_detection.py) and its command line (ch. 13.4).
BOOK_INPUT_SIZE = (350, 350)  # INPUT_SIZE: the image is resized to this, ignoring its aspect
BOOK_SCALE = 1.5  # PYR_SCALE
BOOK_STEP = 16  # WIN_STEP
BOOK_WINDOW = (224, 224)  # ROI_SIZE
BOOK_BATCH_SIZE = 64  # BATCH_SIZE
BOOK_MIN_PROB = 0.75  # --confidence 0.75 in the run of ch. 13.4 (the script's default is 0.5)
BOOK_TOP = 10  # classify_batch's top


@dataclass(frozen=True)
class Detection:
    """One box: its class, probability and (x1, y1, x2, y2) in the original image's pixels."""

    label: str
    wnid: str
    class_id: int
    probability: float
    box: tuple[int, int, int, int]
    layer: int  # the pyramid layer the window came from (0: the full-size image)


@dataclass
class DetectionResult:
    """What `detect` found in one image, with the counts and times that produced it."""

    detections: list[Detection]  # after non-maxima suppression, best first
    candidates: list[Detection]  # every window that passed min_prob, before NMS
    image_size: tuple[int, int]  # (width, height) of the original image
    input_size: tuple[int, int]  # (width, height) the pyramid started from
    layers: list[tuple[int, int]]  # (width, height) of each pyramid layer
    windows: int  # windows classified
    seconds: float  # wall time for the image: pyramid, windows, classification, NMS
    classify_seconds: float  # of which in the network
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def labels(self) -> dict[str, int]:
        """Boxes kept per label, e.g. {'tabby cat': 1}."""
        counts: dict[str, int] = {}
        for det in self.detections:
            counts[det.label] = counts.get(det.label, 0) + 1
        return counts

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready values (the run's boxes artifact)."""
        return {
            "image_size": list(self.image_size),
            "input_size": list(self.input_size),
            "layers": [list(layer) for layer in self.layers],
            "windows": self.windows,
            "seconds": round(self.seconds, 4),
            "classify_seconds": round(self.classify_seconds, 4),
            "params": dict(self.params),
            "detections": [_plain(d) for d in self.detections],
            "candidates": [_plain(d) for d in self.candidates],
        }


def _plain(det: Detection) -> dict[str, Any]:
    out = asdict(det)
    out["box"] = [int(v) for v in det.box]
    out["probability"] = round(float(det.probability), 6)
    return out


def _as_uint8(image: Any) -> np.ndarray:
    """A path read from disk, or an array made uint8 RGB (float arrays are on [0, 1])."""
    if isinstance(image, str | Path):
        return decode(image)
    return as_rgb_uint8(image, scale="0-1")


def _class_table(model, class_names: Sequence[str] | None) -> tuple[list[str], list[str]]:
    classes = int(model.output_shape[-1])
    if class_names is not None:
        names = [str(n) for n in class_names]
        if len(names) != classes:
            raise ValueError(f"{len(names)} class names for a model with {classes} outputs")
        return names, names

    if classes != CLASSES:
        raise ValueError(
            f"the model has {classes} outputs, not ImageNet's {CLASSES}: pass class_names="
        )
    return list(imagenet_class_names()), list(imagenet_wnids())


def model_window(model) -> tuple[int, int] | None:
    """The (width, height) a model takes, or None when its input size is free."""
    shape = getattr(model, "input_shape", None)
    if not shape or shape[1] is None or shape[2] is None:
        return None
    return int(shape[2]), int(shape[1])


def warm_up(model, batch_size: int, window: int | Sequence[int] | None = None) -> None:
    """Run the model once on a full batch and once on a single window, so that the compiled
    prediction function exists for any batch size before anything is timed."""
    win_w, win_h = model_window(model) or _pair(window or 224, "window")
    for n in (int(batch_size), 1):
        model.predict_on_batch(np.zeros((n, win_h, win_w, 3), dtype=np.float32))


def detect(
    image: Any,
    model,
    *,
    window: int | Sequence[int] = BOOK_WINDOW,
    step: int = BOOK_STEP,
    scale: float = BOOK_SCALE,
    min_prob: float = 0.5,
    batch_size: int = BOOK_BATCH_SIZE,
    input_size: int | Sequence[int] | None = None,
    top: int = BOOK_TOP,
    overlap_threshold: float = BOOK_OVERLAP,
    overlap: str = "area",
    class_names: Sequence[str] | None = None,
    preprocess: Callable[[np.ndarray], Any] | None = None,
) -> DetectionResult:
    """Detect objects in one image with a classifier (see the module doc).

    `image` is an array (uint8, or floats in [0, 1]) or a path. `input_size` (width, height)
    resizes it first, ignoring the aspect ratio, as the book does (350×350); None keeps it.
    `window` (width, height) slides `step` pixels at a time over every layer of an image pyramid
    shrinking by `scale` down to the window's size. Each window's `top` classes with a probability
    above `min_prob` become candidate boxes; non-maxima suppression (per label, `overlap` "area"
    as the book's imutils call, or "iou", above `overlap_threshold`) keeps the detections.
    Boxes are in the original image's pixels.
    """
    started = time.perf_counter()
    original = _as_uint8(image)
    orig_h, orig_w = original.shape[:2]
    win_w, win_h = _pair(window, "window")
    names, wnids = _class_table(model, class_names)
    net_size = model_window(model)
    if input_size is not None:
        in_w, in_h = _pair(input_size, "input_size")
        resized = resize(original, (in_h, in_w), method="bicubic")  # the book: INTER_CUBIC
    else:
        resized, (in_w, in_h) = original, (orig_w, orig_h)

    layers = list(image_pyramid(resized, scale=scale, min_size=(win_w, win_h)))
    spots = [(k, int(x), int(y)) for k, layer in enumerate(layers)
             for x, y in window_positions(layer.shape, step, (win_w, win_h))]  # fmt: skip

    candidates: list[tuple[int, int, float, tuple[float, float, float, float]]] = []
    classify_seconds = 0.0
    for start in range(0, len(spots), int(batch_size)):
        chunk = spots[start : start + int(batch_size)]
        batch = np.stack([layers[k][y : y + win_h, x : x + win_w] for k, x, y in chunk])
        batch = batch.astype(np.float32)
        if net_size is not None and net_size != (win_w, win_h):
            batch = resize(batch, (net_size[1], net_size[0]))  # cvlab.image_prep's policy
        if preprocess is not None:
            batch = preprocess(batch)
        tick = time.perf_counter()
        probs = np.asarray(model.predict_on_batch(batch), dtype=np.float64)
        classify_seconds += time.perf_counter() - tick
        best = np.argsort(-probs, axis=1, kind="stable")[:, :top]
        for row, (k, x, y) in enumerate(chunk):
            layer_h, layer_w = layers[k].shape[:2]
            fx, fy = in_w / layer_w, in_h / layer_h  # layer pixels -> input pixels
            box = (x * fx, y * fy, (x + win_w) * fx, (y + win_h) * fy)
            for cls in best[row]:
                if probs[row, cls] > min_prob:
                    candidates.append((int(cls), k, float(probs[row, cls]), box))

    # NMS per label, in the coordinates the pyramid started from (as the book does)
    kept: list[int] = []
    by_class: dict[int, list[int]] = {}
    for i, (cls, *_rest) in enumerate(candidates):
        by_class.setdefault(cls, []).append(i)
    for members in by_class.values():
        boxes = np.array([candidates[i][3] for i in members])
        scores = np.array([candidates[i][2] for i in members])
        keep = non_maxima_suppression(boxes, scores, overlap_threshold, overlap=overlap)  # type: ignore[arg-type]
        kept.extend(members[j] for j in keep)

    sx, sy = orig_w / in_w, orig_h / in_h  # input pixels -> original pixels

    def as_detection(i: int) -> Detection:
        cls, k, prob, (x1, y1, x2, y2) = candidates[i]
        box = (round(x1 * sx), round(y1 * sy), round(x2 * sx), round(y2 * sy))
        box = (max(0, box[0]), max(0, box[1]), min(orig_w, box[2]), min(orig_h, box[3]))
        return Detection(names[cls], wnids[cls], cls, prob, box, k)

    detections = sorted((as_detection(i) for i in kept), key=lambda d: -d.probability)
    seconds = time.perf_counter() - started
    return DetectionResult(
        detections=detections,
        candidates=[as_detection(i) for i in range(len(candidates))],
        image_size=(orig_w, orig_h),
        input_size=(in_w, in_h),
        layers=[(layer.shape[1], layer.shape[0]) for layer in layers],
        windows=len(spots),
        seconds=seconds,
        classify_seconds=classify_seconds,
        params={
            "window": [win_w, win_h],
            "step": int(step),
            "scale": float(scale),
            "min_prob": float(min_prob),
            "batch_size": int(batch_size),
            "input_size": None if input_size is None else [in_w, in_h],
            "top": int(top),
            "overlap_threshold": float(overlap_threshold),
            "overlap": overlap,
        },  # fmt: skip
    )


__all__ = [
    "BOOK_BATCH_SIZE",
    "BOOK_INPUT_SIZE",
    "BOOK_MIN_PROB",
    "BOOK_SCALE",
    "BOOK_STEP",
    "BOOK_TOP",
    "BOOK_WINDOW",
    "Detection",
    "DetectionResult",
    "detect",
    "model_window",
    "warm_up",
]
