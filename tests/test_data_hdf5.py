"""HDF5 writer/reader, the per-split HDF5 builder and `python -m cvlab.data build`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
from PIL import Image

import cvlab.data
from cvlab.data import ImageIndex
from cvlab.data.build import build_hdf5, output_paths
from cvlab.data.hdf5 import (
    HDF5DatasetReader,
    HDF5DatasetWriter,
    IncompleteHDF5Error,
    partial_path,
)
from cvlab.data.images import decode_images

REPO = Path(__file__).resolve().parents[1]


def _images(n: int, shape=(4, 5, 3), seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, *shape), dtype=np.uint8), rng.integers(0, 3, n)


def _write(path: Path, x: np.ndarray, y: np.ndarray, **kw) -> Path:
    with HDF5DatasetWriter(path, x.shape, **kw) as writer:
        writer.add(x, y)
    return path


# -- writer and reader ------------------------------------------------------------------------


def test_round_trip_images(tmp_path):
    x, y = _images(10)
    path = tmp_path / "a.hdf5"
    writer = HDF5DatasetWriter(path, x.shape, buffer_size=3, class_names=["cat", "dog", "ünï"])
    for i in range(0, 10, 4):
        writer.add(x[i : i + 4], y[i : i + 4])
    assert not path.exists() and partial_path(path).exists()  # not complete before close
    assert writer.close() == path
    assert path.exists() and not partial_path(path).exists()
    with h5py.File(path, "r") as f:  # the book's layout, chunked
        assert set(f) == {"images", "labels", "label_names"}
        assert f["images"].chunks == (10, 4, 5, 3) and f["labels"].dtype == np.int64
    with HDF5DatasetReader(path) as reader:
        assert len(reader) == 10 and reader.data_key == "images"
        np.testing.assert_array_equal(reader.images[:], x)
        np.testing.assert_array_equal(reader.labels, y)
        assert reader.labels.dtype == np.int64 and reader.images.dtype == np.uint8
        assert reader.class_names == ["cat", "dog", "ünï"]


def test_round_trip_features(tmp_path):
    rng = np.random.default_rng(1)
    feats, labels = rng.normal(size=(7, 6)).astype("float32"), np.arange(7) % 2
    path = _write(
        tmp_path / "f.hdf5",
        feats,
        labels,
        data_key="features",
        dtype="float32",
        class_names=["a", "b"],
    )
    with HDF5DatasetReader(path) as reader:
        assert reader.data_key == "features"
        np.testing.assert_array_equal(reader.features[:], feats)
        np.testing.assert_array_equal(reader.labels, labels)
        assert reader.class_names == ["a", "b"]
        with pytest.raises(AttributeError, match="features"):
            _ = reader.images


def test_flushes_at_buffer_boundaries(tmp_path):
    x, y = _images(10)
    writer = HDF5DatasetWriter(tmp_path / "b.hdf5", x.shape, buffer_size=4)
    seen = []
    for i in range(10):
        writer.add(x[i : i + 1], y[i : i + 1])
        seen.append(writer.rows_written)
        assert int(writer.attrs["rows_written"]) == writer.rows_written  # in the file
    assert seen == [0, 0, 0, 4, 4, 4, 4, 8, 8, 8] and len(writer) == 10
    writer.close()
    with HDF5DatasetReader(writer.path) as reader:
        np.testing.assert_array_equal(reader.images[:], x)
        np.testing.assert_array_equal(reader.labels, y)


def test_shape_dtype_and_capacity_errors(tmp_path):
    x, y = _images(5)
    writer = HDF5DatasetWriter(tmp_path / "c.hdf5", x.shape)
    with pytest.raises(ValueError, match=r"\(4, 5, 3\)"):
        writer.add(np.zeros((2, 5, 4, 3), np.uint8), [0, 1])
    with pytest.raises(ValueError, match="one row"):
        writer.add(x[0], [0])
    with pytest.raises(ValueError, match="float32 but the file stores uint8"):
        writer.add(x[:2].astype("float32") / 255, [0, 1])
    with pytest.raises(ValueError, match="labels"):
        writer.add(x[:2], [0])
    writer.add(x[:4], y[:4])
    with pytest.raises(ValueError, match="capacity of 5 rows"):
        writer.add(x[:2], y[:2])
    writer.add(x[4:], y[4:])
    writer.close()


def test_close_trims_to_rows_written(tmp_path):
    x, y = _images(6)
    with HDF5DatasetWriter(tmp_path / "t.hdf5", (10, 4, 5, 3), buffer_size=4) as writer:
        writer.add(x, y)
    with HDF5DatasetReader(writer.path) as reader:
        assert len(reader) == 6 and reader.images.shape == (6, 4, 5, 3)


def test_exception_keeps_the_partial(tmp_path):
    x, y = _images(6)
    path = tmp_path / "e.hdf5"
    with pytest.raises(RuntimeError), HDF5DatasetWriter(path, x.shape, buffer_size=100) as w:
        w.add(x[:3], y[:3])
        raise RuntimeError("boom")
    assert not path.exists()
    with HDF5DatasetWriter(path, x.shape, resume=True) as w:
        assert w.resumed and w.rows_written == 3  # buffered rows were flushed on the way out
        w.add(x[3:], y[3:])
    with HDF5DatasetReader(path) as reader:
        np.testing.assert_array_equal(reader.images[:], x)


CRASH = """
import os, sys
import numpy as np
from cvlab.data.hdf5 import HDF5DatasetWriter
path, = sys.argv[1:]
rng = np.random.default_rng(0)
x, y = rng.integers(0, 256, (50, 4, 5, 3), dtype=np.uint8), rng.integers(0, 3, 50)
w = HDF5DatasetWriter(path, x.shape, buffer_size=8, class_names=["a", "b", "c"], chunk_rows=4)
for i in range(0, 30, 6):
    w.add(x[i : i + 6], y[i : i + 6], state={"done": i + 6})
