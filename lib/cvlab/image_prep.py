"""Image preparation: the one path every image takes, from a file or an array to a model's input.

Decode, colour, resize, pixel scale, means and crops live here and nowhere else, so an HDF5
build, the tf.data pipeline, evaluation, 10-crop, `cvlab predict` and the chapters' images get
the same pixels from the same file. What a run records as its preprocessing is this module's
`Preprocessing`, and `prepare(inputs, config)` applies it: prediction matches training by
construction.

Conventions (one of each):

- **Size** is always (height, width); an int means a square.
- **Resize policy**: bilinear, antialiased (a downscale averages over each output pixel's
  footprint; an upscale is plain bilinear interpolation), computed by TensorFlow's
  `tf.image.resize(..., antialias=True)`, the op `keras.ops.image.resize(antialias=True)` calls
  under the TensorFlow backend. The array path (`resize`) and the tf.data graph
  (`resize_tensor`, used by `cvlab.data.pipeline`) run the same op on the same float32 input, so
  they give the same pixels. Under the JAX and PyTorch backends TensorFlow is never imported:
  the same antialiased kernels (TensorFlow's ScaleAndTranslate: triangle, Keys cubic a=-0.5,
  Lanczos) are applied as two weight matrices in NumPy (`resize_array`), which is also what the
  PyDataset pipeline runs on every backend. On a real photo (scikit-image's astronaut, float32
  0-255, to 227×227, 64×80, 600×700, 512×300) it stays within `RESIZE_ATOL` = 0.01 grey levels
  of `tf.image.resize` (float32 round-off, 0.005 at most measured, 1e-4 on average); rounded to
  uint8, a pixel differs by at most 1 (a few hundred of 360 000 at 600×700). "area" and
  "nearest" go to `keras.ops.image.resize` of the running backend. `method=` may name another kernel ("bicubic", where a chapter's
  method is bicubic); the antialiasing and the size order stay. uint8 in gives rounded,
  clipped uint8 out; anything else gives float32. One exception, named as such:
  `method="pil-bicubic"` is Pillow's bicubic on uint8 images, the `scipy.misc.imresize`
  degradation SRCNN's book results rest on (with TensorFlow's bicubic, 0.2 grey levels apart on
  average, the chapter's short training no longer beats bicubic on its held-out photo).
- **Aspect-aware** resizing (`aspect=True`, the book's AspectAwarePreprocessor) cuts the
  largest centred window of the target's aspect ratio, then resizes it: nothing is stretched.
- **Colour**: RGB to grey is ITU-R 601-2 luma (0.299 R + 0.587 G + 0.114 B, Pillow's
  `convert("L")` weights), rounded for uint8; grey to RGB repeats the channel; alpha is dropped.
- **Pixel scale** is explicit: "0-255" (uint8, or floats on 0-255) or "0-1" (floats, uint8
  divided by 255 in float32). Nothing guesses the scale from the largest value: a float image
  without a stated scale is an error (`PixelScaleError`).
- **Decoding** uses Pillow, EXIF orientation applied; a missing, corrupt or non-image file is an
  `UnreadableImageError` naming the file.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterable, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any, BinaryIO, Literal

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError
from pydantic import BaseModel, ConfigDict

from cvlab.atomic_io import write_json_atomic
from cvlab.errors import PixelScaleError, UnreadableImageError

__all__ = [
    "CHANNELS",
    "LUMA_WEIGHTS",
    "PixelScale",
    "Preprocessing",
    "as_rgb_uint8",
    "centre_crop",
    "compute_rgb_means",
    "decode",
    "load_means",
    "pair",
    "predict_ten_crop",
    "prepare",
    "random_patch",
    "RESIZE_ATOL",
    "resize",
    "resize_array",
    "resize_tensor",
    "save_means",
    "subtract_means",
    "ten_crop",
    "to_channels",
    "to_grey",
    "to_rgb",
    "to_scale",
    "to_uint8",
]

CHANNELS = ("R", "G", "B")
LUMA_WEIGHTS = (0.299, 0.587, 0.114)  # ITU-R 601-2, as Pillow's convert("L")
PixelScale = Literal["0-1", "0-255"]
ResizeMethod = Literal["bilinear", "bicubic", "nearest", "area", "lanczos3", "pil-bicubic"]
_DECODE_ERRORS = (OSError, UnidentifiedImageError, Image.DecompressionBombError, SyntaxError)
_CHUNK = 512  # images per resize call, so large batches need no huge float copy


def pair(size: int | Sequence[int], name: str = "size") -> tuple[int, int]:
    """(height, width) from a side or a pair; refuses anything else."""
    value = (size, size) if isinstance(size, int | np.integer) else tuple(size)
    if len(value) != 2 or not all(isinstance(v, int | np.integer) and v > 0 for v in value):
        raise ValueError(f"{name}={size!r}: give a side in pixels or (height, width)")
    return int(value[0]), int(value[1])


# -- decoding ------------------------------------------------------------------------------


def decode(source: str | Path | bytes | BinaryIO, *, channels: int = 3) -> np.ndarray:
    """An image file (a path, its bytes or an open binary file) as uint8 (H, W, channels):
    EXIF orientation applied, RGB (3) or grey by this module's luma rule (1)."""
    if channels not in (1, 3):
        raise ValueError(f"channels={channels!r}: 1 (grey) or 3 (RGB)")
    name = f"<{len(source)} bytes>" if isinstance(source, bytes) else str(source)
    opened = io.BytesIO(source) if isinstance(source, bytes) else source
    try:
        with Image.open(opened) as img:
            rgb = np.asarray(ImageOps.exif_transpose(img).convert("RGB"), dtype=np.uint8)
    except _DECODE_ERRORS as exc:
        raise UnreadableImageError(f"{name}: cannot read this image ({exc})") from exc
    return to_grey(rgb) if channels == 1 else rgb


