"""Data augmentation from config, as Keras preprocessing layers (active only in training),
and the book's augmentation demo: a montage of augmented samples."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from cvlab.figures import new_figure, save_png


class AugmentationConfig(BaseModel):
    """The book's ImageDataGenerator settings, by name: rotation in degrees, shifts and zoom as
    fractions, brightness/contrast as ± fractions. Zero means off. `shear` is a shear factor
    (the tangent of the angle), as in Keras' RandomShear; ImageDataGenerator took degrees."""

    model_config = ConfigDict(extra="forbid")

    rotation: float = Field(0.0, ge=0, le=180, description="degrees, ±")
    width_shift: float = Field(0.0, ge=0, lt=1, description="fraction of width, ±")
    height_shift: float = Field(0.0, ge=0, lt=1, description="fraction of height, ±")
    shear: float = Field(0.0, ge=0, lt=1, description="shear factor, ±")
    zoom: float = Field(0.0, ge=0, lt=1, description="fraction, ±")
    horizontal_flip: bool = False
    brightness: float = Field(0.0, ge=0, le=1, description="fraction of the value range, ±")
    contrast: float = Field(0.0, ge=0, lt=1, description="fraction, ±")
    fill_mode: str = Field("nearest", pattern="^(nearest|reflect|wrap|constant)$")

    @classmethod
    def book_default(cls) -> AugmentationConfig:
        """The settings the book uses most (e.g. MiniVGGNet/AlexNet chapters)."""
        return cls(
            rotation=30,
            width_shift=0.1,
            height_shift=0.1,
            shear=0.2,
            zoom=0.2,
            horizontal_flip=True,
        )


def _random_affine_layer():
    """Defined on first use so that importing this module does not import Keras."""
    import keras

    class RandomAffine(keras.layers.Layer):
        """Rotation, shear, zoom and shift composed into one affine warp per image, applied in a
        single interpolation pass (as ImageDataGenerator did), instead of one pass per Keras
        layer: the same augmentation at a fraction of the cost. Identity when not training."""

        def __init__(self, rotation=0.0, shear=0.0, zoom=0.0, width_shift=0.0, height_shift=0.0,
                     fill_mode="nearest", seed=None, **kwargs):  # fmt: skip
            super().__init__(**kwargs)
            self.rotation, self.shear, self.zoom = rotation, shear, zoom
            self.width_shift, self.height_shift = width_shift, height_shift
            self.fill_mode = fill_mode
            self.generator = keras.random.SeedGenerator(seed)

        def call(self, images, training=True):
            if not training:
                return images
            ops = keras.ops
            n = ops.shape(images)[0]
            h = ops.cast(ops.shape(images)[1], "float32")
            w = ops.cast(ops.shape(images)[2], "float32")

            def symmetric(scale):  # uniform in [-scale, scale], one value per image
                return keras.random.uniform((n,), -1.0, 1.0, seed=self.generator) * scale

            theta = symmetric(self.rotation * 3.141592653589793 / 180.0)
            shear = symmetric(self.shear)
            zx, zy = 1.0 + symmetric(self.zoom), 1.0 + symmetric(self.zoom)
            tx, ty = symmetric(self.width_shift) * w, symmetric(self.height_shift) * h
            cos, sin = ops.cos(theta), ops.sin(theta)
            # A = R(theta) @ [[1, shear], [0, 1]] @ diag(zx, zy) maps output pixels to input ones,
            # about the image centre, then shifted by (tx, ty).
            a00, a01 = cos * zx, (cos * shear - sin) * zy
            a10, a11 = sin * zx, (sin * shear + cos) * zy
            cx, cy = (w - 1.0) / 2.0, (h - 1.0) / 2.0
            a02 = cx - a00 * cx - a01 * cy + tx
            a12 = cy - a10 * cx - a11 * cy + ty
            zeros = ops.zeros_like(theta)
            transform = ops.stack([a00, a01, a02, a10, a11, a12, zeros, zeros], axis=1)
            return ops.image.affine_transform(
                images, transform, interpolation="bilinear", fill_mode=self.fill_mode
            )

        def compute_output_shape(self, input_shape):
            return input_shape

    return RandomAffine


def build_augmentation(
    config: AugmentationConfig | dict | None, *, value_range=(0.0, 1.0), seed: int | None = None
):
    """A `keras.Sequential` of random layers for `config`; they pass images through unchanged
    when called with `training=False`, so evaluation never sees augmentation."""
    import keras
    from keras import layers

    if config is None:
        config = AugmentationConfig()
    if isinstance(config, dict):
        config = AugmentationConfig(**config)
    steps: list = []
    fill = config.fill_mode
    if config.horizontal_flip:
        steps.append(layers.RandomFlip("horizontal", seed=seed))
    if config.rotation or config.width_shift or config.height_shift or config.shear or config.zoom:
        steps.append(
            _random_affine_layer()(
                rotation=config.rotation,
                shear=config.shear,
                zoom=config.zoom,
                width_shift=config.width_shift,
                height_shift=config.height_shift,
                fill_mode=fill,
                seed=seed,
            )
        )
    if config.brightness:
        steps.append(layers.RandomBrightness(config.brightness, value_range=value_range, seed=seed))
    if config.contrast:
        steps.append(layers.RandomContrast(config.contrast, value_range=value_range, seed=seed))
    # `augment: {}` (every option off) is the identity; an empty Sequential refuses to be called.
    return keras.Sequential(steps or [layers.Identity()], name="augmentation")


def save_augmentation_montage(
    image: np.ndarray,
    config: AugmentationConfig | dict,
    path: str | Path,
    *,
    samples: int = 15,
    columns: int = 5,
    seed: int = 42,
) -> Path:
    """Write a grid of `samples` augmented versions of one image (float in [0, 1]) to `path`:
    the book's augmentation demo, to check that the settings look sensible."""
    import keras

    augment = build_augmentation(config, seed=seed)
    batch = np.repeat(np.asarray(image, np.float32)[None], samples, axis=0)
    out = keras.ops.convert_to_numpy(augment(batch, training=True))
    rows = -(-samples // columns)
    fig, axes = new_figure(rows, columns, figsize=(1.6 * columns, 1.6 * rows))
    for ax, img in zip(axes.flat, list(out) + [None] * (rows * columns - samples), strict=True):
        ax.axis("off")
        if img is not None:
            ax.imshow(np.clip(img.squeeze(), 0, 1), cmap="gray" if img.shape[-1] == 1 else None)
    return save_png(fig, path)