# rows 30..40 land on disk but the counter is not updated: a crash in the middle of a flush
w._data[w.rows_written : w.rows_written + 10] = 255
w._data.id.flush()
os._exit(9)  # killed: no close, no flush, no clean-up
"""


def test_resume_after_a_crash(tmp_path):
    path = tmp_path / "r.hdf5"
    done = subprocess.run([sys.executable, "-c", CRASH, str(path)], cwd=tmp_path, timeout=60)
    assert done.returncode == 9
    assert not path.exists() and partial_path(path).exists()
    with pytest.raises(IncompleteHDF5Error, match="resume the build with the same command"):
        HDF5DatasetReader(path)
    with pytest.raises(IncompleteHDF5Error, match="resume the build with the same command"):
        HDF5DatasetReader(partial_path(path))
    with pytest.raises(ValueError, match="cannot resume"):  # another shape is not resumed
        HDF5DatasetWriter(path, (50, 4, 5, 1), resume=True)

    rng = np.random.default_rng(0)  # the same draws as the crashed process
    x, y = rng.integers(0, 256, (50, 4, 5, 3), dtype=np.uint8), rng.integers(0, 3, 50)
    with HDF5DatasetWriter(path, x.shape, buffer_size=8, resume=True, chunk_rows=4) as w:
        assert w.resumed and w.rows_written == 24 and w.state == {"done": 24}
        assert w.class_names == ["a", "b", "c"]
        w.add(x[24:], y[24:])
    oneshot = _write(tmp_path / "one.hdf5", x, y, class_names=["a", "b", "c"])
    with HDF5DatasetReader(path) as resumed, HDF5DatasetReader(oneshot) as fresh:
        np.testing.assert_array_equal(resumed.images[:], fresh.images[:])
        np.testing.assert_array_equal(resumed.labels, fresh.labels)
        assert resumed.class_names == fresh.class_names


def test_without_resume_starts_over(tmp_path):
    x, y = _images(8)
    path = tmp_path / "s.hdf5"
    with pytest.raises(KeyError), HDF5DatasetWriter(path, x.shape, buffer_size=2) as w:
        w.add(x[:4], y[:4])
        raise KeyError
    with HDF5DatasetWriter(path, x.shape, resume=False) as w:
        assert not w.resumed and w.rows_written == 0
        w.add(x, y)
    with HDF5DatasetReader(path) as reader:
        assert len(reader) == 8


def test_reader_refuses_an_incomplete_file(tmp_path):
    x, y = _images(8)
    path = tmp_path / "i.hdf5"
    w = HDF5DatasetWriter(path, x.shape, buffer_size=2)
    w.add(x[:4], y[:4])
    w.close(finish=False)
    partial_path(path).rename(path)  # someone renamed the unfinished file by hand
    with pytest.raises(IncompleteHDF5Error, match="resume the build with the same command"):
        HDF5DatasetReader(path)
    with pytest.raises(cvlab.errors.DatasetNotFoundError):
        HDF5DatasetReader(tmp_path / "missing.hdf5")


def test_batches_cover_every_row_once_and_repeat_per_seed(tmp_path):
    x = np.arange(23, dtype=np.float32).reshape(23, 1) * np.ones((1, 3), np.float32)
    path = _write(tmp_path / "g.hdf5", x, np.arange(23), data_key="features", dtype="float32")
    with HDF5DatasetReader(path) as reader:
        plain = list(reader.batches(5))
        assert [len(b[1]) for b in plain] == [5, 5, 5, 5, 3]
        np.testing.assert_array_equal(np.concatenate([b[1] for b in plain]), np.arange(23))

        def order(seed):
            batches = list(reader.batches(5, shuffle=True, seed=seed))
            for xb, yb in batches:
                np.testing.assert_array_equal(xb[:, 0], yb)  # rows stay with their labels
            return np.concatenate([yb for _, yb in batches])

        first = order(7)
        assert sorted(first.tolist()) == list(range(23))
        np.testing.assert_array_equal(first, order(7))
        assert not np.array_equal(first, order(8))
        assert not np.array_equal(first, np.arange(23))


# -- builder -----------------------------------------------------------------------------------


def _read_all(path: Path) -> tuple[np.ndarray, np.ndarray, dict]:
    with HDF5DatasetReader(path) as reader:
        return reader.images[:], reader.labels, reader.attrs


def test_output_paths():
    paths = output_paths("data/tiny-imagenet.hdf5")
    assert paths["train"] == Path("data/tiny-imagenet_train.hdf5")
    assert paths["test"] == Path("data/tiny-imagenet_test.hdf5")
    assert paths["mean"] == Path("data/tiny-imagenet_mean.json")


def test_build_digits(tmp_path):
    ds = cvlab.data.load("digits")
    paths = build_hdf5("digits", tmp_path / "d.hdf5", size=8, batch_size=300, progress=False)
    assert paths["train"] == tmp_path / "d_train.hdf5"
    expected = {"train": ds.y_train, "val": ds.y_val, "test": ds.y_test}
    for split, labels in expected.items():
        images, got, attrs = _read_all(paths[split])
        assert images.shape == (len(labels), 8, 8, 1) and images.dtype == np.uint8
        np.testing.assert_array_equal(
            np.bincount(got, minlength=10), np.bincount(labels, minlength=10)
        )
        assert attrs["skipped"] == 0
    train = np.rint(ds.x_train * 255).astype(np.uint8)
    images, _, _ = _read_all(paths["train"])
    np.testing.assert_array_equal(np.sort(images.reshape(len(images), -1), axis=0),
                                  np.sort(train.reshape(len(train), -1), axis=0))  # fmt: skip
    means = json.loads(paths["mean"].read_text())
    assert means["channels"] == 1 and means["images"] == len(train)
    for key in "RGB":
        assert means[key] == pytest.approx(train.astype(np.float64).mean(), rel=1e-6)
    with HDF5DatasetReader(paths["train"]) as reader:
        assert reader.class_names == [str(d) for d in range(10)]


def test_build_resizes_in_memory_data(tmp_path):
    paths = build_hdf5("digits", tmp_path / "d.hdf5", size=12, progress=False, seed=3)
    images, _, _ = _read_all(paths["val"])
    assert images.shape[1:] == (12, 12, 1)


@pytest.fixture
def folder_index(tmp_path, monkeypatch):
    """A tiny file-based data set 'tiny-folder' (PNG files, one corrupt) in the registry."""
    rng = np.random.default_rng(5)
    root = tmp_path / "images"
    splits: dict[str, tuple[list[Path], np.ndarray]] = {}
    for split, n in (("train", 13), ("val", 4), ("test", 5)):
        paths, labels = [], []
        for i in range(n):
            label = i % 2
            path = root / split / f"{label}_{i}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            h, w = rng.integers(6, 14, 2)
            Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(path)
            paths.append(path)
            labels.append(label)
        splits[split] = (paths, np.asarray(labels, dtype=np.int64))
    corrupt = splits["train"][0][3]
    corrupt.write_bytes(b"not a png at all")
    index = ImageIndex("tiny-folder", ["even", "odd"], splits, source="test PNGs")
    calls = []

    def fake_index(name, **options):
        calls.append((name, options))
        if name != "tiny-folder":
            raise AssertionError(name)
        return index

    real_names = cvlab.data.file_based_names
    monkeypatch.setattr(cvlab.data, "index", fake_index)
    monkeypatch.setattr(cvlab.data, "file_based_names", lambda: [*real_names(), "tiny-folder"])
    return index, corrupt, calls


def test_build_from_an_image_index(tmp_path, folder_index):
    index, corrupt, calls = folder_index
    paths = build_hdf5(
        "tiny-folder", tmp_path / "out" / "tf.hdf5", size=8, batch_size=4, progress=False, limit=9
    )
    assert calls == [("tiny-folder", {"limit": 9})]  # options reach the indexer
    counts = {}
    for split in ("train", "val", "test"):
        images, labels, attrs = _read_all(paths[split])
        counts[split] = len(labels)
        assert images.shape[1:] == (8, 8, 3)
        assert attrs["skipped"] == (1 if split == "train" else 0)
    assert counts == {"train": 12, "val": 4, "test": 5}  # the corrupt file skipped, file shrunk
    _, _, attrs = _read_all(paths["train"])
    assert json.loads(attrs["skipped_files"])[0][0] == str(corrupt)

    decoded = decode_images(*index.splits["train"], 8, progress=False)
    assert len(decoded.images) == 12 and len(decoded.skipped) == 1
    images, labels, _ = _read_all(paths["train"])
    np.testing.assert_array_equal(np.bincount(labels), np.bincount(decoded.labels))
    means = json.loads(paths["mean"].read_text())
    expected = decoded.images.reshape(-1, 3).astype(np.float64).mean(axis=0)
    assert [means[k] for k in "RGB"] == pytest.approx(expected.tolist(), rel=1e-6)
    assert means["channels"] == 3 and means["images"] == 12
    with HDF5DatasetReader(paths["train"]) as reader:
        assert reader.class_names == ["even", "odd"]


def test_build_resumes_an_interrupted_split(tmp_path, folder_index, monkeypatch):
    import cvlab.data.images as images_module

    real = images_module.decode_images
    decoded: list[int] = []

    def failing(paths, *args, **kwargs):
        if len(decoded) == 2:
            raise KeyboardInterrupt
        decoded.append(len(paths))
        return real(paths, *args, **kwargs)

    out = tmp_path / "out" / "tf.hdf5"
    monkeypatch.setattr("cvlab.data.build.decode_images", failing)  # where the builder looks it up
    with pytest.raises(KeyboardInterrupt):
        build_hdf5("tiny-folder", out, size=8, batch_size=3, progress=False)
    paths = output_paths(out)
    assert not paths["train"].exists() and partial_path(paths["train"]).exists()

    decoded.clear()
    monkeypatch.setattr("cvlab.data.build.decode_images", lambda *a, **k: (decoded.append(len(a[0])), real(*a, **k))[1])  # fmt: skip
    build_hdf5("tiny-folder", out, size=8, batch_size=3, progress=False)
    assert sum(decoded) == 13 - 6 + 4 + 5  # train continued after the 6 files already written
    assert not partial_path(paths["train"]).exists()

    decoded.clear()
    build_hdf5("tiny-folder", out, size=8, batch_size=3, progress=False)
    assert decoded == []  # finished with the same arguments: kept

    fresh = build_hdf5(
        "tiny-folder", tmp_path / "fresh" / "tf.hdf5", size=8, batch_size=3, progress=False
    )
    for split in ("train", "val", "test"):
        a, b = _read_all(paths[split]), _read_all(fresh[split])
        np.testing.assert_array_equal(a[0], b[0])
        np.testing.assert_array_equal(a[1], b[1])
        assert a[2]["skipped"] == b[2]["skipped"]
    assert json.loads(paths["mean"].read_text()) == json.loads(fresh["mean"].read_text())


# -- command line ------------------------------------------------------------------------------


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "cvlab.data", *args],
        cwd=cwd, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_cli_build_digits(tmp_path):
    done = _cli("build", "digits", "--size", "8", "--out", str(tmp_path / "d.hdf5"), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    for split in ("train", "val", "test"):
        assert (tmp_path / f"d_{split}.hdf5").exists()
        assert f"d_{split}.hdf5" in done.stdout
    assert "means: R=" in done.stdout
    assert set(json.loads((tmp_path / "d_mean.json").read_text())) >= {"R", "G", "B"}


def test_cli_unknown_name_exits_2(tmp_path):
    done = _cli("build", "no-such-set", "--out", str(tmp_path / "x.hdf5"), cwd=tmp_path)
    assert done.returncode == 2
    assert "unknown data set 'no-such-set'" in done.stderr and "digits" in done.stderr


def test_cli_bad_input_in_process(tmp_path, monkeypatch, capsys):
    from cvlab.data.__main__ import main
    from cvlab.errors import DatasetNotFoundError

    with pytest.raises(SystemExit) as exc:
        main(["build", "digits", "--option", "nonsense"])
    assert exc.value.code == 2 and "KEY=VALUE" in capsys.readouterr().err
    assert main(["build", "digits", "--option", "colour=1", "--quiet"]) == 2
    assert "unexpected keyword argument 'colour'" in capsys.readouterr().err

    def missing(name, **options):
        raise DatasetNotFoundError(f"{name} is not in {options['directory']}: download it")

    monkeypatch.setattr(cvlab.data, "file_based_names", lambda: ["gone"])
    monkeypatch.setattr(cvlab.data, "index", missing)
    out = str(tmp_path / "g.hdf5")
    assert main(["build", "gone", "--option", "directory=/nowhere", "--out", out]) == 2
    assert "gone is not in /nowhere: download it" in capsys.readouterr().err
