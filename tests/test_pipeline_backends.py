"""`make_pipeline` on every Keras backend: under JAX and PyTorch a PyDataset, without TensorFlow,
giving the evaluation batches the tf.data pipeline gives (within `RESIZE_ATOL` where it resizes,
else exactly), training through `fit` with augmentation on the device, and scored by
`evaluate_classifier`. One subprocess per other backend (Keras reads the backend at import)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from cvlab.data.hdf5 import HDF5DatasetWriter
from cvlab.data.pipeline import make_pipeline
from cvlab.image_prep import RESIZE_ATOL

MEANS = {"R": 120.0, "G": 110.0, "B": 100.0}
# (name, make_pipeline options): each path of an evaluation batch
CASES = [
    ("plain", {}),
    ("centre_crop", {"crop": 30}),
    ("crop_resize_means", {"crop": 30, "resize": 24, "means": MEANS}),
    ("resize_onehot", {"resize": (50, 20), "num_classes": 5}),
    ("pad_rescale", {"crop": (20, 40), "rescale": 2.0}),
]
# on 0-1 pixels the resize difference is RESIZE_ATOL / 255; means and crops add nothing
TOLERANCE = RESIZE_ATOL


def _data():
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (23, 40, 36, 3), dtype=np.uint8), rng.integers(0, 5, 23)


def _write_hdf5(path: Path) -> Path:
    x, y = _data()
    with HDF5DatasetWriter(path, x.shape) as writer:
        writer.add(x, y)
    return path


def _batches(pipeline) -> list[tuple[np.ndarray, np.ndarray]]:
    return [(np.asarray(x), np.asarray(y)) for x, y in pipeline]


def _assert_same(expected, got, what):
    assert len(expected) == len(got), what
    for (xa, ya), (xb, yb) in zip(expected, got, strict=True):
        assert xa.shape == xb.shape and xa.dtype == xb.dtype == np.float32, what
        np.testing.assert_allclose(xb, xa, rtol=0, atol=TOLERANCE, err_msg=what)
        np.testing.assert_array_equal(yb, ya, err_msg=what)
        assert yb.dtype == ya.dtype, what


@pytest.mark.parametrize("name, options", CASES)
def test_the_pydataset_gives_the_tf_data_evaluation_batches(name, options):
    x, y = _data()
    expected = _batches(make_pipeline(x, y, batch_size=5, **options))
    got = make_pipeline(x, y, batch_size=5, loader="pydataset", workers=1, **options)
    assert type(got).__name__ == "BatchSource" and len(got) == 5
    _assert_same(expected, _batches(got), name)


def test_the_pydataset_reads_hdf5_in_memory_and_in_blocks(tmp_path, monkeypatch):
    import cvlab.data.pipeline as pipeline

    path = _write_hdf5(tmp_path / "d.hdf5")
    expected = _batches(make_pipeline(path, batch_size=4, resize=24))
    _assert_same(
        expected,
        _batches(make_pipeline(path, batch_size=4, resize=24, loader="pydataset")),
        "memory",
    )
    monkeypatch.setattr(pipeline, "IN_MEMORY_LIMIT_BYTES", 10)  # stream it
    monkeypatch.setattr(pipeline, "BLOCK_ROWS", 6)
    streamed = make_pipeline(path, batch_size=4, resize=24, loader="pydataset")
    assert streamed.plan.images is None
    _assert_same(expected, _batches(streamed), "streamed")
    # training: every row once per pass, in a seeded order that changes from pass to pass
    train = make_pipeline(path, batch_size=4, training=True, seed=3, loader="pydataset")
    first = np.concatenate([train[i][1] for i in range(len(train))])
    train.on_epoch_end()
    second = np.concatenate([train[i][1] for i in range(len(train))])
    labels = _data()[1]
    assert sorted(first) == sorted(second) == sorted(labels)
    order = train.plan.order(0)
    assert not np.array_equal(order, np.arange(23)) and sorted(order) == list(range(23))
    assert (np.diff(order // 6) != 0).sum() == 3  # four blocks, each read whole in turn
    x, _ = _data()
    for i in range(len(train)):  # each row read back in its shuffled place, image with label
        images, batch_labels = train[i]
        rows = train.plan.rows(i, 1)
        np.testing.assert_array_equal(images, x[rows] / np.float32(255.0))
        np.testing.assert_array_equal(batch_labels, labels[rows])
    again = make_pipeline(path, batch_size=4, training=True, seed=3, loader="pydataset")
    np.testing.assert_array_equal(again.plan.order(0), order)


def test_training_batches_are_seeded_crops_shuffled_and_repeat():
    x, y = _data()
    kw = {"batch_size": 5, "training": True, "seed": 1, "crop": 30, "loader": "pydataset"}
    a, b = make_pipeline(x, y, **kw), make_pipeline(x, y, **kw)
    np.testing.assert_array_equal(a[2][0], b[2][0])  # the seed fixes order and crops
    assert not np.array_equal(a[0][1], y[:5]) or not np.array_equal(a[1][1], y[5:10])
    c = make_pipeline(x, y, **{**kw, "seed": 2})
    assert not np.array_equal(a[0][0], c[0][0])
    endless = make_pipeline(x, y, **{**kw, "repeat": True})
    assert endless.num_batches is None
    stream = np.concatenate([endless[i][1] for i in range(23)])  # 115 = 5 passes of 23
    for p in range(5):
        assert sorted(stream[23 * p : 23 * (p + 1)]) == sorted(y)
    with pytest.raises(ValueError, match="loader="):
        make_pipeline(x, y, loader="grain")


BACKEND_SCRIPT = r"""
import json, sys
import numpy as np
sys.path.insert(0, sys.argv[1])
import keras
import skimage.data
from test_pipeline_backends import CASES, _data, _write_hdf5
from cvlab.data.pipeline import make_pipeline
from cvlab.image_prep import resize
from cvlab.train.evaluation import evaluate_classifier
from pathlib import Path

