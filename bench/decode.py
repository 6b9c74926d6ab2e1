"""What the one image-preparation path costs when a data set of files is decoded: images per
second two ways, side by side in one run, on the same real JPEG files.

A. `cvlab.data.images.read_image` (decode + `cvlab.image_prep.resize`: TensorFlow's antialiased
   bilinear, the policy every path shares, so prediction sees the pixels training saw);
B. the Pillow-only path the loaders had before (decode, `Image.resize(BILINEAR)`), which gave
   other pixels than the tf.data pipeline and `cvlab predict`.

No target: it says what consistency costs (the ratio A / B), so a loader that decodes tens of
thousands of files can be judged. The files are Flowers-17 from the data cache when imported
(`make import-shared`), else scikit-image's photographs written as JPEGs.

    python bench/decode.py [--images 300] [--size 64]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from cvlab.data.cache import data_root
from cvlab.data.images import read_image


def files(count: int, folder: Path) -> list[Path]:
    """`count` JPEG paths: Flowers-17 from the cache, else photographs written into `folder`."""
    cached = sorted((data_root() / "flowers17").rglob("*.jpg"))
    if len(cached) >= count:
        return cached[:count]
    from skimage import data as photos  # lazy: skimage

    images = [photos.astronaut(), photos.chelsea(), photos.coffee(), photos.rocket()]
    paths = []
    for i in range(count):
        path = folder / f"photo_{i}.jpg"
        Image.fromarray(images[i % len(images)]).save(path, quality=90)
        paths.append(path)
    return paths


def pillow_only(path: Path, size: int) -> np.ndarray:
    with Image.open(path) as img:
        img = ImageOps.exif_transpose(img).convert("RGB")
        return np.asarray(img.resize((size, size), Image.Resampling.BILINEAR))


def rate(read, paths: list[Path], size: int) -> float:
    read(paths[0], size)  # warm up (TensorFlow's first call builds its kernels)
    start = time.perf_counter()
    for path in paths:
        read(path, size)
    return len(paths) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=300)
    parser.add_argument("--size", type=int, default=64)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        paths = files(args.images, Path(tmp))
        shared = rate(lambda p, s: read_image(p, s), paths, args.size)
        pillow = rate(pillow_only, paths, args.size)
    print(f"{len(paths)} JPEGs to {args.size}x{args.size} (from {paths[0].parent})")
    print(f"A. cvlab.image_prep path  {shared:8.1f} images/s")
    print(f"B. Pillow only (before)   {pillow:8.1f} images/s")
    print(f"A / B = {shared / pillow:.2f}")


if __name__ == "__main__":
    main()
