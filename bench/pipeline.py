"""Does data ever limit training? Images per second three ways, side by side in one run:

A. the tf.data pipeline (`cvlab.data.make_pipeline`) reading an HDF5 file of 64×64 images, with
   mean subtraction and the book's augmentation (flip, rotation, shifts, shear, zoom), as the
   book feeds its ResNet on Tiny ImageNet;
B. a plain Python generator doing the same work image by image, as the book's
   HDF5DatasetGenerator with ImageDataGenerator does (one combined affine warp per image with
   scipy.ndimage, which is what ImageDataGenerator used);
C. the training step rate of the book's ResNet (Tiny ImageNet preset) on this machine;
D. the PyDataset path of the same pipeline (`make_pipeline(..., loader="pydataset")`, what JAX
   and PyTorch get: NumPy batches in worker threads, augmentation layers called on each batch),
   here under TensorFlow for a like-for-like ratio to A.

Targets: A ≥ 3 × B, and A ≥ 5 × C; D / A is reported (under TensorFlow tf.data stays the
default because it is faster). The images are real photographs (the `photo-crops` set cut
from scikit-image's pictures, 64 px); throughput does not depend on their content.

    make bench        # or: python bench/pipeline.py [--images 4000] [--batch-size 64]
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from pathlib import Path

import numpy as np
from scipy import ndimage

import cvlab.data
from cvlab.data.augment import AugmentationConfig
from cvlab.data.build import build_hdf5
from cvlab.data.hdf5 import HDF5DatasetReader
from cvlab.data.pipeline import make_pipeline
from cvlab.data.preprocess import load_means

SIZE = 64
AUGMENT = AugmentationConfig.book_default()


def affine_matrix(rng: np.random.Generator, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """One random affine (rotation, shear, zoom, shift) about the image centre, as
    ImageDataGenerator composes it, for scipy.ndimage.affine_transform."""
    theta = math.radians(rng.uniform(-AUGMENT.rotation, AUGMENT.rotation))
    shear = rng.uniform(-AUGMENT.shear, AUGMENT.shear)
    zx, zy = rng.uniform(1 - AUGMENT.zoom, 1 + AUGMENT.zoom, 2)
    tx = rng.uniform(-AUGMENT.height_shift, AUGMENT.height_shift) * h
    ty = rng.uniform(-AUGMENT.width_shift, AUGMENT.width_shift) * w
    rotation = np.array([[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]])
    shearing = np.array([[1, shear], [0, 1]])  # a shear factor, as cvlab's RandomAffine
    zooming = np.diag([zx, zy])
    matrix = rotation @ shearing @ zooming
    centre = np.array([h / 2 - 0.5, w / 2 - 0.5])
    offset = centre - matrix @ centre + np.array([tx, ty])
    return matrix, offset


def python_generator(path: Path, means: dict[str, float], batch_size: int, seed: int = 0):
    """The book's way: read a batch from HDF5, then preprocess and augment image by image."""
    rng = np.random.default_rng(seed)
    mean = np.array([means["R"], means["G"], means["B"]], np.float32)
    with HDF5DatasetReader(path) as reader:
        n = len(reader)
        for start in range(0, n, batch_size):
            images = reader.images[start : start + batch_size]
            labels = reader.labels[start : start + batch_size]
            out = np.empty((len(images), SIZE, SIZE, 3), np.float32)
            for i, image in enumerate(images):
                patch = image.astype(np.float32) - mean
                if rng.random() < 0.5:
                    patch = patch[:, ::-1]
                matrix, offset = affine_matrix(rng, SIZE, SIZE)
                for c in range(3):
                    out[i, ..., c] = ndimage.affine_transform(
                        patch[..., c], matrix, offset, order=1, mode="nearest"
                    )
            yield out, labels


def threaded(pydataset):
    """A PyDataset's batches as `fit` reads them: through Keras's adapter (its worker threads
    and queue), one pass."""
    from keras.src.trainers.data_adapters.py_dataset_adapter import PyDatasetAdapter

    adapter = PyDatasetAdapter(pydataset, shuffle=False)
    adapter.on_epoch_begin()
    try:
        yield from adapter.get_numpy_iterator()
    finally:
        adapter.on_epoch_end()


def rate(batches, warmup: int = 2) -> float:
    """Images per second over an iterable of (x, y) batches, after `warmup` batches."""
    count, start = 0, None
    for i, (x, _) in enumerate(batches):
        if i == warmup:
            start = time.perf_counter()
        elif i > warmup:
            count += len(x)
    return count / (time.perf_counter() - start)


def training_rate(batch_size: int, steps: int) -> float:
    import keras

    model = cvlab.models.build("resnet", preset="tiny-imagenet")
    model.compile(
        optimizer=keras.optimizers.SGD(0.01, momentum=0.9), loss="sparse_categorical_crossentropy"
    )
    x = np.random.default_rng(0).random((batch_size, SIZE, SIZE, 3), dtype=np.float32)
    y = np.random.default_rng(1).integers(0, 200, batch_size)
    model.train_on_batch(x, y)  # compile and warm up
    start = time.perf_counter()
    for _ in range(steps):
        model.train_on_batch(x, y)
    return steps * batch_size / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--images", type=int, default=4000, help="training images in the HDF5 file")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--train-steps", type=int, default=5)
    args = parser.parse_args()
    import cvlab.models  # noqa: F401

    with tempfile.TemporaryDirectory() as tmp:
        classes = 10
        crops = max(1, math.ceil(args.images / classes / 0.7))
        files = build_hdf5(
            "photo-crops", Path(tmp) / "photos.hdf5", size=SIZE, progress=False,
            crops_per_image=crops, val_fraction=0.1, test_fraction=0.2,
        )  # fmt: skip
        train, means = files["train"], load_means(files["mean"])
        with HDF5DatasetReader(train) as reader:
            n = len(reader)
        pipeline = make_pipeline(
            train, batch_size=args.batch_size, training=True, means=means,
            augment=AUGMENT, seed=0,
        )  # fmt: skip
        a = rate(pipeline)
        b = rate(python_generator(train, means, args.batch_size))
        pydataset = make_pipeline(
            train, batch_size=args.batch_size, training=True, means=means,
            augment=AUGMENT, seed=0, loader="pydataset",
        )  # fmt: skip
        d = rate(threaded(pydataset))
    c = training_rate(args.batch_size, args.train_steps)
    print(f"{n} training images of {SIZE}×{SIZE} from HDF5, batch {args.batch_size}")
    print(f"  A tf.data pipeline (augmented)      {a:10.0f} images/s")
    print(f"  B Python generator (same work)      {b:10.0f} images/s")
    print(f"  C ResNet (book, Tiny ImageNet) step {c:10.1f} images/s")
    print(f"  D PyDataset path (same work)        {d:10.0f} images/s")
    print(f"A / B = {a / b:.1f}× (target ≥ 3): {'PASS' if a >= 3 * b else 'FAIL'}")
    print(f"A / C = {a / c:.1f}× (target ≥ 5): {'PASS' if a >= 5 * c else 'FAIL'}")
    print(f"D / A = {d / a:.2f} (the PyDataset path against tf.data, both under TensorFlow)")


if __name__ == "__main__":
    main()
