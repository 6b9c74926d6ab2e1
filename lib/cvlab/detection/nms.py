"""Non-maxima suppression (book ch. 13.2.4): of boxes that overlap, keep the most confident.

Hand-written in NumPy rather than `tf.image.non_max_suppression` because the book's detector uses
`imutils.object_detection.non_max_suppression` (Malisiewicz's fast variant), whose overlap is the
intersection divided by the area of the *other* box, with inclusive pixel coordinates (+1), and
threshold 0.3; TensorFlow's op only measures intersection over union. Both are offered here
(`overlap="area"`, the book's, or `"iou"`), and the IoU result equals TensorFlow's (tested).
"""

from __future__ import annotations

from typing import Literal

import numpy as np

BOOK_OVERLAP = 0.3  # imutils' default overlapThresh, which the book's call leaves as it is


def box_area(boxes: np.ndarray, *, inclusive: bool = True) -> np.ndarray:
    """Areas of (x1, y1, x2, y2) boxes; `inclusive` counts both end pixels (imutils' +1)."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    one = 1.0 if inclusive else 0.0
    return np.maximum(0.0, boxes[:, 2] - boxes[:, 0] + one) * np.maximum(
        0.0, boxes[:, 3] - boxes[:, 1] + one
    )


def intersection(box: np.ndarray, boxes: np.ndarray, *, inclusive: bool = True) -> np.ndarray:
    """Intersection area of one box with each of `boxes`."""
    box = np.asarray(box, dtype=np.float64)
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    one = 1.0 if inclusive else 0.0
    w = np.minimum(box[2], boxes[:, 2]) - np.maximum(box[0], boxes[:, 0]) + one
    h = np.minimum(box[3], boxes[:, 3]) - np.maximum(box[1], boxes[:, 1]) + one
    return np.maximum(0.0, w) * np.maximum(0.0, h)


def iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Intersection over union of one box with each of `boxes` (continuous coordinates)."""
    inter = intersection(box, boxes, inclusive=False)
    union = box_area(box, inclusive=False) + box_area(boxes, inclusive=False) - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def non_maxima_suppression(
    boxes: np.ndarray,
    scores: np.ndarray | None = None,
    overlap_threshold: float = BOOK_OVERLAP,
    *,
    overlap: Literal["area", "iou"] = "area",
) -> np.ndarray:
    """Indices of the boxes kept, most confident first.

    `boxes` are (N, 4) as (x1, y1, x2, y2); `scores` (N,) rank them (without scores the box reaching
    lowest, the largest y2, wins, as in imutils). Repeatedly the best remaining box is kept and every
    remaining box that overlaps it by more than `overlap_threshold` is dropped. `overlap="area"`
    measures the intersection over the dropped box's own area (the book's imutils call);
    `"iou"` over the union. Equal scores keep the earlier box.
    """
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    if len(boxes) == 0:
        return np.zeros(0, dtype=np.int64)
    if overlap not in ("area", "iou"):
        raise ValueError(f"overlap={overlap!r}: 'area' (the book's) or 'iou'")
    rank = boxes[:, 3] if scores is None else np.asarray(scores, dtype=np.float64).reshape(-1)
    if len(rank) != len(boxes):
        raise ValueError(f"{len(boxes)} boxes but {len(rank)} scores")
    # best first; among equal scores the earlier box (lexsort's last key is the primary one)
    order = np.lexsort((np.arange(len(boxes)), -rank))
    areas = box_area(boxes)
    keep: list[int] = []
    while len(order):
        best, rest = order[0], order[1:]
        keep.append(int(best))
        if overlap == "area":
            ratio = intersection(boxes[best], boxes[rest]) / areas[rest]
        else:
            ratio = iou(boxes[best], boxes[rest])
        order = rest[ratio <= overlap_threshold]
    return np.asarray(keep, dtype=np.int64)


__all__ = ["BOOK_OVERLAP", "box_area", "intersection", "iou", "non_maxima_suppression"]
