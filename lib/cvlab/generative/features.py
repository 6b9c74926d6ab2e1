"""The frozen ImageNet network that DeepDream and style transfer run backwards: a model from an RGB
image (0-255 pixels, any size) to the activations of a few named layers.

    net = feature_net("efficientnet_lite0", ["block4a_expand_activation"])   # offline weights
    net = feature_net("vgg19", BOOK_STYLE_LAYERS["vgg19"]["style"])         # the book's, if cached
    acts = net(image_batch)                 # {layer name: (1, h, w, channels) activations}

Both techniques optimise the *image*, not the weights, so the network must accept whatever size
the image has: `feature_net` builds it with a free (None, None) spatial input. `vgg19`'s
ImageNet weights come from Keras' cache (offline, `WeightsNotAvailableError`); `resolve` falls
back to the offline `efficientnet_lite0` and says so, with that network's own layers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

import cvlab.models
from cvlab.figures import new_figure
from cvlab.image_prep import PixelScale, decode, to_rgb, to_scale
from cvlab.image_prep import resize as prep_resize
from cvlab.image_prep import to_uint8 as prep_uint8
from cvlab.models.applications import WeightsNotAvailableError, _cached, imagenet_file
from cvlab.models.efficientnet_lite import build_efficientnet_lite0

OFFLINE = "efficientnet_lite0"
VGG_MEANS_BGR = (
    103.939,
    116.779,
    123.68,
)  # what keras.applications.vgg19.preprocess_input takes off

# Layer choices per backbone. vgg19: the book's (ch. 15.2.1, Gatys et al.). efficientnet_lite0:
# the analogues at the same depth: one layer at each resolution for style (where VGG's
# blockN_conv1 sit), and a stride-16 expansion for content. The style layers are the batch-norm
# outputs *before* the ReLU6: after it, most values sit at 0 or at the cap 6, where the gradient
# is zero, and matching those Gram matrices barely moves the pixels (a washed-out, greyish image
# with faint texture); before it, every value passes a gradient, and the painting's colours and
# strokes come through (Tübingen x Starry Night, 192 px, 10 L-BFGS rounds, compared by eye).
STYLE_LAYERS: dict[str, dict[str, Any]] = {
    "vgg19": {
        "content": "block4_conv2",
        "style": ["block1_conv1", "block2_conv1", "block3_conv1", "block4_conv1", "block5_conv1"],
    },
    OFFLINE: {
        "content": "block5a_expand_activation",
        "style": [
            "stem_bn",
            "block2a_expand_bn",
            "block3a_expand_bn",
            "block4a_expand_bn",
            "block6a_expand_bn",
        ],
    },
}
# DeepDream: the book dreams on InceptionV3's mixed2 (weight 2.0) and mixed3 (0.5), both at
# stride 8 and 16 of the input; these are the same depths in the two networks cvlab has offline
# or in the Keras cache.
DREAM_LAYERS: dict[str, dict[str, float]] = {
    OFFLINE: {"block4a_expand_activation": 2.0, "block5a_expand_activation": 0.5},
    "vgg19": {"block4_conv1": 2.0, "block5_conv1": 0.5},
}


@dataclass
class FeatureNet:
    """A frozen network from 0-255 RGB images (batch, h, w, 3) to `{layer: activations}`."""

    name: str  # the backbone that produced the images: say it wherever they are shown
    model: Any  # keras.Model, input (None, None, None, 3) network-scale, outputs a dict
    layers: list[str]
    preprocess: Callable[[Any], Any] = field(default=lambda x: x)  # 0-255 RGB -> network input
    note: str = ""  # why this backbone (a fallback), or ""

    def __call__(self, images) -> dict[str, Any]:
        return self.model(self.preprocess(images), training=False)

    def activations(self, image: np.ndarray) -> dict[str, np.ndarray]:
        """The layers' activations for one HxWx3 image (0-255), as numpy arrays (h, w, c)."""
        import keras  # lazy: keras

        batch = keras.ops.convert_to_tensor(np.asarray(image, dtype="float32")[None])
        return {k: keras.ops.convert_to_numpy(v)[0] for k, v in self(batch).items()}


def vgg_preprocess(x):
    """0-255 RGB -> VGG's input: BGR with the ImageNet means subtracted (keras.ops, traceable)."""
    import keras

    x = keras.ops.flip(keras.ops.cast(x, "float32"), axis=-1)
    return x - keras.ops.convert_to_tensor(np.asarray(VGG_MEANS_BGR, dtype="float32"))


def from_model(model, layers: Sequence[str], *, name: str = "", preprocess=None) -> FeatureNet:
    """A `FeatureNet` on any Keras functional model (tests use a small random network)."""
    import keras

    layers = list(layers)
    known = {layer.name for layer in model.layers}
    missing = [layer for layer in layers if layer not in known]
    if missing:
        examples = ", ".join(sorted(known)[:8])
        raise ValueError(
            f"{name or model.name} has no layer(s) {', '.join(missing)}; layer names look like "
            f"{examples}, ... (model.summary() lists them all)"
        )
    outputs = {layer: model.get_layer(layer).output for layer in layers}
    inputs = model.inputs[0] if len(model.inputs) == 1 else model.inputs
    extractor = keras.Model(inputs, outputs, name=f"{name or model.name}_features")
    extractor.trainable = False
    return FeatureNet(name or model.name, extractor, layers, preprocess or (lambda x: x))


