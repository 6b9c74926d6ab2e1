"""Procedurally generated (synthetic) data sets: any size and class count, for testing pipelines.

They are labelled synthetic (`Dataset.synthetic`, the name, `source`) wherever they are shown: a
result on them says the pipeline works, never how a model does on real images.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from cvlab.data.catalog import register_dataset
from cvlab.data.dataset import Dataset, stratified_splits

SHAPES_MIN_SIZE = 8
SHAPES_MAX_SIZE = 512

# Signed distance functions of unit-sized shapes (inside < 0), in shape coordinates u, v where the
# shape fits in the unit disc. Vectorised over arrays of any shape.
Sdf = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]


def _box(u: np.ndarray, v: np.ndarray, bu: float, bv: float) -> np.ndarray:
    qu, qv = np.abs(u) - bu, np.abs(v) - bv
    outside = np.hypot(np.maximum(qu, 0), np.maximum(qv, 0))
    return outside + np.minimum(np.maximum(qu, qv), 0)


def _circle(u, v, _):
    return np.hypot(u, v) - 0.8


def _square(u, v, _):
    return _box(u, v, 0.65, 0.65)


def _diamond(u, v, _):
    s = math.sqrt(0.5)
    return _box((u + v) * s, (u - v) * s, 0.6, 0.6)


def _triangle(u, v, _):
    # equilateral triangle of half side r (after Inigo Quilez's sdEquilateralTriangle)
    r, k = 0.78, math.sqrt(3.0)
    px, py = np.abs(u) - r, -v + r / k
    fold = px + k * py > 0
    px, py = np.where(fold, (px - k * py) / 2, px), np.where(fold, (-k * px - py) / 2, py)
    px = px - np.clip(px, -2 * r, 0)
    return -np.hypot(px, py) * np.sign(py)


def _cross(u, v, _):
    return np.minimum(_box(u, v, 0.8, 0.24), _box(u, v, 0.24, 0.8))


def _ring(u, v, _):
    return np.abs(np.hypot(u, v) - 0.6) - 0.2


def _star(u, v, _):
    # five-pointed star (after Inigo Quilez's sdStar5): outer radius 0.9, inner ratio 0.45
    r, rf = 0.9, 0.45
    k1x, k1y = 0.809016994375, -0.587785252292
    px, py = np.abs(u), -v
    for kx, ky in ((k1x, k1y), (-k1x, k1y)):
        d = 2 * np.maximum(kx * px + ky * py, 0)
        px, py = px - d * kx, py - d * ky
    px, py = np.abs(px), py - r
    bax, bay = rf * -k1y, rf * k1x - 1
    h = np.clip((px * bax + py * bay) / (bax * bax + bay * bay), 0, r)
    return np.hypot(px - bax * h, py - bay * h) * np.sign(py * bax - px * bay)


def _ellipse(u, v, _):
    a, b = 0.85, 0.42
    return (np.hypot(u / a, v / b) - 1) * b


def _crescent(u, v, _):
    return np.maximum(np.hypot(u, v) - 0.8, -(np.hypot(u - 0.42, v) - 0.62))


def _stripes(t: np.ndarray, phase: np.ndarray) -> np.ndarray:
    period = 1.4 / 3.5
    w = np.mod(t + phase * period, period) - period / 2
    return np.abs(w) - period / 4


def _hstripes(u, v, phase):
    return np.maximum(_box(u, v, 0.7, 0.7), _stripes(v, phase))


def _vstripes(u, v, phase):
    return np.maximum(_box(u, v, 0.7, 0.7), _stripes(u, phase))


def _checkerboard(u, v, phase):
    cell = 1.4 / 4
    su, sv = (u + 0.7) / cell, (v + 0.7) / cell
    on = (np.floor(su) + np.floor(sv)) % 2 == 0
    fu, fv = su - np.floor(su), sv - np.floor(sv)
    edge = cell * np.minimum(np.minimum(fu, 1 - fu), np.minimum(fv, 1 - fv))
    return np.maximum(_box(u, v, 0.7, 0.7), np.where(on, -edge, edge))


# kind -> (signed distance, largest rotation in degrees). Shapes that another class turns into
# (square <-> diamond, horizontal <-> vertical stripes) rotate by at most ±15°, so they stay apart.
SHAPE_KINDS: dict[str, tuple[Sdf, float]] = {
    "circle": (_circle, 180.0),
    "square": (_square, 15.0),
    "triangle": (_triangle, 180.0),
    "cross": (_cross, 180.0),
    "ring": (_ring, 180.0),
    "star": (_star, 180.0),
    "diamond": (_diamond, 15.0),
    "horizontal-stripes": (_hstripes, 15.0),
    "vertical-stripes": (_vstripes, 15.0),
    "checkerboard": (_checkerboard, 180.0),
    "ellipse": (_ellipse, 180.0),
    "crescent": (_crescent, 180.0),
}
SHAPE_NAMES = list(SHAPE_KINDS)


def _colours(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Random foreground and background RGB colours at least 0.45 apart (Euclidean)."""
    fg, bg = rng.uniform(size=(n, 3)), rng.uniform(size=(n, 3))
    for _ in range(100):
        bad = np.linalg.norm(fg - bg, axis=1) < 0.45
        if not bad.any():
            break
        fg[bad] = rng.uniform(size=(int(bad.sum()), 3))
    else:  # practically never: fall back to the opposite corner of the colour cube
        fg[bad] = 1 - np.round(bg[bad])
    return fg, bg


def _upsample_matrix(coarse: int, size: int) -> np.ndarray:
    """(size, coarse) bilinear interpolation weights from a coarse grid to `size` pixels."""
    pos = (np.arange(size) + 0.5) / size * (coarse - 1)
    lo = np.minimum(np.floor(pos).astype(int), coarse - 2)
    frac = pos - lo
    m = np.zeros((size, coarse))
    m[np.arange(size), lo] = 1 - frac
    m[np.arange(size), lo + 1] = frac
    return m


