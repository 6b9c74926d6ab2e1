"""Small book networks for small images: ShallowNet and LeNet (Starter Bundle, ch. 12 and 14)."""

from __future__ import annotations

from cvlab.models.options import register_model
from cvlab.registry import lazy_module

keras = lazy_module("keras")  # lazy: keras (listing models needs no Keras)
layers = lazy_module("keras.layers")  # lazy: keras


@register_model
def shallownet(input_shape: tuple[int, int, int], classes: int) -> keras.Model:
    """CONV(32, 3×3) → ReLU → FC(classes) → softmax: the smallest CNN that learns."""
    inputs = keras.Input(shape=input_shape)
    x = layers.Conv2D(32, 3, padding="same", activation="relu")(inputs)
    x = layers.Flatten()(x)
    outputs = layers.Dense(classes, activation="softmax")(x)
    return keras.Model(inputs, outputs, name="shallownet")


@register_model
def lenet(input_shape: tuple[int, int, int], classes: int) -> keras.Model:
    """LeNet as in the book: (CONV 5×5 → ReLU → POOL) × 2 with 20 and 50 filters → FC 500 → softmax."""
    inputs = keras.Input(shape=input_shape)
    x = layers.Conv2D(20, 5, padding="same", activation="relu")(inputs)
    x = layers.MaxPooling2D(2, strides=2)(x)
    x = layers.Conv2D(50, 5, padding="same", activation="relu")(x)
    x = layers.MaxPooling2D(2, strides=2)(x)
    x = layers.Flatten()(x)
    x = layers.Dense(500, activation="relu")(x)
    outputs = layers.Dense(classes, activation="softmax")(x)
    return keras.Model(inputs, outputs, name="lenet")