def feature_net(backbone: str, layers: Sequence[str], *, weights: str = "imagenet") -> FeatureNet:
    """`backbone` ("efficientnet_lite0" or "vgg19") with its ImageNet weights, any input size,
    cut at `layers`. Raises `WeightsNotAvailableError` where the weights are not on this machine."""

    if backbone == OFFLINE:
        loaded = cvlab.models.build(OFFLINE, weights=weights, include_top=False)
        # the same architecture with a free spatial size; same builder, so the same weight order
        model = build_efficientnet_lite0((None, None, 3), include_top=False)
        model.set_weights(loaded.get_weights())
        return from_model(model, layers, name=OFFLINE)
    if backbone in ("vgg19", "vgg16"):
        model = cvlab.models.build(backbone, weights=weights, input_shape=(None, None, 3))
        return from_model(model, layers, name=backbone, preprocess=vgg_preprocess)
    raise ValueError(f"backbone {backbone!r}: use 'efficientnet_lite0' (offline) or 'vgg19'")


def resolve(backbone: str, layers: Sequence[str], fallback_layers: Sequence[str]) -> FeatureNet:
    """`feature_net(backbone, layers)`, or, where its weights are missing, the offline
    `efficientnet_lite0` on `fallback_layers`, with a `note` that says so."""

    try:
        return feature_net(backbone, layers)
    except WeightsNotAvailableError as exc:
        if backbone == OFFLINE:
            raise
        net = feature_net(OFFLINE, fallback_layers)
        first = str(exc).splitlines()[0]
        net.note = (
            f"{backbone}'s ImageNet weights are not on this machine ({first}); the images below "
            f"come from the offline {OFFLINE} instead, on its own layers."
        )
        return net


def available(backbone: str) -> bool:
    """Whether `backbone`'s ImageNet weights are on this machine (no download is tried)."""
    if backbone == OFFLINE:
        return True

    return _cached(imagenet_file(backbone, (224, 224, 3), False)) is not None


__all__ = [
    "DREAM_LAYERS",
    "OFFLINE",
    "STYLE_LAYERS",
    "FeatureNet",
    "available",
    "feature_net",
    "from_model",
    "resolve",
    "vgg_preprocess",
    "as_rgb",
    "fit",
    "panels",
    "resize",
    "to_uint8",
]


# ------------------------------------------------------------------------------ image helpers


def as_rgb(image, *, scale: PixelScale = "0-255") -> np.ndarray:
    """An image as float32 HxWx3 on 0-255, the chapters' working scale: a path is decoded
    (`cvlab.image_prep.decode`), uint8 taken as it is, float arrays read on `scale` (0-255
    unless said otherwise: never guessed from the values); grey repeated, alpha dropped."""
    if isinstance(image, str | Path):
        image = decode(image)
    array = np.asarray(image)
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[-1] not in (1, 3, 4)):
        raise ValueError(f"expected an HxW or HxWx3 image, got shape {array.shape}")
    array = to_rgb(array)
    return to_scale(array, "0-255", source="0-255" if array.dtype == np.uint8 else scale)


def resize(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize a float HxWx3 0-255 image to (height, width), bicubic (float32 out, not clipped):
    `cvlab.image_prep.resize` with the chapters' bicubic kernel."""
    return prep_resize(np.asarray(image, dtype=np.float32), size, method="bicubic")


def fit(image, max_side: int | None) -> np.ndarray:
    """`as_rgb(image)` with its longer side brought to `max_side` (None: as it is)."""
    array = as_rgb(image)
    if not max_side:
        return array
    height, width = array.shape[:2]
    scale = max_side / max(height, width)
    return resize(array, (max(1, round(height * scale)), max(1, round(width * scale))))


def to_uint8(image) -> np.ndarray:
    """A 0-255 float image, clipped and rounded to uint8 (what is saved and shown)."""
    return prep_uint8(image, scale="0-255")


def panels(items: Sequence[tuple[str, np.ndarray]], *, height: float = 3.6):
    """A row of titled images (a matplotlib Figure, no pyplot): inputs beside the result."""

    widths = [img.shape[1] / img.shape[0] for _, img in items]
    fig, axes = new_figure(1, len(items), figsize=(height * sum(widths) + 0.3, height + 0.5))
    for ax, (title, img) in zip(axes[0], items, strict=True):
        ax.imshow(to_uint8(img) if np.asarray(img).dtype != np.uint8 else img)
        ax.set_title(title, fontsize=10)
        ax.set_axis_off()
    fig.tight_layout()
    return fig
