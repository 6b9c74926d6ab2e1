"""Does the workbench slow training down? Training images per second of each registry model at its
native input size, fed two ways side by side in one run:

A. `model.fit` on in-memory float arrays (the plain way);
B. `model.fit` on the cvlab pipeline (`cvlab.data.make_pipeline`: uint8 images, cast, mean
   subtraction, shuffling, batching and prefetch in tf.data).

Then the same small fit under each Keras backend side by side (`--backends`; one subprocess
each, since Keras reads its backend at import): the same uint8 images, the same model and
`make_pipeline` (tf.data under TensorFlow, the PyDataset under JAX and PyTorch), 2 epochs,
images/s of the second (the first compiles), and the ratio to TensorFlow.

Target: B / A ≥ 0.95 for every model. The run record's per-epoch work (history.csv and the
curves plot) is a fixed cost per epoch, measured on its own and set against a full epoch. Last,
the per-epoch time the rates imply for the book's full recipes on this machine (CIFAR-10: 50,000
training images; Tiny ImageNet: 100,000).

    python bench/train_throughput.py [--models resnet-cifar10,minigooglenet] [--images 256]
    python bench/train_throughput.py --models "" --backends tensorflow,jax,torch
    python bench/train_throughput.py --models "" --backends "" --tensorboard-backends jax,torch

The run's TensorBoard event file (`cvlab.runs.tensorboard_log`) is measured the same way: `fit`
with the run's Keras callback with and without the writer, the same model and data in one
process (`--tensorboard-models`; under other backends with `--tensorboard-backends`), and the
writer's own time per epoch.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import cvlab
import cvlab.models
from cvlab.data.pipeline import make_pipeline
from cvlab.data.preprocess import compute_rgb_means, subtract_means
from cvlab.runs.tensorboard_log import RunEvents

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
    np.random.seed(0)  # keras.utils.set_random_seed would import TensorFlow under JAX/PyTorch
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
    """(plain images/s, pipeline images/s): best of `repeats` epochs each, after warm-ups."""
    _, _, shape, classes = MODELS[name]
    rng = np.random.default_rng(0)
    raw = rng.integers(0, 256, (images, *shape), dtype=np.uint8)
    labels = rng.integers(0, classes, images)
    means = compute_rgb_means(raw) if shape[-1] == 3 else None
    # Centred and scaled as a real recipe feeds them; unscaled inputs would blow the weights up
    # to NaN within an epoch and time NaN arithmetic instead.
    arrays = ((subtract_means(raw, means) if means else raw.astype(np.float32)) / 255.0, labels)
    pipeline = make_pipeline(
        raw, labels, batch_size=batch_size, training=True, means=means, rescale=1 / 255.0, seed=0
    )
    model = _model(name)
    _timed_fit(model, arrays, batch_size=batch_size)  # warm-ups: tracing and compilation
    _timed_fit(model, pipeline)
    plain, piped = [], []
    for _ in range(repeats):  # alternate so that machine noise hits both
        plain.append(_timed_fit(model, arrays, batch_size=batch_size))
        piped.append(_timed_fit(model, pipeline))
    return images / min(plain), images / min(piped)


def run_record_cost(epochs: int = 20) -> float:
    """Seconds the run record spends per epoch (append to history.csv, redraw curves.png)."""
    with tempfile.TemporaryDirectory() as tmp:
        run = cvlab.runs.start(f"{tmp}/run")
        start = time.perf_counter()
        for epoch in range(1, epochs + 1):
            run.log_epoch(
                epoch, epochs, loss=1 / epoch, val_loss=1.1 / epoch, accuracy=0.5, val_accuracy=0.4
            )
        return (time.perf_counter() - start) / epochs


class _NoEvents:
    """A run's TensorBoard log that writes nothing: the 'without' side of `tensorboard_cost`."""

    def log_epoch(self, row) -> None:
        pass

    def restart(self, step: int) -> None:
        pass

    def close(self) -> None:
        pass