def _render_kind(
    kind: str, n: int, size: int, noise: float, rng: np.random.Generator
) -> np.ndarray:
    """`n` images (n, size, size, 3) float32 of one shape kind with random pose and colours."""
    sdf, max_rot = SHAPE_KINDS[kind]
    radius = rng.uniform(0.28, 0.47, size=n) * size  # half the extent of the shape, in pixels
    cx = rng.uniform(radius, size - radius)
    cy = rng.uniform(radius, size - radius)
    angle = np.deg2rad(rng.uniform(-max_rot, max_rot, size=n))
    phase = rng.uniform(size=n)  # where stripe patterns start
    fg, bg = _colours(rng, n)
    shade = rng.uniform(-0.5, 0.5, size=(n, 2))  # a linear lighting gradient across the image
    f32 = np.float32  # pixel maths in float32: half the memory and time of float64 at 512 px
    radius, cx, cy, phase, fg, bg, shade = (
        t.astype(f32) for t in (radius, cx, cy, phase, fg, bg, shade)
    )
    cos, sin = np.cos(angle).astype(f32), np.sin(angle).astype(f32)
    m = _upsample_matrix(5, size).astype(f32)

    out = np.empty((n, size, size, 3), dtype=f32)
    pix = np.arange(size, dtype=f32) + f32(0.5)
    chunk = max(1, 2**21 // (size * size))
    for s in range(0, n, chunk):
        e = min(n, s + chunk)
        r, c, a = radius[s:e, None, None], cos[s:e, None, None], sin[s:e, None, None]
        dx = pix[None, None, :] - cx[s:e, None, None]
        dy = pix[None, :, None] - cy[s:e, None, None]
        u = (c * dx + a * dy) / r
        v = (-a * dx + c * dy) / r
        dist = sdf(u, v, phase[s:e, None, None]) * r  # in pixels
        mask = np.clip(f32(0.5) - dist, 0, 1)[..., None]  # antialiased edge one pixel wide
        ramp = (
            shade[s:e, 0, None, None] * (pix[None, None, :] / f32(size) - f32(0.5))
            + shade[s:e, 1, None, None] * (pix[None, :, None] / f32(size) - f32(0.5))
        )[..., None]
        back = bg[s:e, None, None, :] + f32(0.3) * ramp
        img = back * (1 - mask) + fg[s:e, None, None, :] * mask
        if noise > 0:
            # smooth background texture (a coarse random field, bilinearly upsampled) plus grain
            coarse = rng.standard_normal((e - s, 5, 5, 3), dtype=f32)
            texture = np.einsum("hi,nijc,wj->nhwc", m, coarse, m, optimize=True)
            grain = rng.standard_normal(img.shape, dtype=f32)
            img += f32(noise) * (texture * (1 - f32(0.5) * mask) + f32(0.5) * grain)
        out[s:e] = np.clip(img, 0, 1)
    return out


@register_dataset(
    name="shapes",
)
def load_shapes(
    *,
    size: int = 32,
    num_classes: int = 3,
    samples_per_class: int = 200,
    val_fraction: float = 0.1,
    test_fraction: float = 0.2,
    seed: int = 42,
    noise: float = 0.1,
) -> Dataset:
    """SYNTHETIC shapes: one class per shape kind (circle, square, triangle, ... see SHAPE_NAMES;
    the first `num_classes`), drawn at a random position, scale, rotation and colour on a
    textured, noisy background. Any size (8–512 px) and 2–12 classes, for testing pipelines at
    any resolution; deterministic per seed. Never report a result on it as a real result.

    `noise` is the strength of the background texture and pixel grain (0 gives clean images).
    """
    if not isinstance(size, int) or not SHAPES_MIN_SIZE <= size <= SHAPES_MAX_SIZE:
        raise ValueError(f"size={size!r}: shapes can be {SHAPES_MIN_SIZE} to {SHAPES_MAX_SIZE} px")
    if not isinstance(num_classes, int) or not 2 <= num_classes <= len(SHAPE_NAMES):
        raise ValueError(
            f"num_classes={num_classes!r}: give 2 to {len(SHAPE_NAMES)} (kinds: {SHAPE_NAMES})"
        )
    if not isinstance(samples_per_class, int) or samples_per_class < 1:
        raise ValueError(f"samples_per_class={samples_per_class!r}: give a positive integer")
    if noise < 0:
        raise ValueError(f"noise={noise!r}: give 0 or more")
    kinds = SHAPE_NAMES[:num_classes]
    # One stream per (seed, class): a class's images do not depend on how many classes there are.
    x = np.concatenate(
        [
            _render_kind(kind, samples_per_class, size, noise, np.random.default_rng([seed, k]))
            for k, kind in enumerate(kinds)
        ]
    )
    y = np.repeat(np.arange(num_classes, dtype=np.int64), samples_per_class)
    try:
        splits = stratified_splits(
            x, y, val_fraction=val_fraction, test_fraction=test_fraction, seed=seed
        )
    except ValueError as exc:
        raise ValueError(
            f"samples_per_class={samples_per_class} is too few to put each of the {num_classes} "
            f"classes in train, val and test (val_fraction={val_fraction}, "
            f"test_fraction={test_fraction}): {exc}"
        ) from exc
    return Dataset(
        "shapes (synthetic)",
        *splits,
        class_names=kinds,
        synthetic=True,
        source="procedurally generated (synthetic)",
        info={
            "synthetic": True,
            "kinds": kinds,
            "size": size,
            "samples_per_class": samples_per_class,
            "noise": noise,
        },
    )
