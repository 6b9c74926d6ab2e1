"""DeepDream (Mordvintsev et al. 2015; book ch. 14): gradient *ascent* on the image, so that
chosen layers of a frozen ImageNet network fire harder, at several scales (octaves).

    net = feature_net("efficientnet_lite0", list(DREAM_LAYERS["efficientnet_lite0"]))
    result = DeepDream(net, DREAM_LAYERS["efficientnet_lite0"]).run(photo, octaves=3)
    result.image, result.octaves        # the dream (uint8) and what each octave reached

The book's procedure (ch. 14.2, after Chollet), step by step:

* loss = Σ over layers of weight · sum(activation²) / size(activation), with a 2-pixel border
  of each activation map left out (border artefacts);
* each gradient-ascent step moves the image by `step` times the gradient divided by its mean
  absolute value, and stops the octave once the loss passes `max_loss`;
* octaves: the image is dreamt on at `octaves` sizes, each `octave_scale` times the previous,
  smallest first; after each octave the detail lost by shrinking (the original at this size
  minus the shrunk original upscaled to it) is added back (*detail re-injection*).

Two things not in the book: `jitter` shifts the image by a random offset (wrapping round) before
each step and back after it, as Mordvintsev's original does, which hides the network's grid of
strides; and the image is kept in 0-255 pixels, the network's preprocessing inside `FeatureNet`,
so `step` is given in the book's unit (Inception's [-1, 1] input scale) and multiplied by 127.5.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import keras
import numpy as np

from cvlab.figures import new_figure
from cvlab.generative.features import (
    DREAM_LAYERS,
    OFFLINE,
    FeatureNet,
    as_rgb,
    resolve,
    to_uint8,
)
from cvlab.generative.gradients import compiled, value_and_grad

PIXELS_PER_UNIT = 127.5  # one unit of Inception's [-1, 1] input scale, in 0-255 pixels
BORDER = 2  # activation pixels left out of the loss on each side (the book's x[:, 2:-2, 2:-2])
BOOK = {
    "octaves": 3,
    "octave_scale": 1.4,
    "step": 0.001,
    "iterations": 50,
    "max_loss": 10.0,
}
BOOK_SOURCE = (
    "ch. 14.2 (Implementing DeepDream): InceptionV3 mixed2 (2.0) + mixed3 (0.5), 3 octaves of "
    "scale 1.4, step 0.001, 50 iterations, max loss 10"
)


def octave_sizes(size: tuple[int, int], octaves: int, scale: float) -> list[tuple[int, int]]:
    """The book's octave shapes, smallest first: size / scale^i for i = octaves-1 ... 0."""
    if octaves < 1 or scale <= 0:
        raise ValueError(f"octaves={octaves}, octave_scale={scale}: need octaves >= 1, scale > 0")
    height, width = size
    sizes = [(int(height / scale**i), int(width / scale**i)) for i in range(octaves)]
    return sizes[::-1]