# -- colour --------------------------------------------------------------------------------


def to_grey(images: np.ndarray) -> np.ndarray:
    """RGB (..., 3) to grey (..., 1) by ITU-R 601-2 luma; uint8 stays uint8 (rounded)."""
    x = np.asarray(images)
    grey = x[..., :3].astype(np.float64) @ np.array(LUMA_WEIGHTS)
    if x.dtype == np.uint8:
        return np.clip(np.rint(grey), 0, 255).astype(np.uint8)[..., None]
    return grey.astype(np.float32)[..., None]


def to_rgb(images: np.ndarray) -> np.ndarray:
    """Grey (..., 1) or (H, W) repeated on three channels; RGBA loses its alpha; RGB as is."""
    x = np.asarray(images)
    if x.ndim == 2:
        x = x[..., None]
    if x.shape[-1] == 1:
        return np.repeat(x, 3, axis=-1)
    if x.shape[-1] in (3, 4):
        return x[..., :3]
    raise ValueError(f"expected 1, 3 or 4 channels, got shape {x.shape}")


def to_channels(images: np.ndarray, channels: int) -> np.ndarray:
    """Images with `channels` (1 or 3) channels, converted by this module's rules."""
    x = np.asarray(images)
    if x.shape[-1] == channels:
        return x
    return to_grey(to_rgb(x)) if channels == 1 else to_rgb(x)


# -- pixel scale ---------------------------------------------------------------------------


def _check_scale(scale: Any, what: str) -> None:
    if scale not in ("0-1", "0-255"):
        raise PixelScaleError(
            f"{what}={scale!r}: say which scale the pixels are on, '0-1' (floats in [0, 1]) "
            "or '0-255' (uint8, or floats on 0-255); it is never guessed from the values"
        )


def to_scale(images: np.ndarray, scale: PixelScale, *, source: PixelScale) -> np.ndarray:
    """float32 images on `scale`, from pixels on `source` (uint8 is always 0-255). The one
    rule: 0-255 -> 0-1 divides by 255 in float32, 0-1 -> 0-255 multiplies by 255."""
    _check_scale(scale, "scale")
    _check_scale(source, "source")
    x = np.asarray(images)
    if x.dtype == np.uint8 and source != "0-255":
        raise PixelScaleError(f"uint8 pixels are on 0-255, not {source!r}")
    x = x.astype(np.float32, copy=False)
    if source == scale:
        return x
    return x / np.float32(255.0) if scale == "0-1" else x * np.float32(255.0)


def to_uint8(images: np.ndarray, *, scale: PixelScale | None = None) -> np.ndarray:
    """uint8 0-255 pixels (rounded, clipped; NaN to 0). uint8 input passes through; any other
    input needs its `scale` ("0-1" or "0-255"): floats in [0, 1] and 0-255 look alike."""
    x = np.asarray(images)
    if x.dtype == np.uint8:
        return x
    if scale is None:
        raise PixelScaleError(
            f"{x.dtype} pixels: say which scale they are on, scale='0-1' (floats in [0, 1]) "
            "or scale='0-255'; it is never guessed from the values"
        )
    _check_scale(scale, "scale")
    values = np.nan_to_num(x.astype(np.float64))
    if scale == "0-1":
        values = values * 255.0
    return np.clip(np.rint(values), 0, 255).astype(np.uint8)


