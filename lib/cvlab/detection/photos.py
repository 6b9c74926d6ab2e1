"""Photographs to run on: scikit-image's sample photos by name, or files."""

from __future__ import annotations

from pathlib import Path

import numpy as np

SKIMAGE_PHOTOS = ("chelsea", "coffee", "astronaut", "rocket")


def load_photo(name: str | Path, root: str | Path | None = None) -> np.ndarray:
    """uint8 (H, W, 3): a file (relative paths also tried against `root`, e.g. the project), or
    the name of a scikit-image photograph (`skimage.data.<name>()`)."""
    candidates = [Path(name)]
    if root is not None and not Path(name).is_absolute():
        candidates.append(Path(root) / name)
    for path in candidates:
        if path.is_file():
            from cvlab.data.images import read_image

            return read_image(path)
    import skimage.data

    loader = getattr(skimage.data, str(name), None) if str(name).isidentifier() else None
    if loader is None:
        raise FileNotFoundError(
            f"{name!r} is neither a file nor a scikit-image photograph (e.g. {SKIMAGE_PHOTOS})"
        )
    image = np.asarray(loader())
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=-1)
    return image[..., :3].astype(np.uint8)


__all__ = ["SKIMAGE_PHOTOS", "load_photo"]
