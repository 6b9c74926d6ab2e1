"""The offline ImageNet backbone: `efficientnet_lite0` inference speed at 224 px, and its accuracy.

Images per second over the 1,000 `imagenet-sample` photos, three ways side by side in one run,
each a full pass in batches through `predict_on_batch` (the steady form: `model.predict` stalls
erratically on a 2-core machine, between about 55 and 105 images/s):

A. plain: the evaluation crops (short side 256, centre 224) as an in-memory float32 array;
B. the cvlab pipeline: the same crops as uint8 through `cvlab.data.make_pipeline` (cast,
   batching and prefetch in tf.data), as a notebook feeds a data set to the backbone;
C. tf.data from the JPEG files: read, decode, resize and crop in parallel with inference.

Then top-1 and top-5 on the sample (bar: ≥ 85% and ≥ 95%; 87.3% / 97.2% expected), from A's
outputs, and from C's (TensorFlow's decoder and resize instead of Pillow's).

    make bench        # or: python bench/backbone.py [--batch-size 32] [--images 1000]
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

import cvlab.data
import cvlab.models
from cvlab.errors import DatasetNotFoundError
from cvlab.models.imagenet import EVAL_RESIZE, EVAL_SIZE, center_crops, top_k_accuracy

TOP1_BAR, TOP5_BAR = 0.85, 0.95


def timed_pass(model, batches) -> tuple[float, np.ndarray]:
    """Seconds for one pass of `predict_on_batch` over `batches` (arrays or tf.data), and the
    outputs in order."""
    outputs = []
    start = time.perf_counter()
    for x in batches:
        outputs.append(np.asarray(model.predict_on_batch(x)))
    return time.perf_counter() - start, np.concatenate(outputs)


def array_batches(x: np.ndarray, batch_size: int):
    for start in range(0, len(x), batch_size):
        yield x[start : start + batch_size]


def pipeline_batches(crops: np.ndarray, labels: np.ndarray, batch_size: int):
    # rescale=1.0: the backbone takes 0-255 pixels (make_pipeline would scale uint8 to [0, 1])
    ds = cvlab.data.make_pipeline(crops, labels, batch_size=batch_size, rescale=1.0)
    return (x for x, _ in ds)


def file_batches(paths, batch_size: int):
    """JPEG files -> evaluation crops (float32, 0-255) in tf.data, decoded in parallel."""
    import tensorflow as tf

    def load(path):
        image = tf.io.decode_jpeg(tf.io.read_file(path), channels=3)
        shape = tf.cast(tf.shape(image)[:2], tf.float32)
        scale = EVAL_RESIZE / tf.reduce_min(shape)
        size = tf.maximum(tf.cast(tf.round(shape * scale), tf.int32), EVAL_SIZE)
        image = tf.image.resize(image, size, method="bilinear", antialias=True)
        return tf.image.resize_with_crop_or_pad(image, EVAL_SIZE, EVAL_SIZE)

    ds = tf.data.Dataset.from_tensor_slices([str(p) for p in paths])
    ds = ds.map(load, num_parallel_calls=tf.data.AUTOTUNE)
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--images", type=int, default=1000, help="how many of the 1,000 to use")
    args = parser.parse_args()

    try:
        index = cvlab.data.index("imagenet-sample")
    except DatasetNotFoundError as exc:
        print(f"SKIPPED: {exc}")  # it names `cvlab data import imagenet-sample PATH`
        return 0
    paths, labels = index.splits["test"]
    paths, labels = paths[: args.images], labels[: args.images]

    start = time.perf_counter()
    crops = center_crops(paths)
    decode_s = time.perf_counter() - start
    x = crops.astype(np.float32)

    from cvlab.models import efficientnet_lite

    cached = efficientnet_lite.cache_path().is_file()
    start = time.perf_counter()
    model = cvlab.models.build("efficientnet_lite0")
    build_s = time.perf_counter() - start
    how = "loaded from" if cached else "converted from the wheel into"
    b = args.batch_size
    for warm in {b, len(x) % b} - {0}:  # trace every batch shape before timing
        model.predict_on_batch(x[:warm])

    a_s, scores = timed_pass(model, array_batches(x, b))
    b_s, b_scores = timed_pass(model, pipeline_batches(crops, labels, b))
    c_s, c_scores = timed_pass(model, file_batches(paths, b))
    np.testing.assert_allclose(b_scores, scores, atol=1e-5)  # the same inputs, the same outputs

    n = len(x)
    a, bp, c = n / a_s, n / b_s, n / c_s
    top1, top5 = top_k_accuracy(scores, labels, 1), top_k_accuracy(scores, labels, 5)
    c1, c5 = top_k_accuracy(c_scores, labels, 1), top_k_accuracy(c_scores, labels, 5)
    passed = top1 >= TOP1_BAR and top5 >= TOP5_BAR
    print(
        f"efficientnet_lite0, ImageNet weights {how} {efficientnet_lite.cache_path()} "
        f"(import, build and load: {build_s:.1f} s), {n} imagenet-sample images at {EVAL_SIZE}×{EVAL_SIZE}, batch {b}, "
        f"{os.cpu_count()} CPU cores, all through predict_on_batch"
    )
    print(
        f"  Pillow decode + evaluation crop, one thread, before A and B: {n / decode_s:6.0f} images/s"
    )
    print(f"  A in-memory float32 array              {a:7.1f} images/s")
    print(f"  B cvlab pipeline (make_pipeline)       {bp:7.1f} images/s   B / A = {bp / a:.2f}")
    print(f"  C tf.data from the JPEG files          {c:7.1f} images/s   C / A = {c / a:.2f}")
    print(
        f"imagenet-sample (short side {EVAL_RESIZE}, centre crop {EVAL_SIZE}): top-1 {top1:.1%}, "
        f"top-5 {top5:.1%} (bar ≥ {TOP1_BAR:.0%} / ≥ {TOP5_BAR:.0%}): {'PASS' if passed else 'FAIL'}"
    )
    print(f"  with TensorFlow's decode and resize (C): top-1 {c1:.1%}, top-5 {c5:.1%}")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