def as_rgb_uint8(image: np.ndarray, *, scale: PixelScale | None = None) -> np.ndarray:
    """An in-memory image as uint8 (H, W, 3) RGB: grey repeated, alpha dropped; non-uint8
    pixels need their `scale` (see `to_uint8`)."""
    array = np.asarray(image)
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[-1] not in (1, 3, 4)):
        raise ValueError(f"expected an HxW or HxWx1/3/4 image, got shape {array.shape}")
    return to_uint8(to_rgb(array), scale=scale)


# -- resizing ------------------------------------------------------------------------------


def _aspect_box(height: int, width: int, size: tuple[int, int]) -> tuple[int, int, int, int]:
    """(top, left, crop height, crop width): the largest centred window of `size`'s aspect
    ratio (the arithmetic of Keras's `crop_to_aspect_ratio`)."""
    th, tw = size
    crop_h = max(min(height, int(float(width * th) / tw)), 1)
    crop_w = max(min(width, int(float(height * tw) / th)), 1)
    return int(float(height - crop_h) / 2), int(float(width - crop_w) / 2), crop_h, crop_w


# Largest difference (grey levels on 0-255) between `resize_array` and tf.image.resize measured
# on a real photo; see the module docstring.
RESIZE_ATOL = 0.01


def _triangle(x: np.ndarray) -> np.ndarray:
    return np.maximum(0.0, 1.0 - x)


def _keys_cubic(x: np.ndarray) -> np.ndarray:  # a = -0.5, TensorFlow's "keyscubic"
    outer = np.where(x >= 2.0, 0.0, ((-0.5 * x + 2.5) * x - 4.0) * x + 2.0)
    return np.where(x < 1.0, ((1.5 * x - 2.5) * x) * x + 1.0, outer)


def _lanczos(radius: float):
    def kernel(x: np.ndarray) -> np.ndarray:
        px = np.pi * x
        with np.errstate(divide="ignore", invalid="ignore"):
            value = radius * np.sin(px) * np.sin(px / radius) / (px * px)
        return np.where(x > radius, 0.0, np.where(x < 1e-6, 1.0, value))

    return kernel


_KERNELS = {
    "bilinear": (_triangle, 1.0),
    "bicubic": (_keys_cubic, 2.0),
    "lanczos3": (_lanczos(3.0), 3.0),
    "lanczos5": (_lanczos(5.0), 5.0),
}


@lru_cache(maxsize=256)
def _resize_weights(in_size: int, out_size: int, method: str) -> np.ndarray:
    """(out, in) float32 weights of one axis: TensorFlow's ScaleAndTranslate spans (its
    ComputeSpans, antialiased: the kernel widened by the downscale factor), row-normalised.
    Written out because no NumPy library computes TensorFlow's exact kernel placement."""
    kernel, radius = _KERNELS[method]
    inverse = in_size / out_size
    kernel_scale = max(inverse, 1.0)
    weights = np.zeros((out_size, in_size), np.float64)
    for out in range(out_size):
        centre = (out + 0.5) * inverse
        start = int(np.ceil(centre - radius * kernel_scale - 0.5))
        end = int(np.floor(centre + radius * kernel_scale - 0.5))
        start = min(max(start, 0), in_size - 1)
        end = min(max(end, 0), in_size - 1) + 1
        source = np.arange(start, end)
        row = kernel(np.abs((source + 0.5 - centre) / kernel_scale))
        total = row.sum()
        if abs(total) >= 1000 * np.finfo(np.float32).tiny:
            row = row / total
        weights[out, start:end] = row
    return weights.astype(np.float32)


def _backend() -> str:
    import keras  # lazy: keras

    return keras.config.backend()


def resize_array(x: np.ndarray, size: int | Sequence[int], *, method: str = "bilinear"):
    """The resize policy in NumPy on float images (N, H, W, C): the antialiased kernel as one
    (out, in) weight matrix per axis, within `RESIZE_ATOL` of tf.image.resize (no TensorFlow)."""
    hw = pair(size)
    x = np.asarray(x, dtype=np.float32)
    n, height, width, channels = x.shape
    if (height, width) == hw:
        return x
    if method not in _KERNELS:  # "area", "nearest": the running backend's own op
        import keras  # lazy: keras

        out = keras.ops.image.resize(x, hw, interpolation=method, antialias=True)
        return np.asarray(keras.ops.convert_to_numpy(out), np.float32)
    rows = _resize_weights(height, hw[0], method)
    cols = _resize_weights(width, hw[1], method)
    x = np.matmul(rows, x.reshape(n, height, width * channels))  # (N, h, W*C)
    x = np.matmul(cols, x.reshape(n * hw[0], width, channels))  # (N*h, w, C)
    return x.reshape(n, hw[0], hw[1], channels)


