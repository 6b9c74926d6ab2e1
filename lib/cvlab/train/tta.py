"""Test-time augmentation (TTA): classify several augmented copies of each test image (mirror,
shifts, crops) and average the probabilities, so one unlucky framing weighs less.

The copies are fixed views, the same for every image, drawn once from `seed`: the same config
gives the same views and the same predictions. The first view is the image itself and the
second its mirror (when flips are on); the rest combine a random shift or crop with a flip on
every other view. With only the identity view, TTA is plain prediction.

    result = tta_predict(model, x_test, TTAConfig(copies=8, shift=0.1, crop=0.1, seed=1))
    score_predictions(result.probabilities, y_test, class_names, run=run, prefix="tta_")
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from cvlab.figures import new_figure
from cvlab.image_prep import resize

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = [
    "TTAConfig",
    "TTAResult",
    "View",
    "accuracy_by_copies",
    "apply_view",
    "copies_figure",
    "plan_views",
    "tta_predict",
    "views_figure",
]


@dataclass(frozen=True)
class TTAConfig:
    """How many copies of each test image to classify, and how they may differ.

    `shift` and `crop` are fractions of the image side: a shift moves the image by up to that
    much (edges repeated), a crop keeps a window smaller by up to that much and resizes it
    back (a zoom in). 0 turns either off; with both off and no flips every copy is the original.
    """

    copies: int = 8
    horizontal_flip: bool = True
    shift: float = 0.1
    crop: float = 0.1
    include_original: bool = True
    seed: int = 0

    def __post_init__(self) -> None:
        if isinstance(self.copies, bool) or int(self.copies) != self.copies or self.copies < 1:
            raise ValueError(f"copies={self.copies!r}: the number of views, 1 or more")
        for name in ("shift", "crop"):
            value = getattr(self, name)
            if not 0.0 <= value < 0.5:
                raise ValueError(f"{name}={value}: a fraction of the image side in [0, 0.5)")

    @classmethod
    def from_options(cls, options: TTAConfig | dict[str, Any] | None, seed: int = 0) -> TTAConfig:
        """A config from a notebook's dict parameter (`seed` unless the dict sets one)."""
        if isinstance(options, cls):
            return options
        options = dict(options or {})
        unknown = sorted(set(options) - set(cls.__dataclass_fields__))
        if unknown:
            raise ValueError(
                f"unknown TTA option(s) {unknown}; known: {sorted(cls.__dataclass_fields__)}"
            )
        return cls(**{"seed": seed, **options})


@dataclass(frozen=True)
class View:
    """One augmented copy: mirror or not, then a shift (pixels; + moves content right/down),
    then an optional crop window (top, left, height, width) resized back to the full size."""

    flip: bool = False
    dy: int = 0
    dx: int = 0
    crop: tuple[int, int, int, int] | None = None

    @property
    def is_identity(self) -> bool:
        return not self.flip and self.dy == 0 and self.dx == 0 and self.crop is None

    def describe(self) -> str:
        parts = ["mirror"] if self.flip else []
        if self.dy or self.dx:
            parts.append(f"shift ({self.dy:+d}, {self.dx:+d}) px")
        if self.crop is not None:
            top, left, h, w = self.crop
            parts.append(f"crop {h}x{w} at ({top}, {left})")
        return ", ".join(parts) or "original"


def plan_views(config: TTAConfig, height: int, width: int) -> list[View]:
    """The `config.copies` views for images of `height`×`width`, the same for every image and
    fixed by `config.seed`: the original first, then its mirror, then random shifts or crops
    (flipped on every other view when flips are on)."""
    rng = np.random.default_rng(config.seed)
    max_dy, max_dx = int(config.shift * height), int(config.shift * width)
    random_geometry = max_dy > 0 or max_dx > 0 or config.crop > 0
    views: list[View] = []
    if config.include_original:
        views.append(View())
    if config.horizontal_flip and len(views) < config.copies:
        views.append(View(flip=True))
    while len(views) < config.copies:
        flip = config.horizontal_flip and len(views) % 2 == 1
        if not random_geometry:
            views.append(View(flip=flip))
            continue
        use_crop = config.crop > 0 and (max_dy == max_dx == 0 or rng.random() < 0.5)
        if use_crop:
            scale = 1.0 - rng.uniform(0.0, config.crop)
            h = min(max(1, round(height * scale)), height - 1)  # at least one pixel cut
            w = min(max(1, round(width * scale)), width - 1)
            top, left = int(rng.integers(0, height - h + 1)), int(rng.integers(0, width - w + 1))
            views.append(View(flip=flip, crop=(top, left, h, w)))
        else:
            dy = dx = 0
            while dy == dx == 0:  # a shift of nothing would only repeat the original
                dy = int(rng.integers(-max_dy, max_dy + 1))
                dx = int(rng.integers(-max_dx, max_dx + 1))
            views.append(View(flip=flip, dy=dy, dx=dx))
    return views


