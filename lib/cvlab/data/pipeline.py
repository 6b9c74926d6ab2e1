"""A tf.data input pipeline from arrays or an HDF5 file: shuffle, preprocess, crop, augment,
batch and prefetch in parallel with training. It replaces the book's hand-written Python
generator (HDF5DatasetGenerator), which leaves the model waiting on one Python thread."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from cvlab.data.augment import AugmentationConfig, build_augmentation
from cvlab.data.hdf5 import HDF5DatasetReader
from cvlab.image_prep import CHANNELS, load_means, resize_tensor

# HDF5 files up to this size are read into memory once (one sequential read); larger ones are
# streamed in contiguous blocks.
IN_MEMORY_LIMIT_BYTES = 4 * 1024**3
BLOCK_ROWS = 2048


def _read_hdf5(path: Path, data_key: str | None) -> tuple[Any, Any, int, tuple[int, ...], np.dtype]:
    """The whole file's rows when they fit in memory, else (None, key, ...) to stream blocks."""

    with HDF5DatasetReader(path, data_key=data_key) as reader:  # refuses unfinished builds
        data = reader.data
        n, shape, dtype, key = data.shape[0], tuple(data.shape[1:]), data.dtype, data.name
        if data.size * data.dtype.itemsize <= IN_MEMORY_LIMIT_BYTES:
            return data[:], np.asarray(reader.labels), n, shape, dtype
    return None, key, n, shape, dtype


def _hdf5_blocks(path: Path, key: str, n: int, shuffle: bool, seed: int | None):
    """Yield (images, labels) blocks of contiguous rows, in random block order when shuffling."""
    import h5py

    def generate():
        rng = np.random.default_rng(seed)
        starts = np.arange(0, n, BLOCK_ROWS)
        if shuffle:
            rng.shuffle(starts)
        with h5py.File(path, "r") as f:
            for start in starts:
                yield f[key][start : start + BLOCK_ROWS], f["labels"][start : start + BLOCK_ROWS]

    return generate


def make_pipeline(
    source: np.ndarray | str | Path,
    labels: np.ndarray | None = None,
    *,
    batch_size: int = 32,
    training: bool = False,
    augment: AugmentationConfig | dict | Any | None = None,
    means: dict[str, float] | str | Path | None = None,
    rescale: float | None = None,
    crop: int | tuple[int, int] | None = None,
    resize: int | tuple[int, int] | None = None,
    num_classes: int | None = None,
    shuffle_buffer: int = 10_000,
    seed: int | None = None,
    repeat: bool = False,
    data_key: str | None = None,
):
    """A `tf.data.Dataset` of (images, labels) batches for `model.fit` / `evaluate`.

    `source` is an image array (N, H, W, C) with `labels`, or an HDF5 file written by
    `cvlab.data.build_hdf5` (labels inside). In this order: crop to `crop` (a random patch per
    image when `training`, the centre otherwise), resize the whole image to `resize` (`cvlab.image_prep`'s
    policy: bilinear, antialiased; the book's SimplePreprocessor, e.g. 256 -> 227 for evaluation
    without crops), augment (only when `training`, on the images' own value range), subtract
    the RGB `means` (a dict or the `_mean.json` path, on the images' scale), multiply by
    `rescale` (default: uint8 images without means are divided by 255),
    one-hot labels if `num_classes`. Training pipelines shuffle; evaluation keeps the order.
    `seed` fixes the shuffle order and the crops; augmentation draws differ between runs.
    """
    import tensorflow as tf

    if isinstance(source, str | Path):
        path = Path(source)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such HDF5 file; build it with `cvlab data build`")
        data, label_data, n, shape, dtype = _read_hdf5(path, data_key)
        if data is not None:
            ds = tf.data.Dataset.from_tensor_slices((data, label_data))
        else:  # too large for memory: contiguous blocks, then a shuffle buffer across them
            spec = (
                tf.TensorSpec((None, *shape), tf.as_dtype(dtype)),
                tf.TensorSpec((None,), tf.int64),
            )
            ds = tf.data.Dataset.from_generator(
                _hdf5_blocks(path, label_data, n, training, seed), output_signature=spec
            ).unbatch()
    else:
        images = np.asarray(source)
        if labels is None or len(labels) != len(images):
            raise ValueError("array sources need `labels` of the same length as the images")
        n, shape, dtype = len(images), images.shape[1:], images.dtype
        ds = tf.data.Dataset.from_tensor_slices((images, np.asarray(labels, dtype=np.int64)))

    if isinstance(means, str | Path):
        means = load_means(means)
    integer_pixels = np.issubdtype(np.dtype(dtype), np.integer)
    mean_vector = None
    if means:
        values = np.array([means[c] for c in CHANNELS], np.float32)
        # Means and images must be on one scale: 0–255 means (the builder's) with float images
        # in [0, 1] would shift every pixel by ~-120 without a word.
        if integer_pixels != bool(values.max() > 1.5):
            raise ValueError(
                f"means {means} are on the {'0–255' if values.max() > 1.5 else '0–1'} scale but the "
                f"images are {np.dtype(dtype)}; use means computed on the same images "
                "(`compute_rgb_means` on them, or the `_mean.json` written with the HDF5 file)"
            )
        mean_vector = tf.constant(values[: shape[-1]])  # grey images: one channel's mean
    # uint8 without means goes to [0, 1] by `cvlab.image_prep`'s one rule (divide by 255 in
    # float32), so the batches equal the arrays `cvlab.runs.load` prepares from the same pixels.
    to_unit = rescale is None and integer_pixels and means is None
    crop_hw = (crop, crop) if isinstance(crop, int) else crop
    resize_hw = (resize, resize) if isinstance(resize, int) else resize
    augmentation = None
    if training and augment is not None:
        value_range = (0.0, 255.0) if integer_pixels else (0.0, 1.0)
        augmentation = (
            augment
            if callable(augment)
            else build_augmentation(augment, seed=seed, value_range=value_range)
        )

    if training:
        ds = ds.shuffle(max(1, min(shuffle_buffer, n)), seed=seed, reshuffle_each_iteration=True)
    if repeat:
        ds = ds.repeat()
    if crop_hw and training:
        # A random patch per image, before batching (each image its own offset), drawn with
        # stateless ops from a seeded stream so that `seed` makes the crops repeatable.
        channels = shape[-1]
        offsets = tf.data.Dataset.random(seed=seed).batch(2)
        ds = tf.data.Dataset.zip((ds, offsets)).map(
            lambda xy, s: (
                tf.image.stateless_random_crop(xy[0], (*crop_hw, channels), seed=s),
                xy[1],
            ),
            num_parallel_calls=tf.data.AUTOTUNE,
        )
    ds = ds.batch(batch_size, num_parallel_calls=tf.data.AUTOTUNE)

    def prepare(x, y):
        x = tf.cast(x, tf.float32)
        if crop_hw and not training:
            x = tf.image.resize_with_crop_or_pad(x, *crop_hw)  # the centre crop
        if resize_hw:  # cvlab.image_prep's resize policy, the same op as on arrays
            x = resize_tensor(x, resize_hw)
        if augmentation is not None:  # on the images' own value range, before centring
            x = augmentation(x, training=True)
        if mean_vector is not None:
            x = x - mean_vector
        if to_unit:
            x = x / 255.0
        elif rescale is not None:
            x = x * rescale
        if num_classes:
            y = tf.one_hot(y, num_classes)
        return x, y

    ds = ds.map(prepare, num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE)