def resize_tensor(x: Any, size: int | Sequence[int], *, aspect: bool = False, method="bilinear"):
    """The resize policy on a float32 tensor (N, H, W, C) with static height and width: the op
    the tf.data pipeline runs in its graph and `resize` runs on arrays (tf.image.resize under
    the TensorFlow backend, `resize_array` under the others)."""
    hw = pair(size)
    height, width = int(x.shape[1]), int(x.shape[2])
    if aspect:
        top, left, crop_h, crop_w = _aspect_box(height, width, hw)
        if (crop_h, crop_w) != (height, width):
            x = x[:, top : top + crop_h, left : left + crop_w, :]
            height, width = crop_h, crop_w
    if (height, width) == hw:
        return x
    if "tensorflow" not in type(x).__module__ and _backend() != "tensorflow":
        return resize_array(x, hw, method=method)  # NumPy or a JAX/PyTorch tensor
    import tensorflow as tf  # lazy: tensorflow

    return tf.image.resize(x, hw, method=method, antialias=True)


def resize(
    images: np.ndarray,
    size: int | Sequence[int],
    *,
    aspect: bool = False,
    method: ResizeMethod = "bilinear",
) -> np.ndarray:
    """One image (H, W[, C]) or a batch (N, H, W, C) resized to `size` (height, width) by this
    module's policy; `aspect=True` centre-crops to the target's aspect ratio first. uint8 stays
    uint8 (rounded), anything else comes back float32. Already at `size`: returned as is."""
    x = np.asarray(images)
    hw = pair(size)
    squeeze = x.ndim == 2
    single = x.ndim == 3 or squeeze
    batch = x[None, ..., None] if squeeze else x[None] if single else x
    if batch.ndim != 4:
        raise ValueError(f"images: expected (H, W), (H, W, C) or (N, H, W, C); got {x.shape}")
    if tuple(batch.shape[1:3]) == hw:
        return x if x.dtype == np.uint8 else x.astype(np.float32, copy=False)
    if method == "pil-bicubic":
        return _pil_bicubic(x, hw, aspect=aspect)
    out = []
    if _backend() != "tensorflow":  # no TensorFlow under JAX or PyTorch
        for start in range(0, max(1, len(batch)), _CHUNK):
            chunk = batch[start : start + _CHUNK].astype(np.float32, copy=False)
            out.append(resize_tensor(chunk, hw, aspect=aspect, method=method))
    else:
        import tensorflow as tf  # lazy: tensorflow

        with tf.device("/CPU:0"):  # where tf.data runs its graph: the same kernel, same pixels
            for start in range(0, max(1, len(batch)), _CHUNK):
                chunk = batch[start : start + _CHUNK].astype(np.float32, copy=False)
                out.append(np.asarray(resize_tensor(chunk, hw, aspect=aspect, method=method)))
    result = np.concatenate(out) if out else np.empty((0, *hw, batch.shape[-1]), np.float32)
    result = result.astype(np.float32, copy=False)
    if x.dtype == np.uint8:
        result = np.clip(np.rint(result), 0, 255).astype(np.uint8)
    if squeeze:
        return result[0, ..., 0]
    return result[0] if single else result


def _pil_bicubic(x: np.ndarray, hw: tuple[int, int], *, aspect: bool) -> np.ndarray:
    """Pillow's bicubic resize of uint8 images (H, W[, C]) or (N, H, W, C), aspect-aware alike."""
    if x.dtype != np.uint8:
        raise ValueError(f"method='pil-bicubic' resizes uint8 images, got {x.dtype}")
    if x.ndim == 4:
        return np.stack([_pil_bicubic(image, hw, aspect=aspect) for image in x])
    image = x[..., 0] if x.ndim == 3 and x.shape[-1] == 1 else x
    if aspect:
        top, left, crop_h, crop_w = _aspect_box(x.shape[0], x.shape[1], hw)
        image = image[top : top + crop_h, left : left + crop_w]
    out = np.asarray(Image.fromarray(image).resize((hw[1], hw[0]), Image.Resampling.BICUBIC))
    return out.reshape(*hw, *x.shape[2:])