def tensorboard_cost(name: str, images: int, batch_size: int, epochs: int, repeats: int) -> dict:
    """Training with the run's Keras callback, with and without its TensorBoard event file, the
    same model and data in this process (alternated, best of `repeats` fits of `epochs` epochs
    each): images/s of each and their ratio; and the writer's own time per epoch."""
    _, _, shape, classes = MODELS[name]
    rng = np.random.default_rng(0)
    raw = rng.integers(0, 256, (images, *shape), dtype=np.uint8)
    labels = rng.integers(0, classes, images)
    means = compute_rgb_means(raw) if shape[-1] == 3 else None
    pipeline = make_pipeline(
        raw, labels, batch_size=batch_size, training=True, means=means, rescale=1 / 255.0, seed=0
    )
    model = _model(name)
    model.fit(pipeline, epochs=1, verbose=0, shuffle=False)  # warm-up: tracing and compilation
    best = {"with": math.inf, "without": math.inf}
    with tempfile.TemporaryDirectory() as tmp, contextlib.redirect_stdout(io.StringIO()):
        for attempt in range(repeats):
            for side in ("with", "without"):  # alternated, so that machine noise hits both
                run = cvlab.runs.start(f"{tmp}/{side}-{attempt}")
                if side == "without":
                    run._tensorboard = _NoEvents()
                start = time.perf_counter()
                model.fit(
                    pipeline,
                    epochs=epochs,
                    verbose=0,
                    shuffle=False,
                    callbacks=[run.keras_callback()],
                )
                best[side] = min(best[side], time.perf_counter() - start)
                run.finish()
        events = RunEvents(Path(tmp) / "alone")
        row = {"epoch": 0, "loss": 1.0, "accuracy": 0.5, "val_loss": 1.1, "val_accuracy": 0.4,
               "lr": 0.01, "time_s": 1.0}  # fmt: skip
        start = time.perf_counter()
        for epoch in range(1, 201):
            events.log_epoch({**row, "epoch": epoch})
        writer_s = (time.perf_counter() - start) / 200
        events.close()
    rates = {side: images * epochs / seconds for side, seconds in best.items()}
    return {**rates, "ratio": rates["with"] / rates["without"], "writer_s": writer_s}


def compare_tensorboard(models: list[str], images: int, batch_size: int, epochs: int,
                        repeats: int) -> None:  # fmt: skip
    """The TensorBoard writer's cost per model, in this process's backend."""
    import keras

    print(f"\nthe run's TensorBoard writer ({keras.config.backend()}; {images} images, "
          f"{epochs} epochs per fit, best of {repeats}):")  # fmt: skip
    print(f"{'model':22} {'with writer':>14} {'without':>14} {'ratio':>7} {'writer/epoch':>13}")
    for name in models:
        cost = tensorboard_cost(name, images, batch_size, epochs, repeats)
        print(
            f"{name:22} {cost['with']:10.1f} i/s {cost['without']:10.1f} i/s "
            f"{cost['ratio']:6.3f} {1e3 * cost['writer_s']:10.3f} ms",
            flush=True,
        )


