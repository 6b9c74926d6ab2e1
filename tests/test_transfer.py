"""Feature extraction to HDF5 and the logistic-regression probe on top (book ch. 3, 10.6)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

import cvlab
from cvlab.data.hdf5 import HDF5DatasetReader
from cvlab.transfer import extract_features, train_linear_probe
from cvlab.transfer.linear_probe import read_features


class CountingModel:
    """A stand-in backbone: a fixed random projection of the pixels, counting its calls; an
    optional `fail_after` raises on that call (an interrupted extraction)."""

    def __init__(self, dims: int = 6, fail_after: int | None = None, seed: int = 0):
        self.weights = None
        self.dims, self.fail_after, self.calls, self.rows = dims, fail_after, 0, 0
        self.rng = np.random.default_rng(seed)

    def predict_on_batch(self, batch):
        self.calls += 1
        if self.fail_after is not None and self.calls > self.fail_after:
            raise KeyboardInterrupt
        flat = np.asarray(batch, dtype=np.float32).reshape(len(batch), -1)
        if self.weights is None:
            self.weights = self.rng.normal(size=(flat.shape[1], self.dims)).astype(np.float32)
        self.rows += len(batch)
        return (flat @ self.weights).reshape(len(batch), 2, self.dims // 2)


def images(n: int = 20, side: int = 8) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    return rng.integers(0, 256, (n, side, side, 3), dtype=np.uint8), np.arange(n) % 3


@pytest.mark.backends
def test_features_match_a_direct_predict_and_keep_order(tmp_path):
    x, y = images()
    model = CountingModel()
    out = extract_features(
        model, x, y, tmp_path / "f.hdf5", class_names=["a", "b", "c"], batch_size=6,
        preprocess=lambda b: b.astype(np.float32) / 255.0, progress=False,
    )  # fmt: skip
    features, labels, names = read_features(out)
    direct = model.predict_on_batch(x.astype(np.float32) / 255.0).reshape(len(x), -1)
    assert features.shape == (20, 6) and features.dtype == np.float32
    np.testing.assert_allclose(features, direct, rtol=1e-5)
    assert labels.tolist() == y.tolist() and names == ["a", "b", "c"]
    with HDF5DatasetReader(out) as reader:
        assert reader.attrs["complete"]


def test_features_from_files_decode_at_size(tmp_path):
    paths = []
    for i in range(5):
        path = tmp_path / f"img_{i}.png"
        Image.new("RGB", (12 + i, 10), (i * 40, 0, 0)).save(path)
        paths.append(path)
    out = extract_features(
        CountingModel(), paths, [0, 1, 0, 1, 0], tmp_path / "f.hdf5", size=4, progress=False
    )
    assert read_features(out)[0].shape == (5, 6)
    with pytest.raises(ValueError, match=r"size: required"):
        extract_features(CountingModel(), paths, [0] * 5, tmp_path / "g.hdf5", progress=False)


def test_interrupted_extraction_resumes_after_the_rows_written(tmp_path):
    x, y = images(40)
    whole = extract_features(CountingModel(), x, y, tmp_path / "whole.hdf5", batch_size=4,
                             progress=False)  # fmt: skip
    out = tmp_path / "cut.hdf5"
    # call 1 is the probe of the output width, calls 2-6 five batches (20 rows), then Ctrl-C:
    # the writer flushes what it buffered and keeps the .partial
    with pytest.raises(KeyboardInterrupt):
        extract_features(CountingModel(fail_after=6), x, y, out, batch_size=4, progress=False)
    assert not out.exists() and (tmp_path / "cut.hdf5.partial").exists()
    again = CountingModel()
    extract_features(again, x, y, out, batch_size=4, progress=False)
    np.testing.assert_allclose(read_features(out)[0], read_features(whole)[0], rtol=1e-5)
    assert read_features(out)[1].tolist() == y.tolist()
    assert again.rows == 1 + 40 - 20  # the probe image, then only the 20 rows not yet written


def digits_features() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    x, y = load_digits(return_X_y=True)
    return train_test_split(x, y, test_size=0.25, stratify=y, random_state=42)


def test_linear_probe_tunes_c_and_scores_like_a_classifier(tmp_path):
    x_train, x_test, y_train, y_test = digits_features()
    probe = train_linear_probe(x_train, y_train, c_grid=(0.001, 1.0), standardize=True, n_jobs=1)
    assert set(probe.cv_scores) == {0.001, 1.0} and probe.best_c == 1.0
    assert probe.cv_scores[1.0] > probe.cv_scores[0.001]
    run = cvlab.runs.start(tmp_path / "run")
    result = probe.evaluate(x_test, y_test, run=run, prefix="probe_")
    assert result["rank1"] > 0.93 and result["rank5"] >= result["rank1"]
    assert run.record.metrics["probe_rank1"] == result["rank1"]
    assert (tmp_path / "run" / "probe_classification_report.txt").is_file()
    probs = probe.predict_proba(x_test)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-6)


def test_linear_probe_reads_a_features_file_and_pads_missing_classes(tmp_path):
    x_train, _, y_train, _ = digits_features()
    keep = y_train < 9  # class 9 never seen in training
    out = extract_features(
        lambda_model(), x_train[keep].reshape(-1, 8, 8, 1), y_train[keep], tmp_path / "f.hdf5",
        class_names=[str(d) for d in range(10)], progress=False,
    )  # fmt: skip
    probe = train_linear_probe(out, c_grid=(1.0,), max_iter=2000)
    assert probe.class_names == [str(d) for d in range(10)]
    assert probe.predict_proba(x_train[:3]).shape == (3, 10)
    assert np.all(probe.predict_proba(x_train[:3])[:, 9] == 0)


def lambda_model():
    class Flatten:
        def predict_on_batch(self, batch):
            return np.asarray(batch, dtype=np.float32).reshape(len(batch), -1)

    return Flatten()