# -- means ---------------------------------------------------------------------------------


def compute_rgb_means(images: np.ndarray) -> dict[str, float]:
    """Per-channel means of a training split, on the images' own scale (0-255 or 0-1).
    Accumulated in float64 batch by batch, so large uint8 arrays need no float copy."""
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"expected RGB images (N, H, W, 3), got shape {images.shape}")
    total = np.zeros(3, dtype=np.float64)
    for start in range(0, len(images), 1024):
        total += images[start : start + 1024].sum(axis=(0, 1, 2), dtype=np.float64)
    count = images.shape[0] * images.shape[1] * images.shape[2]
    return dict(zip(CHANNELS, (total / count).tolist(), strict=True))


def save_means(path: str | Path, means: dict[str, float]) -> Path:
    """Write `{"R": ..., "G": ..., "B": ...}` beside the data (the book's format)."""
    return write_json_atomic(path, {c: float(means[c]) for c in CHANNELS})


def load_means(path: str | Path) -> dict[str, float]:
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    missing = [c for c in CHANNELS if c not in data]
    if missing:
        raise ValueError(f"{path}: missing channel mean(s) {missing}; expected keys R, G, B")
    return {c: float(data[c]) for c in CHANNELS}


def subtract_means(images: np.ndarray, means: dict[str, float]) -> np.ndarray:
    """Images minus the per-channel training means, as float32 (the book's MeanPreprocessor)."""
    images = np.asarray(images, dtype=np.float32)
    vector = np.array([means[c] for c in CHANNELS], np.float32)
    return images - vector[: images.shape[-1]]  # grey images: the one channel's mean


# -- crops ---------------------------------------------------------------------------------


def centre_crop(image: np.ndarray, size: int | Sequence[int]) -> np.ndarray:
    """The centred `size` window of one (H, W, C) image (offsets rounded down, as
    `tf.image.resize_with_crop_or_pad` cuts them)."""
    h, w = pair(size)
    height, width = image.shape[:2]
    if height < h or width < w:
        raise ValueError(f"cannot cut a {h}×{w} crop from an image of {image.shape[:2]}")
    top, left = (height - h) // 2, (width - w) // 2
    return image[top : top + h, left : left + w]


def random_patch(
    image: np.ndarray, size: int | Sequence[int], rng: np.random.Generator
) -> np.ndarray:
    """A random `size` crop of one (H, W, C) image: the book's PatchPreprocessor for training."""
    h, w = pair(size)
    if image.shape[0] < h or image.shape[1] < w:
        raise ValueError(f"cannot cut a {h}×{w} patch from an image of {image.shape[:2]}")
    top = int(rng.integers(0, image.shape[0] - h + 1))
    left = int(rng.integers(0, image.shape[1] - w + 1))
    return image[top : top + h, left : left + w]


def ten_crop(image: np.ndarray, size: int | Sequence[int]) -> np.ndarray:
    """The four corners and the centre at `size`, then their horizontal mirrors: (10, h, w, C).
    Averaging a model's predictions over them (oversampling) usually adds a point or two."""
    h, w = pair(size)
    height, width = image.shape[:2]
    if height < h or width < w:
        raise ValueError(f"cannot cut {h}×{w} crops from an image of {image.shape[:2]}")
    crops = [
        image[:h, :w],
        image[:h, width - w :],
        image[height - h :, :w],
        image[height - h :, width - w :],
        centre_crop(image, (h, w)),
    ]
    crops += [crop[:, ::-1] for crop in crops]
    return np.stack(crops)


