"""Sliding windows (book ch. 13.2.1): a fixed-size region stepped left to right, top to bottom."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

from cvlab.detection.pyramid import _pair


def window_positions(shape: Sequence[int], step: int, window: int | Sequence[int]) -> np.ndarray:
    """The (x, y) top-left corners of every window of `window` (width, height) that fits inside an
    image of `shape` (height, width, ...), `step` pixels apart; int (N, 2), row by row.

    Unlike the book's `range(0, H - ws, step)`, the last position that fits exactly is included
    (`range(0, H - ws + 1, step)`), so a pyramid layer exactly the window's size still gets one
    window. An image smaller than the window gets none.
    """
    if int(step) < 1:
        raise ValueError(f"step={step}: windows move at least one pixel")
    win_w, win_h = _pair(window, "window")
    height, width = int(shape[0]), int(shape[1])
    ys = np.arange(0, height - win_h + 1, int(step))
    xs = np.arange(0, width - win_w + 1, int(step))
    if len(xs) == 0 or len(ys) == 0:
        return np.zeros((0, 2), dtype=np.int64)
    grid_y, grid_x = np.meshgrid(ys, xs, indexing="ij")
    return np.stack([grid_x.ravel(), grid_y.ravel()], axis=1).astype(np.int64)


def sliding_window(
    image: np.ndarray, step: int, window: int | Sequence[int]
) -> Iterator[tuple[int, int, np.ndarray]]:
    """The book's `sliding_window`: yield `(x, y, roi)` for each window position (a view, not a
    copy), left to right then top to bottom."""
    win_w, win_h = _pair(window, "window")
    for x, y in window_positions(np.shape(image), step, (win_w, win_h)):
        yield int(x), int(y), image[y : y + win_h, x : x + win_w]


__all__ = ["sliding_window", "window_positions"]
