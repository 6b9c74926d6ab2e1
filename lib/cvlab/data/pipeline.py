"""The input pipeline from arrays or an HDF5 file: shuffle, preprocess, crop, augment, batch
and prefetch in parallel with training, on every Keras backend. It replaces the book's
hand-written Python generator (HDF5DatasetGenerator), which leaves the model waiting on one
Python thread.

Under TensorFlow it is a tf.data graph (the fastest there). Under JAX and PyTorch, where
TensorFlow need not be installed, it is a `keras.utils.PyDataset` (`BatchSource`): NumPy reads,
crops and resizes each batch in worker threads (NumPy's matrix products release the GIL), the
augmentation layers then run on the backend's device, and Keras's own enqueuer keeps
`max_queue_size` batches ready. Both give the same evaluation batches (within
`cvlab.image_prep.RESIZE_ATOL` where they resize, else exactly); `loader=` picks one by name.
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import numpy as np

from cvlab.data.augment import AugmentationConfig, build_augmentation
from cvlab.data.hdf5 import HDF5DatasetReader
from cvlab.image_prep import CHANNELS, load_means, resize_array, resize_tensor

Loader = Literal["auto", "tf.data", "pydataset"]
LOADERS = ("auto", "tf.data", "pydataset")

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
    loader: Loader = "auto",
    workers: int | None = None,
):
    """(images, labels) batches for `model.fit` / `evaluate`: a `tf.data.Dataset` under the
    TensorFlow backend, a `keras.utils.PyDataset` under JAX and PyTorch (`loader="auto"`);
    `loader="tf.data"` or `"pydataset"` asks for one (tf.data needs TensorFlow installed).

    `source` is an image array (N, H, W, C) with `labels`, or an HDF5 file written by
    `cvlab.data.build_hdf5` (labels inside). In this order: crop to `crop` (a random patch per
    image when `training`, the centre otherwise), resize the whole image to `resize` (`cvlab.image_prep`'s
    policy: bilinear, antialiased; the book's SimplePreprocessor, e.g. 256 -> 227 for evaluation
    without crops), augment (only when `training`, on the images' own value range), subtract
    the RGB `means` (a dict or the `_mean.json` path, on the images' scale), multiply by
    `rescale` (default: uint8 images without means are divided by 255),
    one-hot labels if `num_classes`. Training pipelines shuffle; evaluation keeps the order.
    `seed` fixes the shuffle order and the crops; augmentation draws differ between runs.
    The PyDataset shuffles the whole set each epoch (in-memory sources; streamed HDF5 files:
    blocks in random order, rows shuffled within each), reads batches in `workers` threads
    (default: up to 4) and crops with NumPy's generator; Keras's `fit(shuffle=True)` may
    reorder its batches besides.
    """
    if loader not in LOADERS:
        raise ValueError(f"loader={loader!r}: one of {', '.join(LOADERS)}")
    path: Path | None = None
    if isinstance(source, str | Path):
        path = Path(source)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such HDF5 file; build it with `cvlab data build`")
        data, label_data, n, shape, dtype = _read_hdf5(path, data_key)
    else:
        data = np.asarray(source)
        if labels is None or len(labels) != len(data):
            raise ValueError("array sources need `labels` of the same length as the images")
        label_data = np.asarray(labels, dtype=np.int64)
        n, shape, dtype = len(data), data.shape[1:], data.dtype

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
        mean_vector = values[: shape[-1]]  # grey images: one channel's mean
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

    if loader == "auto":
        loader = "tf.data" if _backend() == "tensorflow" else "pydataset"
    if loader == "pydataset":
        if getattr(augmentation, "built", True) is False:  # built here, not by racing threads
            out_hw = resize_hw or crop_hw or tuple(shape[:2])
            augmentation.build((None, *out_hw, shape[-1]))
        plan = _BatchPlan(
            images=data, labels=label_data, path=path, n=n, shape=tuple(shape),
            batch_size=int(batch_size), training=training, crop_hw=crop_hw,
            resize_hw=resize_hw, augmentation=augmentation, mean_vector=mean_vector,
            to_unit=to_unit, rescale=rescale, num_classes=num_classes, seed=seed,
            repeat=repeat,
        )  # fmt: skip
        default_workers = min(4, os.cpu_count() or 1)
        return batch_source_class()(plan, workers=default_workers if workers is None else workers)

    try:
        import tensorflow as tf  # lazy: tensorflow
    except ImportError as exc:
        raise ImportError(
            f"make_pipeline(loader={loader!r}) needs TensorFlow, which is not installed; "
            "use loader='pydataset' (the default under the JAX and PyTorch backends)"
        ) from exc

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
    if mean_vector is not None:
        mean_vector = tf.constant(mean_vector)
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


# -- the PyDataset path (any backend; the only one under JAX and PyTorch) ---------------------


def _backend() -> str:
    import keras  # lazy: keras

    return keras.config.backend()


def _crop_or_pad(x: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """The centre window of a batch, zero-padded where the images are smaller: the offsets of
    `tf.image.resize_with_crop_or_pad` (rounded down)."""
    for axis, target in ((1, hw[0]), (2, hw[1])):
        size = x.shape[axis]
        if size > target:
            start = (size - target) // 2
            x = np.take(x, np.arange(start, start + target), axis=axis)
        elif size < target:
            before = (target - size) // 2
            pad = [(0, 0)] * x.ndim
            pad[axis] = (before, target - size - before)
            x = np.pad(x, pad)
    return x


@dataclass
class _BatchPlan:
    """What every batch of a PyDataset pipeline is made of; `batch(index, epoch)` is a pure
    function of its arguments (seeded), so worker threads may build batches in any order."""

    images: np.ndarray | None  # None: streamed from `path` in blocks
    labels: Any  # the labels array, or the HDF5 data set's key when streamed
    path: Path | None
    n: int
    shape: tuple[int, ...]
    batch_size: int
    training: bool
    crop_hw: tuple[int, int] | None
    resize_hw: tuple[int, int] | None
    augmentation: Callable | None
    mean_vector: np.ndarray | None
    to_unit: bool
    rescale: float | None
    num_classes: int | None
    seed: int | None
    repeat: bool
    entropy: int = field(default_factory=lambda: np.random.SeedSequence().entropy)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _file: Any = field(default=None, repr=False)
    _orders: dict = field(default_factory=dict, repr=False)

    def __post_init__(self):
        if self.seed is not None:
            self.entropy = int(self.seed)

    @property
    def num_batches(self) -> int | None:
        return None if self.repeat else math.ceil(self.n / self.batch_size)

    def order(self, epoch: int) -> np.ndarray:
        """The row order of one pass: as stored when evaluating; shuffled when training (a
        permutation of all rows, or of BLOCK_ROWS blocks with their rows shuffled inside)."""
        with self._lock:
            if epoch not in self._orders:
                if len(self._orders) > 2:
                    self._orders.pop(min(self._orders))
                self._orders[epoch] = self._make_order(epoch)
            return self._orders[epoch]

    def _make_order(self, epoch: int) -> np.ndarray:
        if not self.training:
            return np.arange(self.n)
        rng = np.random.default_rng([self.entropy, epoch])
        if self.images is not None:
            return rng.permutation(self.n)
        starts = rng.permutation(np.arange(0, self.n, BLOCK_ROWS))
        return np.concatenate(
            [start + rng.permutation(min(BLOCK_ROWS, self.n - start)) for start in starts]
        )

    def rows(self, index: int, epoch: int) -> np.ndarray:
        """The rows of batch `index`: of pass `epoch`, or of the endless stream if `repeat`."""
        if not self.repeat:
            return self.order(epoch)[index * self.batch_size : (index + 1) * self.batch_size]
        positions = np.arange(index * self.batch_size, (index + 1) * self.batch_size)
        passes, within = np.divmod(positions, self.n)
        return np.concatenate([self.order(int(p))[within[passes == p]] for p in np.unique(passes)])

    def read(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self.images is not None:
            return self.images[rows], self.labels[rows]
        import h5py  # lazy: h5py

        ascending = np.argsort(rows, kind="stable")
        sorted_rows = rows[ascending]
        unique, inverse = np.unique(sorted_rows, return_inverse=True)
        with self._lock:  # h5py serialises reads anyway; one open file per pipeline
            if self._file is None:
                self._file = h5py.File(self.path, "r")
            images = self._file[self.labels][unique][inverse]
            labels = np.asarray(self._file["labels"][unique], np.int64)[inverse]
        back = np.empty_like(ascending)
        back[ascending] = np.arange(len(rows))
        return images[back], labels[back]

    def batch(self, index: int, epoch: int = 0) -> tuple[Any, np.ndarray]:
        rows = self.rows(index, epoch)
        if not len(rows):
            raise IndexError(f"batch {index}: past the end ({self.num_batches} batches)")
        x, y = self.read(rows)
        if self.crop_hw and self.training:  # a random patch per image, seeded per batch
            h, w = self.crop_hw
            rng = np.random.default_rng([self.entropy, epoch, index, 1])
            tops = rng.integers(0, x.shape[1] - h + 1, len(x))
            lefts = rng.integers(0, x.shape[2] - w + 1, len(x))
            x = np.stack(
                [img[t : t + h, s : s + w] for img, t, s in zip(x, tops, lefts, strict=True)]
            )
        x = x.astype(np.float32)
        if self.crop_hw and not self.training:
            x = _crop_or_pad(x, self.crop_hw)
        if self.resize_hw:
            x = resize_array(x, self.resize_hw)
        if self.augmentation is not None:  # Keras layers, on the backend's device
            import keras  # lazy: keras

            ops = keras.ops
            x = self.augmentation(ops.convert_to_tensor(x), training=True)
            if self.mean_vector is not None:
                x = ops.subtract(x, self.mean_vector)
            scale = 1.0 / 255.0 if self.to_unit else self.rescale
            if scale is not None:
                x = ops.multiply(x, np.float32(scale))
        else:
            if self.mean_vector is not None:
                x = x - self.mean_vector
            if self.to_unit:
                x = x / np.float32(255.0)
            elif self.rescale is not None:
                x = x * np.float32(self.rescale)
        if self.num_classes:
            y = np.eye(self.num_classes, dtype=np.float32)[y]
        return x, y


@lru_cache(maxsize=1)
def batch_source_class():
    """`BatchSource`, the PyDataset of `make_pipeline` (defined on first use: Keras is heavy)."""
    import keras  # lazy: keras

    class BatchSource(keras.utils.PyDataset):
        """Batches of a `_BatchPlan` for `fit` / `evaluate` / `predict`, read in `workers`
        threads (threads, not processes: the augmentation layers run on the device)."""

        def __init__(self, plan: _BatchPlan, workers: int = 1, max_queue_size: int = 10):
            super().__init__(workers=workers, use_multiprocessing=False,
                             max_queue_size=max_queue_size)  # fmt: skip
            self.plan, self.epoch = plan, 0

        def __len__(self) -> int:  # PyDataset's num_batches reads it
            count = self.plan.num_batches
            if count is None:
                raise TypeError("a repeating pipeline has no length")
            return count

        @property
        def num_batches(self) -> int | None:
            return self.plan.num_batches

        def __getitem__(self, index: int):
            return self.plan.batch(int(index), self.epoch)

        def on_epoch_end(self) -> None:
            self.epoch += 1

        def map(self, function: Callable[[Any], Any]):
            """The same batches with `function` applied to the images (tf.data's `map`)."""
            return MappedSource(self, function)

    class MappedSource(keras.utils.PyDataset):
        """A `BatchSource` whose images go through `function` (e.g. a backbone's input map)."""

        def __init__(self, source, function):
            super().__init__(workers=source.workers, use_multiprocessing=False,
                             max_queue_size=source.max_queue_size)  # fmt: skip
            self.source, self.function = source, function

        def __len__(self) -> int:
            return len(self.source)

        @property
        def num_batches(self) -> int | None:
            return self.source.num_batches

        def __getitem__(self, index: int):
            x, y = self.source[index]
            return self.function(x), y

        def on_epoch_end(self) -> None:
            self.source.on_epoch_end()

    return BatchSource


def map_images(pipeline: Any, function: Callable[[Any], Any]) -> Any:
    """`pipeline` (tf.data or a `make_pipeline` PyDataset) with `function` applied to its
    images, in parallel in either case."""
    if hasattr(pipeline, "element_spec"):  # tf.data
        import tensorflow as tf  # lazy: tensorflow

        return pipeline.map(lambda x, y: (function(x), y), num_parallel_calls=tf.data.AUTOTUNE)
    return pipeline.map(function)