def zoom(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize an HxWx3 float image to (h, w) with linear interpolation (the book's
    `scipy.ndimage.zoom(..., order=1)`)."""
    from scipy import ndimage

    factors = (size[0] / image.shape[0], size[1] / image.shape[1], 1.0)
    out = ndimage.zoom(image, factors, order=1)
    if out.shape[:2] != tuple(size):  # zoom rounds; a pixel off is cropped or padded
        out = np.pad(
            out[: size[0], : size[1]],
            ((0, max(0, size[0] - out.shape[0])), (0, max(0, size[1] - out.shape[1])), (0, 0)),
            mode="edge",
        )
    return out.astype("float32")


@dataclass
class Octave:
    """What one octave did."""

    index: int
    size: tuple[int, int]
    iterations: int  # steps taken (fewer than asked when the loss passed max_loss)
    stopped_early: bool
    loss_start: float
    loss_end: float
    activation_start: dict[str, float]  # per layer: mean squared activation (border left out)
    activation_end: dict[str, float]
    seconds: float


@dataclass
class DreamResult:
    image: np.ndarray  # uint8 HxWx3
    octaves: list[Octave]
    history: list[dict[str, float]]  # per step: iteration (all octaves), octave, loss
    backbone: str
    seconds: float  # gradient ascent only (the first, compiling, step of each size included)
    layer_weights: dict[str, float] = field(default_factory=dict)
    images: list[np.ndarray] = field(default_factory=list)  # uint8, after each octave

    @property
    def iterations(self) -> int:
        return sum(o.iterations for o in self.octaves)

    @property
    def seconds_per_iteration(self) -> float:
        return self.seconds / max(1, self.iterations)

    def table(self) -> list[dict[str, Any]]:
        """One row per octave (for a DataFrame): size, steps, loss and activation per layer."""
        rows = []
        for o in self.octaves:
            row: dict[str, Any] = {
                "octave": o.index, "height": o.size[0], "width": o.size[1],
                "iterations": o.iterations, "stopped_early": o.stopped_early,
                "loss_start": o.loss_start, "loss_end": o.loss_end, "seconds": o.seconds,
            }  # fmt: skip
            for layer in o.activation_end:
                row[f"{layer} start"] = o.activation_start[layer]
                row[f"{layer} end"] = o.activation_end[layer]
            rows.append(row)
        return rows


class DeepDream:
    """Gradient ascent on `net`'s layers, weighted by `layer_weights` ({layer: weight})."""

    def __init__(self, net: FeatureNet, layer_weights: dict[str, float]):
        if not layer_weights:
            raise ValueError("layer_weights is empty: name at least one layer to dream on")
        missing = [layer for layer in layer_weights if layer not in net.layers]
        if missing:
            raise ValueError(f"the network was cut at {net.layers}, not at {missing}")
        self.net = net
        self.layer_weights = {k: float(v) for k, v in layer_weights.items()}
        weights = net.model.variables
        self._grad = value_and_grad(self._loss_and_terms, weights)  # compiled per backend
        self._terms_fn = compiled(self._terms, weights)

    @classmethod
    def prepare(cls, backbone: str, layer_weights: dict[str, float]) -> DeepDream:
        """On `backbone`, or, where its weights are missing, on the offline efficientnet_lite0
        with its own layers (`self.net.note` says so)."""
        fallback = DREAM_LAYERS[OFFLINE]
        net = resolve(backbone, list(layer_weights), list(fallback))
        return cls(net, layer_weights if net.name == backbone else fallback)

    def _terms(self, image):
        """Per layer: sum(activation²) over the map less its border / size of the whole map."""
        ops = keras.ops
        acts = self.net(image)
        terms = {}
        for layer in self.layer_weights:
            x = ops.cast(acts[layer], "float32")  # float16 activations would overflow the sum
            scaling = ops.prod(ops.cast(ops.shape(x), "float32"))
            terms[layer] = ops.sum(ops.square(x[:, BORDER:-BORDER, BORDER:-BORDER, :])) / scaling
        return terms

    def _loss_and_terms(self, image):
        terms = self._terms(image)
        return sum(self.layer_weights[k] * terms[k] for k in self.layer_weights), terms

    def _ascent_step(self, image, step: float, shift: tuple[int, int]):
        """One step from `image` (1, h, w, 3): the gradient at the image rolled by `shift`,
        divided by its mean absolute value, rolled back; the new image, loss and terms. The
        rolls stay outside the compiled gradient (a roll is a permutation, so rolling the
        gradient back is the gradient at the unrolled image) and take plain ints everywhere."""
        ops = keras.ops
        rolled = ops.roll(image, shift, axis=(1, 2)) if any(shift) else image
        loss, terms, grads = self._grad(rolled)
        grads = grads / ops.maximum(ops.mean(ops.abs(grads)), 1e-7)
        if any(shift):
            grads = ops.roll(grads, (-shift[0], -shift[1]), axis=(1, 2))
        return image + step * grads, loss, terms

    def activations(self, image) -> dict[str, float]:
        """Each dream layer's mean squared activation (border left out) for an HxWx3 image."""
        terms = self._terms_fn(keras.ops.convert_to_tensor(np.asarray(image, "float32")[None]))
        return {k: float(v) for k, v in terms.items()}

    def loss(self, image) -> float:
        acts = self.activations(image)
        return sum(self.layer_weights[k] * acts[k] for k in self.layer_weights)

    def ascend(
        self,
        image: np.ndarray,
        iterations: int,
        step: float,
        *,
        max_loss: float = np.inf,
        jitter: int = 0,
        rng: np.random.Generator | None = None,
        on_step: Callable[[float], Any] | None = None,
    ) -> tuple[np.ndarray, int, bool]:
        """The book's gradient_ascent on one octave: the image, steps taken, stopped early."""
        rng = rng or np.random.default_rng(0)
        x = keras.ops.convert_to_tensor(np.asarray(image, dtype="float32")[None])
        pixel_step = step * PIXELS_PER_UNIT
        for i in range(iterations):
            shift = rng.integers(-jitter, jitter + 1, size=2) if jitter else np.zeros(2, int)
            new, loss, _ = self._ascent_step(x, pixel_step, (int(shift[0]), int(shift[1])))
            loss = float(loss)
            if loss > max_loss:  # the book tests the loss before taking the step
                return keras.ops.convert_to_numpy(x[0]), i, True
            x = new
            if on_step is not None:
                on_step(loss)
        return keras.ops.convert_to_numpy(x[0]), iterations, False

    def run(
        self,
        image,
        *,
        octaves: int = BOOK["octaves"],
        octave_scale: float = BOOK["octave_scale"],
        iterations: int = BOOK["iterations"],
        step: float = BOOK["step"],
        max_loss: float = BOOK["max_loss"],
        jitter: int = 0,
        seed: int = 0,
        callback: Callable[[int, int, float], Any] | None = None,
    ) -> DreamResult:
        """Dream on `image` (HxWx3, uint8 or 0-255 floats) over octaves with detail re-injection.
        `callback(iteration, octave, loss)` after every step (iteration counts over octaves)."""
        original = as_rgb(image)
        sizes = octave_sizes(original.shape[:2], octaves, octave_scale)
        rng = np.random.default_rng(seed)
        shrunk = zoom(original, sizes[0])
        dream = original
        history: list[dict[str, float]] = []
        done: list[Octave] = []
        images: list[np.ndarray] = []
        seconds = 0.0
        for index, size in enumerate(sizes):
            dream = zoom(dream, size)
            before = self.activations(dream)

            def on_step(loss: float, index: int = index) -> None:
                history.append({"iteration": len(history) + 1, "octave": index, "loss": loss})
                if callback is not None:
                    callback(len(history), index, loss)

            tick = time.perf_counter()
            dream, steps, early = self.ascend(
                dream, iterations, step, max_loss=max_loss, jitter=jitter, rng=rng,
                on_step=on_step,
            )  # fmt: skip
            elapsed = time.perf_counter() - tick
            seconds += elapsed
            after = self.activations(dream)
            done.append(
                Octave(
                    index,
                    size,
                    steps,
                    early,
                    self._weighted(before),
                    self._weighted(after),
                    before,
                    after,
                    elapsed,
                )  # fmt: skip
            )
            # detail re-injection: what shrinking the original lost at this size
            upscaled = zoom(shrunk, size)
            downsampled = zoom(original, size)
            dream = dream + (downsampled - upscaled)
            shrunk = zoom(original, size)
            images.append(to_uint8(dream))
        return DreamResult(
            to_uint8(dream), done, history, self.net.name, seconds, dict(self.layer_weights),
            images,
        )  # fmt: skip

    def _weighted(self, activations: dict[str, float]) -> float:
        return sum(self.layer_weights[k] * activations[k] for k in self.layer_weights)


def octave_figure(result: DreamResult):
    """Loss per step across the octaves, and each layer's activation at each octave's start
    and end (a matplotlib Figure, no pyplot)."""

    fig, axes = new_figure(1, 2, figsize=(11, 3.6))
    ax = axes[0][0]
    for o in result.octaves:
        points = [(h["iteration"], h["loss"]) for h in result.history if h["octave"] == o.index]
        if points:
            xs, ys = zip(*points, strict=True)
            ax.plot(xs, ys, label=f"octave {o.index} ({o.size[1]}×{o.size[0]})")
    ax.set_xlabel("step (all octaves)")
    ax.set_ylabel("dream loss")
    ax.set_title(f"gradient ascent ({result.backbone})")
    ax.legend(fontsize=8)
    ax = axes[0][1]
    labels = [f"octave {o.index}" for o in result.octaves]
    positions = np.arange(len(result.octaves))
    width = 0.8 / (2 * max(1, len(result.layer_weights)))
    for j, layer in enumerate(result.layer_weights):
        start = [o.activation_start[layer] for o in result.octaves]
        end = [o.activation_end[layer] for o in result.octaves]
        ax.bar(positions + (2 * j) * width, start, width, label=f"{layer} start", alpha=0.5)
        ax.bar(positions + (2 * j + 1) * width, end, width, label=f"{layer} end")
    ax.set_xticks(positions + width * (len(result.layer_weights) - 0.5), labels)
    ax.set_ylabel("mean squared activation")
    ax.set_title("activation reached per octave")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


__all__ = [
    "BOOK",
    "BOOK_SOURCE",
    "DeepDream",
    "DreamResult",
    "Octave",
    "octave_figure",
    "octave_sizes",
    "zoom",
]
