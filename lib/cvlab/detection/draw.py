"""Drawing detections: boxes with their labels and probabilities on a copy of the image."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from cvlab.detection.detector import Detection
from cvlab.detection.pyramid import _pair, image_pyramid
from cvlab.detection.sliding_window import window_positions

# distinct colours for the labels of one image, in the order the labels first appear
PALETTE = [
    (0, 200, 0), (230, 25, 75), (0, 130, 200), (245, 130, 48), (145, 30, 180),
    (70, 240, 240), (240, 50, 230), (210, 245, 60), (0, 128, 128), (170, 110, 40),
]  # fmt: skip


def label_colours(detections: Sequence[Detection]) -> dict[str, tuple[int, int, int]]:
    colours: dict[str, tuple[int, int, int]] = {}
    for det in detections:
        if det.label not in colours:
            colours[det.label] = PALETTE[len(colours) % len(PALETTE)]
    return colours


def draw_detections(
    image: np.ndarray,
    detections: Sequence[Detection],
    *,
    width: int | None = None,
    labels: bool = True,
    colour: tuple[int, int, int] | None = None,
) -> np.ndarray:
    """A uint8 copy of `image` with each detection's box drawn and, with `labels`, captioned
    "label 87%". One colour per label (or `colour` for all); the line width follows the image."""
    canvas = Image.fromarray(np.asarray(image, dtype=np.uint8)).convert("RGB")
    draw = ImageDraw.Draw(canvas)
    side = min(canvas.size)
    width = width or max(2, side // 150)
    font = ImageFont.load_default(size=max(12, side // 28))
    colours = label_colours(detections)
    for det in detections:
        fill = colour or colours[det.label]
        x1, y1, x2, y2 = det.box
        draw.rectangle((x1, y1, x2 - 1, y2 - 1), outline=fill, width=width)
        if labels:
            text = f"{det.label} {det.probability:.0%}"
            left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
            tw, th = right - left, bottom - top
            ty = y1 if y1 - th - 6 < 0 else y1 - th - 6
            draw.rectangle((x1, ty, x1 + tw + 6, ty + th + 6), fill=fill)
            draw.text((x1 + 3 - left, ty + 3 - top), text, fill=(255, 255, 255), font=font)
    return np.asarray(canvas)


def pyramid_figure(image: np.ndarray, scale: float, window, step: int):
    """The pyramid layers side by side, each drawn at its own size with its first window and
    the count of windows that fit: what the detector scans."""
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    win_w, win_h = _pair(window, "window")
    layers = list(image_pyramid(np.asarray(image, dtype=np.uint8), scale, (win_w, win_h)))
    widths = [layer.shape[1] for layer in layers]
    fig = Figure(figsize=(min(16, 2 + 10 * sum(widths) / widths[0] / 2), 4.2))
    axes = fig.subplots(1, len(layers), width_ratios=widths, squeeze=False)[0]
    for k, (ax, layer) in enumerate(zip(axes, layers, strict=True)):
        count = len(window_positions(layer.shape, step, (win_w, win_h)))
        ax.imshow(layer)
        ax.set_xlim(0, widths[0])
        ax.set_ylim(layers[0].shape[0], 0)
        ax.add_patch(Rectangle((0, 0), win_w, win_h, fill=False, color="lime", linewidth=2))
        ax.set_title(f"layer {k}: {layer.shape[1]}×{layer.shape[0]}\n{count} windows", fontsize=9)
        ax.set_axis_off()
    fig.suptitle(f"pyramid ×1/{scale:g}, window {win_w}×{win_h}, step {step}", fontsize=10)
    fig.tight_layout()
    return fig


__all__ = ["PALETTE", "draw_detections", "label_colours", "pyramid_figure"]
