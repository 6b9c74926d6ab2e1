"""Super resolution with SRCNN (book ch. 17; Dong et al. 2015): a three-layer fully convolutional
network learns to turn a bicubic-enlarged image into a sharp one.

    hr = [photo, ...]                                        # uint8 (H, W, 3) photographs
    x, y = make_patches(hr, scale=2)                         # 33×33 blurred -> 21×21 sharp
    model = build_srcnn()
    history = train_srcnn(model, x, y, epochs=10)            # Keras fit on a tf.data pipeline
    sr = upscale(model, low_res_image, scale=2)              # whole image, fully convolutional
    evaluate(model, held_out, scale=2)                       # PSNR / SSIM: SRCNN vs bicubic

Training pairs are made as in the book (17.2.2): a photo is cropped to a multiple of `scale`,
shrunk by `scale` and enlarged back with bicubic interpolation (Pillow's, which
`scipy.misc.imresize` used: `cvlab.image_prep.resize(..., method="pil-bicubic")`); the network
sees a 33×33 patch of that blurred copy and must reproduce the central 21×21 of the original (its three unpadded convolutions, 9×9, 1×1 and 5×5, take 12 pixels off).
Pixels reach the network as 0-255 floats, as in the book (its HDF5 generator feeds raw pixels).
Measured here: on [0, 1] pixels the biases weigh as much as the signal and a short training stays
below bicubic for several times longer (1 dB under it after 700 steps of 16 patches, where 0-255
pixels pass it after about 1,100).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

import cvlab.data
from cvlab.data.images import read_image
from cvlab.image_prep import as_rgb_uint8
from cvlab.image_prep import resize as prep_resize

# The book's configuration (ch. 17.2.1, sr_config.py) and architecture (17.2.3).
BOOK_SCALE = 2
BOOK_INPUT_DIM = 33
BOOK_LABEL_SIZE = 21
BOOK_STRIDE = 14
BOOK_BATCH_SIZE = 128
BOOK_EPOCHS = 10
BOOK_LEARNING_RATE = 1e-3  # Adam(lr=0.001, decay=0.001 / NUM_EPOCHS) (17.2.4)
BOOK_FILTERS = (64, 32)
BOOK_KERNELS = (9, 1, 5)


def shave(kernels: Sequence[int] = BOOK_KERNELS) -> int:
    """Pixels each unpadded convolution stack takes off one side: (9-1 + 1-1 + 5-1) / 2 = 6."""
    return sum(k - 1 for k in kernels) // 2


# ---------------------------------------------------------------------------------- data


def crop_to_scale(image: np.ndarray, scale: int) -> np.ndarray:
    """Crop the bottom and right so both sides are multiples of `scale` (17.2.2, lines 31-34)."""
    h, w = image.shape[:2]
    return image[: h - h % int(scale), : w - w % int(scale)]


def _rgb(image: np.ndarray) -> np.ndarray:
    """The chapter's images: uint8 RGB (floats are taken on 0-255, the scale PSNR is on)."""
    return as_rgb_uint8(image, scale="0-255")


