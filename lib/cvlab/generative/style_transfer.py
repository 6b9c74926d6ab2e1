"""Neural style transfer (Gatys et al. 2015; book ch. 15): optimise an image so that a frozen
ImageNet network sees the *content* of one picture and the *style* of another.

    settings = Settings.book()                                   # vgg19, the book's layers/weights
    transfer = StyleTransfer.prepare(settings, content, style)   # falls back to efficientnet_lite0
    result = transfer.run(iterations=50, callback=...)           # L-BFGS, 20 evaluations each
    result.image                                                 # uint8 HxWx3

The loss is the book's (ch. 15.2.2), term for term:

* content: the sum of squared differences between the content layer's activations for the
  content photo and for the generated image;
* style: for each style layer, the Gram matrix (channel-by-channel inner products of the
  activations: which features fire together) of the painting and of the generated image, their
  summed squared difference scaled by 1 / (2·3·h·w)², averaged over the layers (on
  efficientnet_lite0, `gram_norm="layer"`: scaled by each layer's own size instead);
* total variation: sum over pixels of ((x[i,j]-x[i+1,j])² + (x[i,j]-x[i,j+1])²)^1.25, which
  punishes pixel noise.

total = content_weight·content + style_weight·style + tv_weight·tv. The image is optimised in
0-255 pixel units (the network's preprocessing is inside `FeatureNet`), which gives the same
losses as the book's preprocessed BGR image: all three terms ignore a constant shift. Each loss
and gradient evaluation is one compiled function on any Keras backend (`gradients.value_and_grad`:
tf.function on TensorFlow, jax.jit on JAX, autograd on PyTorch).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import keras
import numpy as np

from cvlab.generative.features import (
    OFFLINE,
    STYLE_LAYERS,
    FeatureNet,
    fit,
    resize,
    resolve,
    to_uint8,
)
from cvlab.generative.gradients import value_and_grad

IMAGENET_MEAN_RGB = (123.68, 116.779, 103.939)
BOOK_SOURCE = (
    "ch. 15.2 (Neural Style Transfer): VGG19, content block4_conv2, style block1-5_conv1, "
    "weights content 1 / style 100 / TV 10, 50 iterations of L-BFGS (20 evaluations each) "
    "from noise"
)


# ------------------------------------------------------------------------------ the losses


def gram_matrix(features):
    """The Gram matrix of (h, w, c) activations: (c, c), entry (i, j) the inner product of
    channel i's and channel j's maps (the book's permute, flatten, dot)."""
    ops = keras.ops
    channels = ops.shape(features)[-1]
    flat = ops.reshape(ops.transpose(features, (2, 0, 1)), (channels, -1))
    return ops.matmul(flat, ops.transpose(flat))


def content_loss(content_features, output_features):
    """Sum of squared differences of the content layer's activations (the book's
    featureReconLoss)."""
    return keras.ops.sum(keras.ops.square(output_features - content_features))


def style_loss(style_gram, output_features, image_size: tuple[int, int] | None):
    """The book's styleReconLoss: sum((G - A)²) / (2·3·h·w)², with A the painting's Gram matrix
    (given, computed once), G the generated image's and (h, w) the *image* size.

    `image_size=None` normalises by the layer instead, as Gatys et al. do:
    sum((G - A)²) / (4·c²·(h·w)²) with (h, w, c) the *layer's* shape. The book's scale divides
    every layer by the same number, so a layer at stride s weighs s⁴ less than one at full
    resolution (its Gram sums s² fewer positions); per layer, every depth counts the same."""
    ops = keras.ops
    if image_size is not None:
        height, width = image_size
        scale = 1.0 / float((2 * 3 * height * width) ** 2)
        return scale * ops.sum(ops.square(gram_matrix(output_features) - style_gram))
    shape = ops.shape(output_features)
    size = ops.cast(shape[0] * shape[1] * shape[2], "float32")
    return ops.sum(ops.square(gram_matrix(output_features) - style_gram)) / (4.0 * size * size)


def total_variation_loss(image):
    """The book's tvLoss on a (1, h, w, 3) image: sum of (dy² + dx²)^1.25 over the pixels that
    have both a lower and a right neighbour."""
    ops = keras.ops
    a = ops.square(image[:, :-1, :-1, :] - image[:, 1:, :-1, :])
    b = ops.square(image[:, :-1, :-1, :] - image[:, :-1, 1:, :])
    return ops.sum(ops.power(a + b, 1.25))


# ------------------------------------------------------------------------------ settings


@dataclass
class Settings:
    """What a transfer needs besides the two pictures."""

    backbone: str = OFFLINE
    content_layer: str = STYLE_LAYERS[OFFLINE]["content"]
    style_layers: list[str] = field(default_factory=lambda: list(STYLE_LAYERS[OFFLINE]["style"]))
    # efficientnet_lite0's weights, with its pre-ReLU6 style layers (features.STYLE_LAYERS) and
    # each layer's Gram normalised by its own size (gram_norm "layer"): every style layer then
    # contributes about 0.1-10 while the summed content and TV terms are in the 10⁴-10⁸ range,
    # hence 10⁶ for style (10⁵ gave visibly fainter strokes); TV at 10⁻⁴, since the previous
    # 10⁻³ visibly blurred the photo. Tuned by eye on Tübingen x Starry Night at 192 px, 10
    # L-BFGS rounds, starting from the photo (init "content"); from the book's noise start the
    # same weights paint Starry Night's swirls and colours but lose the scene.
    content_weight: float = 1.0
    style_weight: float = 1e6
    tv_weight: float = 1e-4
    # "image": the book's 1 / (2·3·h·w)² for every style layer; "layer": each layer's own
    # 1 / (4·c²·(h·w)²) (Gatys et al.). None: the backbone's default (the book's on vgg19).
    gram_norm: str | None = None
    # keep the pixels in 0-255 while optimising (L-BFGS bounds, Adam clipping); the book does
    # not, and clips only the final image. None: the backbone's default (off on vgg19).
    bounded: bool | None = None

    def __post_init__(self):
        book = self.backbone == "vgg19"
        if self.gram_norm is None:
            self.gram_norm = "image" if book else "layer"
        if self.gram_norm not in ("image", "layer"):
            raise ValueError(f"gram_norm={self.gram_norm!r}: use 'image' (the book's) or 'layer'")
        if self.bounded is None:
            self.bounded = not book

    @classmethod
    def book(cls) -> Settings:
        """The book's settings (ch. 15.2.1) on its network, VGG19."""
        return cls(
            "vgg19", STYLE_LAYERS["vgg19"]["content"], list(STYLE_LAYERS["vgg19"]["style"]),
            content_weight=1.0, style_weight=100.0, tv_weight=10.0,
        )  # fmt: skip

    @classmethod
    def for_backbone(cls, backbone: str) -> Settings:
        return cls.book() if backbone == "vgg19" else cls()

    @property
    def layers(self) -> list[str]:
        return list(dict.fromkeys([self.content_layer, *self.style_layers]))


# ------------------------------------------------------------------------------ the optimisation


@dataclass
class StyleResult:
    image: np.ndarray  # uint8 HxWx3, the final image
    history: list[
        dict[str, float]
    ]  # per iteration: iteration, loss, content/style/tv_loss, seconds
    backbone: str
    evaluations: int  # loss-and-gradient evaluations in all
    seconds: float  # optimisation time (the first, compiling, evaluation included)

    @property
    def seconds_per_iteration(self) -> float:
        return self.seconds / max(1, len(self.history))

    @property
    def seconds_per_evaluation(self) -> float:
        return self.seconds / max(1, self.evaluations)


class StyleTransfer:
    """The loss of one content photo and one painting on one network, ready to optimise.

    `content` and `style` are HxWx3 images (uint8, or floats 0-255); the painting is resized to
    the photo's size, as the book does, so that their Gram matrices are on the same footing."""

    def __init__(self, net: FeatureNet, content, style, settings: Settings):
        missing = [layer for layer in settings.layers if layer not in net.layers]
        if missing:
            raise ValueError(f"the network was cut at {net.layers}, not at {missing}")
        self.net, self.settings = net, settings
        self.content = fit(content, None)
        self.size = self.content.shape[:2]
        self.style = resize(fit(style, None), self.size)
        ops = keras.ops
        content_acts = self._float32(net(ops.convert_to_tensor(self.content[None])))
        style_acts = self._float32(net(ops.convert_to_tensor(self.style[None])))
        # the targets are arguments of the compiled function, not constants baked into it
        self._content_target = ops.stop_gradient(content_acts[settings.content_layer][0])
        self._style_grams = [
            ops.stop_gradient(gram_matrix(style_acts[layer][0])) for layer in settings.style_layers
        ]
        self._grad = value_and_grad(self._loss_terms, net.model.variables)

    @classmethod
    def prepare(cls, settings: Settings, content, style) -> StyleTransfer:
        """Build the network `settings.backbone` names, or the offline one (with its own
        layers and weights, and `net.note` saying why) where its weights are missing."""
        fallback = Settings.for_backbone(OFFLINE)
        net = resolve(settings.backbone, settings.layers, fallback.layers)
        if net.name != settings.backbone:
            settings = fallback
        return cls(net, content, style, settings)

    # -- the loss ---------------------------------------------------------------------------
    @staticmethod
    def _float32(acts: dict[str, Any]) -> dict[str, Any]:
        """Activations in float32 whatever the network computes in (Gram sums overflow float16)."""
        return {k: keras.ops.cast(v, "float32") for k, v in acts.items()}

    def _terms(self, image, content_target=None, style_grams=None):
        s = self.settings
        content_target = self._content_target if content_target is None else content_target
        style_grams = self._style_grams if style_grams is None else style_grams
        acts = self._float32(self.net(image))
        content = content_loss(content_target, acts[s.content_layer][0])
        size = self.size if s.gram_norm == "image" else None
        style = sum(
            style_loss(gram, acts[layer][0], size)
            for gram, layer in zip(style_grams, s.style_layers, strict=True)
        ) / len(s.style_layers)
        tv = total_variation_loss(image)
        total = s.content_weight * content + s.style_weight * style + s.tv_weight * tv
        return {"loss": total, "content_loss": content, "style_loss": style, "tv_loss": tv}

    def _loss_terms(self, image, content_target, style_grams):
        terms = self._terms(image, content_target, style_grams)
        return terms["loss"], terms

    def _loss_and_grads(self, image):
        """The terms and d loss / d image for a (1, h, w, 3) batch, one compiled evaluation."""
        _, terms, grads = self._grad(image, self._content_target, list(self._style_grams))
        return terms, grads

    def losses(self, image) -> dict[str, float]:
        """The loss and its three (unweighted) terms for an HxWx3 0-255 image."""
        terms, _ = self._loss_and_grads(np.asarray(image, dtype="float32")[None])
        return {k: float(v) for k, v in terms.items()}

    def initial_image(self, init: str = "noise", seed: int = 0) -> np.ndarray:
        """ "noise": the book's start, uniform noise around the ImageNet mean; "content": the
        photo itself (fewer iterations to a good image)."""
        if init == "content":
            return self.content.copy()
        if init != "noise":
            raise ValueError(f"init={init!r}: use 'noise' (the book's) or 'content'")
        rng = np.random.default_rng(seed)
        noise = rng.uniform(0, 255, (*self.size, 3)) - 128.0  # the book's, in VGG's input space
        return (noise + np.asarray(IMAGENET_MEAN_RGB)).astype("float32")  # ... back in pixels

    # -- the optimisation -------------------------------------------------------------------
    def run(
        self,
        iterations: int,
        *,
        optimizer: str = "lbfgs",
        evals_per_iteration: int = 20,
        learning_rate: float = 5.0,
        init: str | np.ndarray = "noise",
        seed: int = 0,
        callback: Callable[[int, np.ndarray, dict[str, float]], Any] | None = None,
    ) -> StyleResult:
        """`iterations` rounds of `evals_per_iteration` loss-and-gradient evaluations each:
        the book's L-BFGS (scipy's fmin_l_bfgs_b, restarted each round), or Adam steps.
        After each round `callback(iteration, image uint8, row)` gets the losses."""
        image = (
            init.astype("float32")
            if isinstance(init, np.ndarray)
            else self.initial_image(init, seed)
        )
        shape = image.shape
        history: list[dict[str, float]] = []
        evaluations = 0
        if optimizer == "adam":
            step = _AdamStep(self, image, learning_rate)
        elif optimizer != "lbfgs":
            raise ValueError(f"optimizer={optimizer!r}: use 'lbfgs' (the book's) or 'adam'")
        started = time.perf_counter()
        for iteration in range(1, iterations + 1):
            tick = time.perf_counter()
            if optimizer == "lbfgs":
                image, terms, used = self._lbfgs_round(image, shape, evals_per_iteration)
            else:
                image, terms, used = step.round(evals_per_iteration)
            evaluations += used
            row = {"iteration": iteration, **terms, "seconds": time.perf_counter() - tick}
            history.append(row)
            if callback is not None:
                callback(iteration, to_uint8(image), row)
        seconds = time.perf_counter() - started
        return StyleResult(to_uint8(image), history, self.net.name, evaluations, seconds)

    def _lbfgs_round(self, image: np.ndarray, shape, max_evals: int):
        from scipy.optimize import fmin_l_bfgs_b

        best: dict[str, Any] = {"loss": np.inf}
        count = [0]

        def loss_and_grad(flat: np.ndarray):
            count[0] += 1
            terms, grads = self._loss_and_grads(flat.reshape(1, *shape).astype("float32"))
            values = {k: float(v) for k, v in terms.items()}
            if values["loss"] < best["loss"]:
                best.update(values)
            return values["loss"], keras.ops.convert_to_numpy(grads).astype("float64").ravel()

        bounds = [(0.0, 255.0)] * image.size if self.settings.bounded else None
        x, _, _ = fmin_l_bfgs_b(
            loss_and_grad, image.ravel().astype("float64"), bounds=bounds, maxfun=max_evals
        )
        return x.reshape(shape).astype("float32"), best, count[0]


class _AdamStep:
    """Adam on the image: Keras' own optimizer on a `keras.Variable` holding it (the gradient one
    compiled evaluation, the update Keras' Adam, which runs on every backend)."""

    def __init__(self, transfer: StyleTransfer, image: np.ndarray, learning_rate: float):
        self.transfer = transfer
        self.image = keras.Variable(np.asarray(image, "float32")[None], name="style_image")
        self.optimizer = keras.optimizers.Adam(learning_rate, beta_1=0.9, beta_2=0.999)
        self.optimizer.build([self.image])
        self.lr = learning_rate

    def _update(self):
        terms, grads = self.transfer._loss_and_grads(self.image.value)
        self.optimizer.apply([grads], [self.image])
        if self.transfer.settings.bounded:
            self.image.assign(keras.ops.clip(self.image.value, 0.0, 255.0))
        return terms

    def round(self, steps: int):
        for _ in range(steps):
            terms = self._update()
        values = {k: float(v) for k, v in terms.items()}  # before the round's last update
        return keras.ops.convert_to_numpy(self.image.value)[0], values, steps


def summary(result: StyleResult) -> dict[str, float]:
    """The numbers a run logs: loss at the first and last iteration, and the time."""
    first, last = result.history[0], result.history[-1]
    return {
        "loss_first": first["loss"],
        "loss_final": last["loss"],
        "content_loss_final": last["content_loss"],
        "style_loss_final": last["style_loss"],
        "tv_loss_final": last["tv_loss"],
        "loss_drop": 1.0 - last["loss"] / first["loss"] if first["loss"] else 0.0,
        "seconds_per_iteration": result.seconds_per_iteration,
        "seconds_per_evaluation": result.seconds_per_evaluation,
        "evaluations": result.evaluations,
        "seconds": result.seconds,
    }


def settings_dict(settings: Settings) -> dict[str, Any]:
    return asdict(settings)


__all__ = [
    "BOOK_SOURCE",
    "Settings",
    "StyleResult",
    "StyleTransfer",
    "content_loss",
    "gram_matrix",
    "settings_dict",
    "style_loss",
    "summary",
    "total_variation_loss",
]