def backend_rate(name: str, images: int, batch_size: int, epochs: int = 2) -> dict:
    """In this process's backend: images/s of the last of `epochs` epochs of `fit` on
    `make_pipeline` batches (uint8 images, means, shuffling), and what fed them."""
    import keras

    _, _, shape, classes = MODELS[name]
    rng = np.random.default_rng(0)
    raw = rng.integers(0, 256, (images, *shape), dtype=np.uint8)
    labels = rng.integers(0, classes, images)
    means = compute_rgb_means(raw) if shape[-1] == 3 else None
    pipeline = make_pipeline(
        raw, labels, batch_size=batch_size, training=True, means=means, rescale=1 / 255.0, seed=0
    )
    model = _model(name)
    ends: list[float] = []

    class EpochEnds(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            ends.append(time.perf_counter())

    start = time.perf_counter()
    model.fit(pipeline, epochs=epochs, verbose=0, callbacks=[EpochEnds()])
    last = ends[-1] - (ends[-2] if len(ends) > 1 else start)
    return {
        "backend": keras.config.backend(),
        "pipeline": type(pipeline).__name__,
        "images_per_s": images / last,
        "tensorflow_imported": "tensorflow" in sys.modules,
    }


def compare_backends(backends: list[str], models: list[str], images: int, batch_size: int) -> None:
    """One subprocess per backend and model, side by side, ratios to TensorFlow."""
    print(f"\nthe same fit under each backend ({images} images, 2 epochs, the second timed):")
    print(f"{'model':22} " + " ".join(f"{b:>16}" for b in backends) + "   ratios to tensorflow")
    for name in models:
        rates = {}
        for backend in backends:
            env = {**os.environ, "KERAS_BACKEND": backend}
            command = [sys.executable, __file__, "--worker", name, "--images", str(images),
                       "--batch-size", str(batch_size)]  # fmt: skip
            done = subprocess.run(command, env=env, capture_output=True, text=True)
            lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
            if done.returncode or not lines:
                print(f"  {backend}: failed\n{done.stderr[-2000:]}")
                continue
            rates[backend] = json.loads(lines[-1])
        cells = " ".join(
            f"{rates[b]['images_per_s']:12.1f} i/s" if b in rates else f"{'-':>16}"
            for b in backends
        )
        base = rates.get("tensorflow", {}).get("images_per_s")
        ratios = "  ".join(
            f"{b} {rates[b]['images_per_s'] / base:.2f}" for b in backends if b in rates and base
        )
        print(f"{name:22} {cells}   {ratios}", flush=True)
        for b, r in rates.items():
            if b != "tensorflow" and r["tensorflow_imported"]:
                print(f"  note: TensorFlow was imported under {b}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--models", default=",".join(MODELS), help="comma-separated, from: " + ", ".join(MODELS)
    )
    parser.add_argument(
        "--images", type=int, default=1024, help="images per timed epoch (32×32 models)"
    )
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--backends", default="tensorflow,jax,torch", help="side by side; empty: skip"
    )
    parser.add_argument("--backend-models", default="minivggnet,resnet-cifar10")
    parser.add_argument("--backend-images", type=int, default=512)
    parser.add_argument(
        "--tensorboard-models", default="minivggnet",
        help="the TensorBoard writer's cost (fit with and without it); empty: skip",
    )  # fmt: skip
    parser.add_argument("--tensorboard-epochs", type=int, default=3)
    parser.add_argument("--tensorboard-backends", default="",
                        help="also measure the writer under these backends (subprocesses)")  # fmt: skip
    parser.add_argument("--worker", help=argparse.SUPPRESS)  # one backend's measure, as JSON
    parser.add_argument("--tensorboard-worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(backend_rate(args.worker, args.images, args.batch_size)))
        return
    if args.tensorboard_worker:
        compare_tensorboard(args.tensorboard_models.split(","), args.backend_images,
                            args.batch_size, args.tensorboard_epochs, args.repeats)  # fmt: skip
        return
    if args.models:
        compare_pipelines(args)
    if args.tensorboard_models:
        compare_tensorboard(args.tensorboard_models.split(","), args.backend_images,
                            args.batch_size, args.tensorboard_epochs, args.repeats)  # fmt: skip
    for backend in filter(None, args.tensorboard_backends.split(",")):
        command = [sys.executable, __file__, "--tensorboard-worker", "--models", "",
                   "--tensorboard-models", args.tensorboard_models,
                   "--backend-images", str(args.backend_images), "--batch-size",
                   str(args.batch_size), "--tensorboard-epochs", str(args.tensorboard_epochs),
                   "--repeats", str(args.repeats)]  # fmt: skip
        done = subprocess.run(command, env={**os.environ, "KERAS_BACKEND": backend},
                              capture_output=True, text=True)  # fmt: skip
        print(done.stdout.rstrip() or f"{backend}: failed\n{done.stderr[-2000:]}", flush=True)
    if args.backends:
        compare_backends(
            args.backends.split(","), args.backend_models.split(","), args.backend_images,
            args.batch_size,
        )  # fmt: skip


def compare_pipelines(args) -> None:
    """Plain `fit` against the cvlab pipeline, per model, in this process's backend."""
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
    with contextlib.redirect_stdout(io.StringIO()):  # the progress lines it prints
        record_s = run_record_cost()
    print(f"\nrun record per epoch (history.csv + curves.png): {record_s:.2f} s")
    print("per-epoch time of the book's full recipes on this machine (cvlab pipeline):")
    for name, (data_set, count) in RECIPES.items():
        if name in results:
            epoch_s = count / results[name][1]
            print(
                f"  {name:22} on {data_set} ({count:,} images): {epoch_s / 60:6.1f} min/epoch; "
                f"the run record adds {100 * record_s / epoch_s:.2f}%"
            )


if __name__ == "__main__":
    main()
