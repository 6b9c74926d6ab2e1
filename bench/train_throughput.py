"""Does the workbench slow training down? Training images per second of each registry model at its
native input size, fed two ways side by side in one run:

A. `model.fit` on in-memory float arrays (the plain way);
B. `model.fit` on the cvlab pipeline (`cvlab.data.make_pipeline`: uint8 images, cast, mean
   subtraction, shuffling, batching and prefetch in tf.data), with the run record's Keras callback.

Target: B / A ≥ 0.95 for every model. Then the per-epoch time those rates imply for the book's
full recipes on this machine (CIFAR-10: 50,000 training images; Tiny ImageNet: 100,000).

    python bench/train_throughput.py [--models resnet-cifar10,minigooglenet] [--images 256]
"""

from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np

import cvlab
import cvlab.models
from cvlab.data.pipeline import make_pipeline
from cvlab.data.preprocess import compute_rgb_means, subtract_means

# name -> (registry name, options, input shape, classes)
MODELS = {
    "lenet": ("lenet", {}, (28, 28, 1), 10),
    "minivggnet": ("minivggnet", {}, (32, 32, 3), 10),
    "minigooglenet": ("minigooglenet", {}, (32, 32, 3), 10),
    "resnet-cifar10": ("resnet", {"preset": "cifar10"}, (32, 32, 3), 10),
    "deepergooglenet": ("deepergooglenet", {}, (64, 64, 3), 200),
    "resnet-tiny-imagenet": ("resnet", {"preset": "tiny-imagenet"}, (64, 64, 3), 200),
    "alexnet": ("alexnet", {}, (227, 227, 3), 2),
}
RECIPES = {"resnet-cifar10": ("CIFAR-10", 50_000), "minigooglenet": ("CIFAR-10", 50_000),
           "resnet-tiny-imagenet": ("Tiny ImageNet", 100_000), "deepergooglenet": ("Tiny ImageNet", 100_000)}  # fmt: skip


def _model(name: str):
    import keras

    registry_name, options, shape, classes = MODELS[name]
    keras.utils.set_random_seed(0)
    model = cvlab.models.build(registry_name, input_shape=shape, classes=classes, **options)
    model.compile(
        optimizer=keras.optimizers.SGD(0.01, momentum=0.9), loss="sparse_categorical_crossentropy"
    )
    return model


def _timed_fit(model, data, *, batch_size: int | None = None, callbacks=()) -> float:
    """Seconds for one epoch: `data` is (x, y) arrays or a tf.data pipeline."""
    start = time.perf_counter()
    if isinstance(data, tuple):
        model.fit(*data, batch_size=batch_size, epochs=1, shuffle=True, verbose=0)
    else:
        model.fit(data, epochs=1, verbose=0, callbacks=list(callbacks))
    return time.perf_counter() - start


def measure(name: str, images: int, batch_size: int, repeats: int) -> tuple[float, float]:
    """(plain images/s, pipeline images/s): best of `repeats` epochs each, after a warm-up."""
    _, _, shape, classes = MODELS[name]
    rng = np.random.default_rng(0)
    raw = rng.integers(0, 256, (images, *shape), dtype=np.uint8)
    labels = rng.integers(0, classes, images)
    means = compute_rgb_means(raw) if shape[-1] == 3 else None
    arrays = (subtract_means(raw, means) if means else raw.astype(np.float32) / 255.0, labels)
    pipeline = make_pipeline(raw, labels, batch_size=batch_size, training=True, means=means, seed=0)
    model = _model(name)
    with tempfile.TemporaryDirectory() as tmp:
        run = cvlab.runs.start(f"{tmp}/run")
        callback = run.keras_callback()
        _timed_fit(model, arrays, batch_size=batch_size)  # warm-up: tracing and compilation
        _timed_fit(model, pipeline, callbacks=[callback])
        plain, piped = [], []
        for _ in range(repeats):  # alternate so that machine noise hits both
            plain.append(_timed_fit(model, arrays, batch_size=batch_size))
            piped.append(_timed_fit(model, pipeline, callbacks=[callback]))
    return images / min(plain), images / min(piped)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--models", default=",".join(MODELS), help="comma-separated, from: " + ", ".join(MODELS)
    )
    parser.add_argument(
        "--images", type=int, default=512, help="images per timed epoch (small models)"
    )
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(f"{'model':22} {'plain fit':>12} {'cvlab pipeline':>15} {'ratio':>7}")
    results = {}
    for name in args.models.split(","):
        shape = MODELS[name][2]
        images = max(
            args.batch_size, args.images * (32 * 32) // (shape[0] * shape[1])
        )  # big inputs: fewer
        images -= images % args.batch_size
        plain, piped = measure(name, images, args.batch_size, args.repeats)
        results[name] = (plain, piped)
        verdict = "PASS" if piped >= 0.95 * plain else "FAIL"
        print(
            f"{name:22} {plain:9.1f} i/s {piped:12.1f} i/s {piped / plain:6.2f}  {verdict}",
            flush=True,
        )
    print("\nper-epoch time of the book's full recipes on this machine (cvlab pipeline):")
    for name, (data_set, count) in RECIPES.items():
        if name in results:
            print(
                f"  {name:22} on {data_set} ({count:,} images): {count / results[name][1] / 60:7.1f} min/epoch"
            )


if __name__ == "__main__":
    main()