def predict_ten_crop(
    model, images: np.ndarray, size: int | Sequence[int], batch_size: int = 64
) -> np.ndarray:
    """Class probabilities averaged over the ten crops of each image. The crops of several
    images go through the model together (`batch_size` crops at a time)."""
    per_call = max(1, batch_size // 10)
    out = []
    for start in range(0, len(images), per_call):
        chunk = images[start : start + per_call]
        crops = np.concatenate([ten_crop(image, size) for image in chunk])
        probs = np.asarray(model.predict_on_batch(crops))
        out.append(probs.reshape(len(chunk), 10, -1).mean(axis=1))
    if not out:
        raise ValueError("images: no images to predict")
    return np.concatenate(out)


# -- the configuration and the one function that applies it --------------------------------


class Preprocessing(BaseModel):
    """What a model expects as input, and so how any image is prepared for it: a run records
    it (`Run.log_preprocessing`), `prepare` applies it (`cvlab.runs.load`, `cvlab predict`).

    An image file is decoded as RGB, resized to `stored_size` if set (the HDF5 recipe stores
    images at one size, then resizes them to the model's), else to `size`, aspect-aware
    (`aspect`: centred window of the target's aspect ratio) or plainly stretched, as uint8;
    then it is brought to `channels`, put on `scale` (0-1: divided by 255), resized to `size`
    if it is not there yet, the per-channel `means` (on that scale) are subtracted and, for a
    pretrained backbone, its `keras_preprocess` module's `preprocess_input` is applied.
    """

    model_config = ConfigDict(extra="ignore")

    size: tuple[int, int]  # (height, width) of the model's input
    channels: int = 3
    aspect: bool = False
    scale: PixelScale = "0-1"
    means: dict[str, float] | None = None  # {"R": ..., "G": ..., "B": ...}
    class_names: list[str]
    stored_size: tuple[int, int] | None = None
    # a keras.applications module (e.g. "vgg16") whose `preprocess_input` takes the 0-255
    # pixels last: a pretrained backbone's own input mapping (BGR, ImageNet means, ...)
    keras_preprocess: str | None = None
    recipe: str = ""  # what recorded it, e.g. "train_classifier"

    @property
    def decode_size(self) -> tuple[int, int]:
        """The size a file is decoded at: the stored size, else the model's input size."""
        return tuple(self.stored_size or self.size)  # type: ignore[return-value]


def _read(path: Any, config: Preprocessing) -> np.ndarray:
    """One file decoded (RGB uint8) and resized to the config's decode size, as a data set's
    images were made from their files."""
    target = config.decode_size
    return resize(decode(path), target, aspect=config.aspect)


def prepare(
    inputs: Any, config: Preprocessing, *, input_scale: PixelScale | None = None
) -> np.ndarray:
    """Image files or arrays as the model's float32 input batch (N, H, W, channels).

    `inputs`: a path or bytes, a list of them, or an array (N, H, W, C), (H, W, C) or (H, W).
    Files are decoded and resized as `Preprocessing` says. Arrays on 0-255 are uint8 (or another
    integer type), or floats with `input_scale="0-255"`; float arrays are taken to be on `config.scale` unless
    `input_scale` says otherwise (the dtype decides, never the values).
    """
    if isinstance(inputs, str | Path | bytes):
        inputs = [inputs]
    if not isinstance(inputs, np.ndarray) and isinstance(inputs, Iterable):
        items = list(inputs)
        if items and all(isinstance(item, str | Path | bytes) for item in items):
            inputs = np.stack([_read(item, config) for item in items])
        else:
            inputs = np.asarray(items)
    x = np.asarray(inputs)
    if x.ndim == 2 or (x.ndim == 3 and x.shape[-1] not in (1, 3, 4)):
        x = x[..., None]  # grey without a channel axis: one image (H, W) or a batch (N, H, W)
    if x.ndim == 3:
        x = x[None]
    if x.ndim != 4:
        raise ValueError(f"images: expected (N, H, W, C), (H, W, C) or (H, W); got {x.shape}")
    if np.issubdtype(x.dtype, np.integer) and x.dtype != np.uint8:  # integer pixels: 0-255
        if x.size and (x.min() < 0 or x.max() > 255):
            raise PixelScaleError(f"{x.dtype} pixels outside 0-255: give uint8 or float images")
        x = x.astype(np.uint8)
    x = to_channels(x, config.channels)
    source = "0-255" if x.dtype == np.uint8 else (input_scale or config.scale)
    x = to_scale(x, config.scale, source=source)
    if tuple(x.shape[1:3]) != tuple(config.size):
        stored = config.stored_size
        if stored is not None and tuple(x.shape[1:3]) != tuple(stored):
            x = resize(x, stored, aspect=config.aspect)
        x = resize(x, config.size, aspect=config.aspect and stored is None)
    if config.means is not None:
        x = subtract_means(x, config.means)
    if config.keras_preprocess:
        x = _keras_preprocess(config.keras_preprocess)(x)
    return x


def _keras_preprocess(module: str):
    """`keras.applications.<module>.preprocess_input`, on float32 numpy batches."""
    import importlib

    function = importlib.import_module(f"keras.applications.{module}").preprocess_input
    return lambda batch: np.asarray(function(np.array(batch, dtype=np.float32)), np.float32)