def _shift(images: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """Move the content by (dy, dx) pixels, repeating the edge rows and columns."""
    h, w = images.shape[1:3]
    pad = ((0, 0), (max(dy, 0), max(-dy, 0)), (max(dx, 0), max(-dx, 0)), (0, 0))
    padded = np.pad(images, pad, mode="edge")
    top, left = max(-dy, 0), max(-dx, 0)
    return padded[:, top : top + h, left : left + w]


def apply_view(images: np.ndarray, view: View) -> np.ndarray:
    """The batch `images` (N, H, W, C) as seen through `view`, same shape and dtype."""
    images = np.asarray(images)
    if images.ndim != 4:
        raise ValueError(f"expected a batch of images (N, H, W, C), got shape {images.shape}")
    out = images[:, :, ::-1] if view.flip else images
    if view.dy or view.dx:
        out = _shift(out, view.dy, view.dx)
    if view.crop is not None:
        top, left, h, w = view.crop
        window = out[:, top : top + h, left : left + w]
        out = resize(window, images.shape[1:3])
    return np.ascontiguousarray(out, dtype=images.dtype)


@dataclass
class TTAResult:
    """Averaged probabilities (N × classes), the views used, and optionally each view's own
    probabilities (views × N × classes) for `accuracy_by_copies`."""

    probabilities: np.ndarray
    views: list[View]
    per_view: np.ndarray | None = None


def _predictor(model: Any, batch_size: int) -> Callable[[np.ndarray], np.ndarray]:
    if hasattr(model, "predict"):
        return lambda x: np.asarray(model.predict(x, batch_size=batch_size, verbose=0))
    if callable(model):
        import keras  # lazy: keras (a torch tensor that carries its grad refuses np.asarray)

        return lambda x: keras.ops.convert_to_numpy(model(x))
    raise TypeError(f"model: a Keras model or a function of a batch, got {type(model).__name__}")


def tta_predict(
    model: Any,
    images: np.ndarray,
    config: TTAConfig | dict[str, Any] | None = None,
    *,
    batch_size: int = 64,
    chunk: int = 512,
    keep_views: bool = False,
) -> TTAResult:
    """Class probabilities of `images` averaged over the views of `config`.

    `model` is a Keras model (its `predict`) or any function from a batch to probabilities;
    `images` must already be on the model's input scale (the views only move pixels). Images
    go through in chunks of `chunk`, so memory holds one augmented chunk at a time.
    """
    config = TTAConfig.from_options(config)
    images = np.asarray(images)
    if images.ndim != 4 or len(images) == 0:
        raise ValueError(f"images: a non-empty batch (N, H, W, C), got shape {images.shape}")
    views = plan_views(config, images.shape[1], images.shape[2])
    predict = _predictor(model, batch_size)
    per_chunk = []
    for start in range(0, len(images), chunk):
        block = images[start : start + chunk]
        per_chunk.append(np.stack([predict(apply_view(block, view)) for view in views]))
    per_view = np.concatenate(per_chunk, axis=1)  # views × N × classes
    if per_view.ndim != 3:
        raise ValueError(
            f"the model returned shape {per_view.shape[1:]} per view; expected (N, classes)"
        )
    return TTAResult(per_view.mean(axis=0), views, per_view if keep_views else None)


def accuracy_by_copies(per_view: np.ndarray, labels: Sequence[int] | np.ndarray) -> list[float]:
    """Rank-1 accuracy of the average of the first k views, for k = 1 .. number of views
    (the first entry is the first view alone: plain prediction when it is the original)."""
    per_view = np.asarray(per_view)
    labels = np.asarray(labels).reshape(-1)
    running = np.cumsum(per_view, axis=0)
    return [float(np.mean(running[k].argmax(axis=1) == labels)) for k in range(len(per_view))]


def copies_figure(accuracies: Sequence[float], views: Sequence[View], title: str = "") -> Figure:
    """Rank-1 accuracy against the number of views averaged, each point named by its view."""

    fig, axes = new_figure(figsize=(7.0, 3.8))
    ax = axes[0, 0]
    ks = np.arange(1, len(accuracies) + 1)
    ax.plot(ks, accuracies, marker="o")
    ax.axhline(accuracies[0], color="grey", linestyle=":", label="first view alone")
    for k, acc, view in zip(ks, accuracies, views, strict=True):
        ax.annotate(view.describe(), (k, acc), fontsize=6, rotation=30, xytext=(2, 4),
                    textcoords="offset points")  # fmt: skip
    ax.set_xlabel("views averaged")
    ax.set_ylabel("test rank-1")
    ax.set_xticks(ks)
    ax.set_title(title or "test-time augmentation")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    return fig


def views_figure(image: np.ndarray, views: Sequence[View], *, scale: float = 1.0) -> Figure:
    """One image as each view shows it to the model (`scale`: divide pixels by it to draw,
    e.g. 255 for 0-255 images)."""

    columns = min(len(views), 8)
    rows = -(-len(views) // columns)
    fig, axes = new_figure(rows, columns, figsize=(1.7 * columns, 1.9 * rows))
    seen = [apply_view(np.asarray(image)[None], view)[0] for view in views]
    for k, ax in enumerate(axes.flat):
        ax.axis("off")
        if k < len(views):
            ax.imshow(np.clip(seen[k] / scale, 0.0, 1.0))
            ax.set_title(views[k].describe(), fontsize=6)
    fig.tight_layout()
    return fig
