"""Image pyramids (book ch. 13.2.2): the image, then smaller and smaller copies of it, so that a
fixed-size sliding window meets large objects at a scale where they fit."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

from cvlab.image_prep import resize


def _pair(value: int | Sequence[int], name: str) -> tuple[int, int]:
    pair = (value, value) if isinstance(value, int | np.integer) else tuple(value)
    if len(pair) != 2 or not all(int(v) > 0 for v in pair):
        raise ValueError(f"{name}={value!r}: give a side in pixels or (width, height)")
    return int(pair[0]), int(pair[1])


def resize_width(image: np.ndarray, width: int) -> np.ndarray:
    """`image` resized to `width` pixels wide, the height following the aspect ratio as
    `imutils.resize(image, width=...)` computes it (`int(h * width / w)`); by
    `cvlab.image_prep`'s resize policy (bilinear, antialiased when shrinking)."""
    height, old_width = image.shape[:2]
    new_height = max(1, int(height * (width / float(old_width))))
    return resize(np.asarray(image, dtype=np.uint8), (new_height, int(width)))


def pyramid_shapes(
    shape: Sequence[int], scale: float = 1.5, min_size: int | Sequence[int] = 224
) -> list[tuple[int, int]]:
    """The (height, width) of every layer `image_pyramid` yields for an image of `shape`, without
    resizing anything: layer k+1 is `int(w_k / scale)` wide. The first layer is the image itself,
    even when it is smaller than `min_size` (as in the book)."""
    if scale <= 1.0:
        raise ValueError(f"scale={scale}: the pyramid needs a scale above 1 (the book uses 1.5)")
    min_w, min_h = _pair(min_size, "min_size")
    h, w = int(shape[0]), int(shape[1])
    shapes = [(h, w)]
    while True:
        new_w = int(w / scale)
        if new_w < 1:
            break
        h, w = max(1, int(h * (new_w / float(w)))), new_w
        if h < min_h or w < min_w:
            break
        shapes.append((h, w))
    return shapes


def image_pyramid(
    image: np.ndarray, scale: float = 1.5, min_size: int | Sequence[int] = 224
) -> Iterator[np.ndarray]:
    """The book's `image_pyramid`: yield `image`, then copies `scale` times narrower each (aspect
    kept), until one is smaller than `min_size` (width, height) in either side.

    Each layer is resized from the previous one, as in the book, so `pyramid_shapes` predicts
    the sizes exactly. `image` is uint8 (H, W, 3) or (H, W).
    """
    shapes = pyramid_shapes(np.shape(image), scale, min_size)
    yield image
    for _, width in shapes[1:]:
        image = resize_width(image, width)
        yield image


__all__ = ["image_pyramid", "pyramid_shapes", "resize_width"]