def resize(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bicubic resize of a uint8 image to (height, width): `cvlab.image_prep.resize` with the
    book's degradation, Pillow's bicubic (what `scipy.misc.imresize` called)."""
    return prep_resize(_rgb(image), size, method="pil-bicubic")


def downscale(image: np.ndarray, scale: int) -> np.ndarray:
    """The low-resolution version: `scale` times smaller (bicubic; Pillow antialiases)."""
    image = crop_to_scale(_rgb(image), scale)
    h, w = image.shape[:2]
    return resize(image, (h // int(scale), w // int(scale)))


def bicubic_upscale(low: np.ndarray, scale: int) -> np.ndarray:
    """The baseline: the low-resolution image enlarged `scale` times by bicubic interpolation."""
    h, w = low.shape[:2]
    return resize(low, (h * int(scale), w * int(scale)))


def degrade(image: np.ndarray, scale: int) -> np.ndarray:
    """Shrink by `scale` then enlarge back (bicubic): the blurred input the network learns from,
    the same size as `crop_to_scale(image, scale)`."""
    return bicubic_upscale(downscale(image, scale), scale)


def make_patches(
    images: Iterable[np.ndarray],
    scale: int = BOOK_SCALE,
    input_dim: int = BOOK_INPUT_DIM,
    label_size: int = BOOK_LABEL_SIZE,
    stride: int = BOOK_STRIDE,
    *,
    max_patches: int | None = None,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """The book's training set (17.2.2): from each high-resolution photo, every `input_dim`
    square of its degraded copy, `stride` apart, paired with the central `label_size` square of
    the original. uint8 arrays (N, input_dim, input_dim, 3) and (N, label_size, label_size, 3).
    `max_patches` keeps a random subset (seeded) for short runs."""
    pad = (input_dim - label_size) // 2
    inputs, targets = [], []
    for image in images:
        hr = crop_to_scale(_rgb(image), scale)
        lr = degrade(hr, scale)
        h, w = hr.shape[:2]
        ys = np.arange(0, h - input_dim + 1, stride)
        xs = np.arange(0, w - input_dim + 1, stride)
        if len(xs) == 0 or len(ys) == 0:
            continue
        lr_windows = np.lib.stride_tricks.sliding_window_view(lr, (input_dim, input_dim), (0, 1))
        hr_windows = np.lib.stride_tricks.sliding_window_view(
            hr[pad : h - pad, pad : w - pad], (label_size, label_size), (0, 1)
        )
        # sliding_window_view puts the window axes last: (y, x, C, dim, dim) -> (N, dim, dim, C)
        inputs.append(lr_windows[ys][:, xs].reshape(-1, 3, input_dim, input_dim))
        targets.append(hr_windows[ys][:, xs].reshape(-1, 3, label_size, label_size))
    if not inputs:
        raise ValueError(f"no image is at least {input_dim}×{input_dim} pixels")
    x = np.concatenate(inputs).transpose(0, 2, 3, 1)
    y = np.concatenate(targets).transpose(0, 2, 3, 1)
    if max_patches is not None and len(x) > max_patches:
        keep = np.sort(np.random.default_rng(seed).choice(len(x), int(max_patches), replace=False))
        x, y = x[keep], y[keep]
    return np.ascontiguousarray(x), np.ascontiguousarray(y)


# ---------------------------------------------------------------------------------- model


def build_srcnn(
    channels: int = 3,
    filters: Sequence[int] = BOOK_FILTERS,
    kernels: Sequence[int] = BOOK_KERNELS,
    input_size: int | None = None,
    name: str = "srcnn",
):
    """The book's SRCNN (17.2.3): CONV(64, 9×9) => RELU => CONV(32, 1×1) => RELU =>
    CONV(channels, 5×5) => RELU, he_normal, no zero-padding. `input_size=None` takes any size
    (it is fully convolutional): trained on 33×33 patches, it then runs on whole images."""
    import keras

    if len(filters) != len(kernels) - 1:
        raise ValueError(f"{len(kernels)} kernels need {len(kernels) - 1} filter counts")
    inputs = keras.Input((input_size, input_size, channels), name="blurred")
    x = inputs
    for i, (width, kernel) in enumerate(zip([*filters, channels], kernels, strict=True)):
        x = keras.layers.Conv2D(
            width, kernel, padding="valid", kernel_initializer="he_normal", name=f"conv{i + 1}"
        )(x)
        x = keras.layers.Activation("relu", name=f"relu{i + 1}")(x)
    return keras.Model(inputs, x, name=name)


def patch_dataset(x: np.ndarray, y: np.ndarray, batch_size: int, *, seed: int, shuffle=True):
    """A pipeline of (blurred, sharp) float32 batches of 0-255 pixels, reshuffled each epoch
    (the uint8 patches are cast batch by batch, so memory holds them as bytes): tf.data under
    TensorFlow, under JAX/PyTorch a keras.utils.PyDataset of the same batches."""
    import keras  # lazy: keras

    if keras.config.backend() != "tensorflow":
        return _patch_batches_class()(x, y, int(batch_size), seed=seed, shuffle=shuffle)
    import tensorflow as tf  # lazy: tensorflow

    ds = tf.data.Dataset.from_tensor_slices((x, y))
    if shuffle:
        ds = ds.shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(int(batch_size)).map(
        lambda a, b: (tf.cast(a, tf.float32), tf.cast(b, tf.float32)),
        num_parallel_calls=tf.data.AUTOTUNE,
    )
    return ds.prefetch(tf.data.AUTOTUNE)


def _patch_batches_class():
    """A PyDataset of (blurred, sharp) patch batches, shuffled per epoch with `seed` (Keras's
    own parallel loader where tf.data is not there; defined on use, Keras being heavy)."""
    import keras  # lazy: keras

    class PatchBatches(keras.utils.PyDataset):
        def __init__(self, x, y, batch_size, *, seed, shuffle):
            super().__init__(workers=1)
            self.x, self.y, self.batch_size = x, y, batch_size
            self.seed, self.shuffle, self.epoch = seed, shuffle, 0
            self.order = self._order()

        def _order(self):
            if not self.shuffle:
                return np.arange(len(self.x))
            return np.random.default_rng([self.seed, self.epoch]).permutation(len(self.x))

        def __len__(self):
            return -(-len(self.x) // self.batch_size)

        def __getitem__(self, index):
            rows = self.order[index * self.batch_size : (index + 1) * self.batch_size]
            return self.x[rows].astype(np.float32), self.y[rows].astype(np.float32)

        def on_epoch_end(self):
            self.epoch += 1
            self.order = self._order()

    return PatchBatches


@dataclass
class TrainResult:
    history: dict[str, list[float]]
    epochs: int
    steps_per_epoch: int
    seconds: float
    seconds_per_epoch: float
    seconds_per_step: float


def train_srcnn(
    model,
    x: np.ndarray,
    y: np.ndarray,
    *,
    epochs: int = BOOK_EPOCHS,
    batch_size: int = BOOK_BATCH_SIZE,
    learning_rate: float = BOOK_LEARNING_RATE,
    decay: float | None = None,
    seed: int = 0,
    run=None,
    verbose: int = 0,
) -> TrainResult:
    """Train with MSE and Adam as the book (17.2.4): `Adam(lr, decay=lr / epochs)`, Keras 2's
    per-step decay `lr / (1 + decay · step)`, written here as an InverseTimeDecay schedule.
    Keras compiles the training step (`model.fit`). With `run`, every epoch is logged (loss,
    learning rate, seconds) through the run's callback."""
    import keras

    decay = learning_rate / max(1, epochs) if decay is None else decay
    schedule = keras.optimizers.schedules.InverseTimeDecay(learning_rate, 1, decay)
    model.compile(optimizer=keras.optimizers.Adam(schedule), loss="mse")
    data = patch_dataset(x, y, batch_size, seed=seed)
    callbacks = [run.keras_callback()] if run is not None else []
    start = time.perf_counter()
    history = model.fit(data, epochs=epochs, callbacks=callbacks, verbose=verbose, shuffle=False)
    seconds = time.perf_counter() - start
    steps = int(np.ceil(len(x) / batch_size))
    done = len(history.history.get("loss", [])) or 1
    return TrainResult(
        history={k: [float(v) for v in vs] for k, vs in history.history.items()},
        epochs=done,
        steps_per_epoch=steps,
        seconds=seconds,
        seconds_per_epoch=seconds / done,
        seconds_per_step=seconds / (done * steps),
    )


# ---------------------------------------------------------------------------------- upscaling


def upscale(model, low: np.ndarray, scale: int = BOOK_SCALE, *, tile: int | None = 256):
    """SRCNN's enlargement of a low-resolution uint8 image: bicubic ×`scale`, then the network.

    The network is fully convolutional, so it runs on the whole enlarged image, or in `tile`×`tile`
    output blocks (each with the 6-pixel margin its convolutions need, so the result is the same)
    to bound memory. The border the unpadded convolutions would lose is filled by reflecting the
    input, so the output has the bicubic image's size. Returns uint8 (H·scale, W·scale, 3)."""
    blurred = bicubic_upscale(_rgb(low), scale)
    return enhance(model, blurred, tile=tile)


def enhance(model, blurred: np.ndarray, *, tile: int | None = 256) -> np.ndarray:
    """The network on an already-enlarged uint8 image (see `upscale`); same size out."""
    margin = (model.input_shape[1] is None) and _model_shave(model)
    if margin is False:
        raise ValueError("enhance needs a fully convolutional model: build_srcnn(input_size=None)")
    h, w = blurred.shape[:2]
    padded = np.pad(_rgb(blurred), ((margin, margin), (margin, margin), (0, 0)), "reflect")
    padded = padded.astype(np.float32)
    out = np.empty((h, w, blurred.shape[2] if blurred.ndim == 3 else 3), dtype=np.float32)
    step = max(h, w) if tile is None else int(tile)
    for y in range(0, h, step):
        for x in range(0, w, step):
            th, tw = min(step, h - y), min(step, w - x)
            block = padded[y : y + th + 2 * margin, x : x + tw + 2 * margin][None]
            out[y : y + th, x : x + tw] = np.asarray(model.predict_on_batch(block))[0]
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def _model_shave(model) -> int:
    kernels = [layer.kernel_size[0] for layer in model.layers if hasattr(layer, "kernel_size")]
    return shave(kernels)


# ---------------------------------------------------------------------------------- quality


def psnr(reference: np.ndarray, image: np.ndarray, border: int = 0) -> float:
    """Peak signal-to-noise ratio in dB of uint8 images (peak 255), `border` pixels left out."""
    from skimage.metrics import peak_signal_noise_ratio

    a, b = _inner(reference, border), _inner(image, border)
    return float(peak_signal_noise_ratio(a, b, data_range=255))


def ssim(reference: np.ndarray, image: np.ndarray, border: int = 0) -> float:
    """Structural similarity of uint8 RGB images (per channel, averaged), `border` left out."""
    from skimage.metrics import structural_similarity

    a, b = _inner(reference, border), _inner(image, border)
    return float(structural_similarity(a, b, channel_axis=-1, data_range=255))


def _inner(image: np.ndarray, border: int) -> np.ndarray:
    image = _rgb(image)
    return image[border : image.shape[0] - border, border : image.shape[1] - border]


@dataclass
class Comparison:
    """One held-out photo: the original, its bicubic and SRCNN enlargements, and their scores."""

    name: str
    original: np.ndarray
    low: np.ndarray
    bicubic: np.ndarray
    srcnn: np.ndarray
    psnr_bicubic: float
    psnr_srcnn: float
    ssim_bicubic: float
    ssim_srcnn: float
    seconds: float  # SRCNN's time to enlarge this image

    def row(self) -> dict[str, Any]:
        h, w = self.original.shape[:2]
        return {
            "image": self.name,
            "size": f"{w}×{h}",
            "PSNR bicubic": round(self.psnr_bicubic, 3),
            "PSNR SRCNN": round(self.psnr_srcnn, 3),
            "gain dB": round(self.psnr_srcnn - self.psnr_bicubic, 3),
            "SSIM bicubic": round(self.ssim_bicubic, 4),
            "SSIM SRCNN": round(self.ssim_srcnn, 4),
            "seconds": round(self.seconds, 3),
        }


def compare(
    model, image: np.ndarray, scale: int = BOOK_SCALE, *, name: str = "", border: int | None = None
) -> Comparison:
    """Shrink a held-out photo by `scale`, enlarge it back with bicubic and with SRCNN, and score
    both against the original. `border` (default: the network's 6-pixel shave) is left out of
    the scores for both, since SRCNN's border pixels come from a reflected margin."""
    original = crop_to_scale(_rgb(image), scale)
    low = downscale(original, scale)
    bicubic = bicubic_upscale(low, scale)
    start = time.perf_counter()
    sharp = enhance(model, bicubic)
    seconds = time.perf_counter() - start
    border = _model_shave(model) if border is None else int(border)
    return Comparison(
        name=name,
        original=original,
        low=low,
        bicubic=bicubic,
        srcnn=sharp,
        psnr_bicubic=psnr(original, bicubic, border),
        psnr_srcnn=psnr(original, sharp, border),
        ssim_bicubic=ssim(original, bicubic, border),
        ssim_srcnn=ssim(original, sharp, border),
        seconds=seconds,
    )


def evaluate(model, images: dict[str, np.ndarray], scale: int = BOOK_SCALE) -> list[Comparison]:
    """`compare` on each named held-out photo."""
    return [compare(model, image, scale, name=name) for name, image in images.items()]


def summary(comparisons: Sequence[Comparison]) -> dict[str, float]:
    """Mean PSNR and SSIM of bicubic and SRCNN over the held-out photos, and SRCNN's gains."""
    mean = {
        key: float(np.mean([getattr(c, key) for c in comparisons]))
        for key in ("psnr_bicubic", "psnr_srcnn", "ssim_bicubic", "ssim_srcnn")
    }
    mean["psnr_gain"] = mean["psnr_srcnn"] - mean["psnr_bicubic"]
    mean["ssim_gain"] = mean["ssim_srcnn"] - mean["ssim_bicubic"]
    return mean


def sharpest_crop(image: np.ndarray, size: int) -> tuple[int, int]:
    """(y, x) of the `size`×`size` crop with the most detail (largest gradient energy) on a
    coarse grid: where the difference between the methods shows."""
    grey = _rgb(image).astype(np.float64).mean(axis=-1)
    energy = np.abs(np.diff(grey, axis=0))[:, :-1] + np.abs(np.diff(grey, axis=1))[:-1]
    h, w = energy.shape
    size = min(size, h, w)
    best, where = -1.0, (0, 0)
    for y in range(0, h - size + 1, max(1, size // 4)):
        for x in range(0, w - size + 1, max(1, size // 4)):
            value = float(energy[y : y + size, x : x + size].sum())
            if value > best:
                best, where = value, (y, x)
    return where


def comparison_figure(comparison: Comparison, crop: int = 96, scale: int = BOOK_SCALE):
    """Side by side, the same crop of: the low-resolution input (enlarged by pixel repetition),
    bicubic, SRCNN and the original, with each one's PSNR / SSIM on the whole image."""
    from matplotlib.figure import Figure

    y, x = sharpest_crop(comparison.original, crop)
    c = comparison
    low_y, low_x, low_side = y // scale, x // scale, crop // scale
    low = c.low[low_y : low_y + low_side, low_x : low_x + low_side]
    low = np.repeat(np.repeat(low, scale, axis=0), scale, axis=1)
    panels = [
        (f"input, {c.low.shape[1]}×{c.low.shape[0]} (pixels repeated)", low),
        (f"bicubic ×{scale}\nPSNR {c.psnr_bicubic:.2f} dB, SSIM {c.ssim_bicubic:.3f}", c.bicubic),
        (f"SRCNN ×{scale}\nPSNR {c.psnr_srcnn:.2f} dB, SSIM {c.ssim_srcnn:.3f}", c.srcnn),
        (f"original, {c.original.shape[1]}×{c.original.shape[0]}", c.original),
    ]
    fig = Figure(figsize=(13, 3.9))
    for i, (title, image) in enumerate(panels):
        ax = fig.add_subplot(1, 4, i + 1)
        part = image if i == 0 else image[y : y + crop, x : x + crop]
        ax.imshow(part, interpolation="nearest")
        ax.set_title(title, fontsize=9)
        ax.set_axis_off()
    fig.suptitle(f"{c.name}: a {crop}×{crop} crop", fontsize=10)
    fig.tight_layout()
    return fig


__all__ = [
    "BOOK_BATCH_SIZE",
    "BOOK_EPOCHS",
    "BOOK_FILTERS",
    "BOOK_INPUT_DIM",
    "BOOK_KERNELS",
    "BOOK_LABEL_SIZE",
    "BOOK_LEARNING_RATE",
    "BOOK_SCALE",
    "BOOK_STRIDE",
    "Comparison",
    "TrainResult",
    "bicubic_upscale",
    "build_srcnn",
    "compare",
    "comparison_figure",
    "crop_to_scale",
    "degrade",
    "downscale",
    "enhance",
    "evaluate",
    "load_photos",
    "make_patches",
    "patch_dataset",
    "psnr",
    "sharpest_crop",
    "shave",
    "ssim",
    "summary",
    "train_srcnn",
    "upscale",
]


# ---------------------------------------------------------------------------------- photographs


def load_photos(
    dataset: str,
    *,
    train_images: int,
    test_images: int,
    train_photos: Sequence[str] = (),
    test_photos: Sequence[str] = (),
    seed: int = 0,
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Training and held-out photographs, uint8 at their own size, by name.

    `dataset="skimage"`: scikit-image's photographs named in `train_photos` / `test_photos`
    (no data cache needed). Otherwise a file-based data set of the cache (e.g. "flowers17"):
    `train_images` photos drawn (seeded) from its train split and `test_images` from its test
    split, so the held-out photos are never cut into training patches."""
    if dataset == "skimage":
        import skimage.data

        def photo(name: str) -> np.ndarray:
            return as_rgb_uint8(
                getattr(skimage.data, name)(), scale="0-1"
            )  # skimage: floats on [0, 1]

        train = {name: photo(name) for name in train_photos}
        test = {name: photo(name) for name in test_photos}
        if set(train) & set(test):
            raise ValueError(f"{sorted(set(train) & set(test))} both train and test photos")
        return train, test

    index = cvlab.data.index(dataset, seed=seed)
    rng = np.random.default_rng(seed)

    def draw(split: str, count: int) -> dict[str, np.ndarray]:
        paths = index.splits[split][0]
        chosen = rng.choice(len(paths), size=min(count, len(paths)), replace=False)
        return {paths[i].stem: read_image(paths[i]) for i in sorted(chosen)}

    return draw("train", train_images), draw("test", test_images)