out = {}
x, y = _data()
for name, options in CASES:
    batches = make_pipeline(x, y, batch_size=5, **options)
    out[name] = [np.asarray(a).tolist() for a, _ in batches]
    out[name + "_labels"] = [np.asarray(b).tolist() for _, b in batches]
out["pipeline"] = type(make_pipeline(x, y)).__name__
out["hdf5"] = [np.asarray(a).tolist() for a, _ in make_pipeline(_write_hdf5(Path(sys.argv[2])), resize=24)]
out["photo"] = resize(skimage.data.astronaut(), (227, 227)).tolist()
# a small fit: training pipeline with augmentation (on the device), then scored
np.random.seed(0)  # not keras.utils.set_random_seed: it imports TensorFlow where installed
model = keras.Sequential([keras.Input((24, 24, 3)), keras.layers.Conv2D(4, 3, activation="relu"),
                          keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(5, activation="softmax")])
model.compile("adam", "categorical_crossentropy", metrics=["accuracy"])
augment = {"horizontal_flip": True, "rotation": 10, "zoom": 0.1, "brightness": 0.1,
           "contrast": 0.1, "shear": 0.1, "width_shift": 0.1}
train = make_pipeline(x, y, batch_size=8, training=True, crop=24, augment=augment, seed=0,
                      num_classes=5, workers=2)
val = make_pipeline(x, y, batch_size=8, crop=24, num_classes=5)
history = model.fit(train, validation_data=val, epochs=2, verbose=0)
out["losses"] = history.history["loss"]
scores = evaluate_classifier(model, make_pipeline(x, y, batch_size=8, crop=24), None, list("abcde"))
out["rank1"] = scores["rank1"]
# the chapters' other pipelines: surgery's (mapped through a backbone's input), SRCNN's patches
from cvlab.data.dataset import Dataset
from cvlab.generative.srcnn import patch_dataset
from cvlab.transfer.surgery import pipelines
unit = (x / 255.0).astype(np.float32)
data = Dataset("t", unit, y, unit[:0], y[:0], unit[:7], y[:7], list("abcde"))
train_ds, val_ds, test_ds = pipelines(data, batch_size=4, augment={"horizontal_flip": True},
                                      preprocess=lambda b: b * 2.0, seed=0)
out["surgery_test"] = np.concatenate([np.asarray(a) for a, _ in test_ds]).tolist()
out["surgery_train"] = list(np.asarray(keras.ops.convert_to_numpy(train_ds[0][0])).shape)
patches = patch_dataset(x[:, :9, :9], x[:, :5, :5], 8, seed=0)
seen = [(np.asarray(a), np.asarray(b)) for a, b in patches]
out["srcnn"] = [len(seen), str(seen[0][0].dtype), int(sum(len(a) for a, _ in seen)),
                float(np.concatenate([a for a, _ in seen]).sum())]
out["tensorflow_imported"] = "tensorflow" in sys.modules
print("RESULT" + json.dumps(out))
"""


@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_jax_and_torch_pipelines_match_tf_data_and_train_without_tensorflow(backend, tmp_path):
    from skimage.data import astronaut

    from cvlab.image_prep import resize

    env = {**os.environ, "KERAS_BACKEND": backend}
    here = str(Path(__file__).parent)
    done = subprocess.run(
        [sys.executable, "-c", BACKEND_SCRIPT, here, str(tmp_path / "d.hdf5")],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    line = next(l for l in done.stdout.splitlines() if l.startswith("RESULT"))  # noqa: E741
    out = json.loads(line[len("RESULT") :])
    assert out["tensorflow_imported"] is False
    assert out["pipeline"] == "BatchSource"
    x, y = _data()
    for name, options in CASES:
        expected = _batches(make_pipeline(x, y, batch_size=5, **options))
        got = [(np.asarray(a, np.float32), np.asarray(b, expected[0][1].dtype))
               for a, b in zip(out[name], out[name + "_labels"], strict=True)]  # fmt: skip
        _assert_same(expected, got, f"{backend}: {name}")
    tf_hdf5 = _batches(make_pipeline(_write_hdf5(tmp_path / "tf.hdf5"), resize=24))
    np.testing.assert_allclose(np.concatenate(out["hdf5"]), np.concatenate([a for a, _ in tf_hdf5]),
                               rtol=0, atol=TOLERANCE)  # fmt: skip
    photo = resize(astronaut(), (227, 227)).astype(int)  # uint8 rounding: at most one level
    assert np.abs(np.asarray(out["photo"]) - photo).max() <= 1
    assert len(out["losses"]) == 2 and all(np.isfinite(out["losses"]))
    assert 0.0 <= out["rank1"] <= 1.0
    np.testing.assert_allclose(out["surgery_test"], x[:7] / 255.0 * 2.0, rtol=0, atol=1e-5)
    assert out["surgery_train"] == [4, 40, 36, 3]
    assert out["srcnn"] == [3, "float32", 23, float(x[:, :9, :9].astype(np.float64).sum())]
