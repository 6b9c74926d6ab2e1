"""On-disk data set layouts (CIFAR-10, Tiny ImageNet, image folders, Dogs vs. Cats), each built
tiny in tmp_path; the `slow` tests load the real data sets from the data cache when imported."""

from __future__ import annotations

import pickle
import socket
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import cvlab.data
from cvlab.data import cifar10
from cvlab.data.cifar10 import index_cifar10, load_cifar10
from cvlab.data.dogs_vs_cats import index_dogs_vs_cats, load_dogs_vs_cats
from cvlab.data.image_folder import index_image_folder, load_image_folder
from cvlab.data.tiny_imagenet import index_tiny_imagenet, load_tiny_imagenet
from cvlab.errors import DatasetLayoutError, DatasetNotFoundError

from real_data import installed_dataset

# ---------------------------------------------------------------- helpers


def write_image(path: Path, value: int = 128, *, size: int = 8, mode: str = "RGB") -> Path:
    """A small solid image; the format follows the extension."""
    path.parent.mkdir(parents=True, exist_ok=True)
    color = value if mode == "L" else (value, 255 - value, value // 2)
    Image.new(mode, (size, size), color).save(path)
    return path


def make_folder(root: Path, classes: dict[str, int], ext: str = "jpg") -> Path:
    for c, (name, count) in enumerate(classes.items()):
        for i in range(count):
            write_image(root / name / f"img_{i}.{ext}", 20 * c + i)
    return root


def names(split) -> list[str]:
    return [Path(p).name for p in split[0]]


def assert_images(x: np.ndarray, y: np.ndarray, shape: tuple[int, ...]) -> None:
    assert x.dtype == np.float32 and y.dtype == np.int64
    assert x.shape[1:] == shape and len(x) == len(y)
    assert x.min() >= 0.0 and x.max() <= 1.0


@pytest.fixture
def no_data(tmp_path, monkeypatch) -> Path:
    """An empty data root, a HOME without a Keras cache, and no network."""
    empty = tmp_path / "empty-data"
    empty.mkdir()
    monkeypatch.setenv("CVLAB_DATA", str(empty))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("KERAS_HOME", raising=False)

    def offline(*args, **kwargs):
        raise OSError("network is unreachable (test)")

    monkeypatch.setattr(socket, "create_connection", offline)
    return empty


# ---------------------------------------------------------------- image-folder


def test_image_folder_loads_stratified_splits(tmp_path):
    make_folder(tmp_path / "pets", {"zebra": 10, "ant": 10, "moth": 10})
    data = load_image_folder(tmp_path / "pets", size=8, progress=False)
    assert data.class_names == ["ant", "moth", "zebra"]
    assert (len(data.x_train), len(data.x_val), len(data.x_test)) == (21, 3, 6)
    for x, y in (
        (data.x_train, data.y_train),
        (data.x_val, data.y_val),
        (data.x_test, data.y_test),
    ):
        assert_images(x, y, (8, 8, 3))
        assert set(y.tolist()) == {0, 1, 2}  # every class in every split
    assert data.name == "pets" and data.info["skipped"] == 0
    assert np.any(np.diff(data.y_train) < 0)  # shuffled, not grouped by class folder


def test_image_folder_split_depends_on_seed_only(tmp_path):
    make_folder(tmp_path / "f", {"a": 10, "b": 10, "c": 10})
    first = index_image_folder(tmp_path / "f", seed=1)
    again = index_image_folder(tmp_path / "f", seed=1)
    other = index_image_folder(tmp_path / "f", seed=2)
    for split in ("train", "val", "test"):
        assert first.splits[split][0] == again.splits[split][0]
        assert first.splits[split][1].tolist() == again.splits[split][1].tolist()
    assert first.splits["test"][0] != other.splits["test"][0]


def test_image_folder_accepts_top_folder_and_filters_files(tmp_path, monkeypatch):
    top = tmp_path / "data" / "flowers" / "flowers17"
    make_folder(top, {"daisy": 4, "tulip": 4}, ext="PNG")
    write_image(top / "daisy" / ".hidden.jpg")
    write_image(top / "daisy" / "photo.JPEG")
    write_image(top / ".cache" / "x.jpg")
    write_image(top / "tulip" / ".thumbs" / "y.jpg")
    (top / "tulip" / "notes.txt").write_text("not an image")
    write_image(tmp_path / "data" / "flowers" / "__MACOSX" / "z.jpg")
    monkeypatch.setenv("CVLAB_DATA", str(tmp_path / "data"))
    index = cvlab.data.index("image-folder", folder="flowers", val_fraction=0, test_fraction=0.25)
    assert index.class_names == ["daisy", "tulip"] and index.name == "flowers17"
    assert index.counts() == {"train": 6, "val": 0, "test": 3}
    every = [p.name for split in index.splits.values() for p in split[0]]
    assert sorted(every) == sorted([f"img_{i}.PNG" for i in range(4)] * 2 + ["photo.JPEG"])
    alias = index_image_folder(name="flowers", val_fraction=0, test_fraction=0.25)
    assert alias.splits["test"][0] == index.splits["test"][0]  # `name`: alias for direct calls


def test_image_folder_corrupt_file_is_skipped_and_counted(tmp_path):
    make_folder(tmp_path / "f", {"a": 5, "b": 5})
    (tmp_path / "f" / "a" / "broken.jpg").write_bytes(b"\xff\xd8\xff not a jpeg at all")
    data = load_image_folder(tmp_path / "f", size=8, val_fraction=0, test_fraction=0.3)
    assert data.info["skipped"] == 1
    assert len(data.x_train) + len(data.x_test) == 10
    assert "broken.jpg" in data.info["skipped_files"][0][0]


def test_image_folder_errors_say_where_and_what(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="nowhere"):
        index_image_folder(tmp_path / "nowhere")
    make_folder(tmp_path / "one", {"only": 3})
    with pytest.raises(
        DatasetLayoutError, match=r"one: found 1 class[\s\S]*at least 2[\s\S]*<class name>"
    ):
        index_image_folder(tmp_path / "one")
    with pytest.raises(ValueError, match="directory="):
        index_image_folder()


def test_split_too_small_for_stratification_says_so(tmp_path):
    make_folder(tmp_path / "f", {"a": 2, "b": 2, "c": 2})
    with pytest.raises(ValueError, match="stratified test split"):
        index_image_folder(tmp_path / "f", val_fraction=0, test_fraction=0.2)


# ---------------------------------------------------------------- Tiny ImageNet

TINY_WNIDS = ["n03000003", "n01000001", "n02000002"]  # wnids.txt order is not sorted
TINY_WORDS = {
    "n01000001": "goldfish, Carassius auratus",
    "n02000002": "European fire salamander, Salamandra salamandra",
    "n03000003": "bullfrog, Rana catesbeiana",
    "n09999999": "unused, not a class",
}


def make_tiny_imagenet(root: Path, train_per_class: int = 8, val_per_class: int = 2) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "wnids.txt").write_text("\n".join(TINY_WNIDS) + "\n")
    (root / "words.txt").write_text("".join(f"{k}\t{v}\n" for k, v in TINY_WORDS.items()))
    for c, wnid in enumerate(TINY_WNIDS):
        for i in range(train_per_class):
            mode = "L" if (c, i) == (0, 0) else "RGB"  # some Tiny ImageNet images are grayscale
            write_image(root / "train" / wnid / "images" / f"{wnid}_{i}.JPEG", 10 * i, mode=mode)
        (root / "train" / wnid / f"{wnid}_boxes.txt").write_text("")
    lines = []
    for n in range(val_per_class * len(TINY_WNIDS)):
        write_image(root / "val" / "images" / f"val_{n}.JPEG", n)
        lines.append(f"val_{n}.JPEG\t{TINY_WNIDS[n % 3]}\t0\t0\t7\t7")
    text = "\n".join(lines[:-1]) + "\r\n" + lines[-1]  # a CRLF and no final newline
    (root / "val" / "val_annotations.txt").write_text(text)
    return root


def test_tiny_imagenet_names_and_splits(tmp_path):
    make_tiny_imagenet(tmp_path / "tiny-imagenet-200")
    index = index_tiny_imagenet(tmp_path)
    assert index.class_names == ["goldfish", "European fire salamander", "bullfrog"]
    assert index.counts() == {"train": 18, "val": 6, "test": 6}  # test as big as val
    for split in ("train", "test"):
        paths, labels = index.splits[split]
        assert all(p.parts[-4] == "train" for p in paths)  # test carved from train
        assert set(labels.tolist()) == {0, 1, 2}
        assert all(
            TINY_WNIDS.index(p.parts[-3]) == [1, 2, 0][y]
            for p, y in zip(paths, labels, strict=True)
        )
    val_paths, val_labels = index.splits["val"]
    assert [p.name for p in val_paths] == [f"val_{n}.JPEG" for n in range(6)]
    expected = [sorted(TINY_WNIDS).index(TINY_WNIDS[n % 3]) for n in range(6)]
    assert val_labels.tolist() == expected  # from val_annotations.txt
    assert set(index.splits["train"][0]).isdisjoint(index.splits["test"][0])


def test_tiny_imagenet_loads_grayscale_as_rgb(tmp_path, monkeypatch):
    make_tiny_imagenet(tmp_path / "tiny-imagenet-200")
    monkeypatch.setenv("CVLAB_DATA", str(tmp_path))  # <data root>/tiny-imagenet-200
    data = cvlab.data.load("tiny-imagenet", size=8, progress=False)
    assert_images(data.x_train, data.y_train, (8, 8, 3))
    assert_images(data.x_test, data.y_test, (8, 8, 3))
    assert (len(data.x_val), data.info["skipped"]) == (6, 0)


def test_tiny_imagenet_seed_and_limit(tmp_path):
    make_tiny_imagenet(tmp_path)
    a, b = index_tiny_imagenet(tmp_path, seed=3), index_tiny_imagenet(tmp_path, seed=3)
    assert a.splits["test"][0] == b.splits["test"][0]
    assert index_tiny_imagenet(tmp_path, seed=4).splits["test"][0] != a.splits["test"][0]
    small = index_tiny_imagenet(tmp_path, limit_per_class=4)
    assert small.counts() == {"train": 6, "val": 6, "test": 6}
    kept = {p.name for p in small.splits["train"][0] + small.splits["test"][0]}
    assert kept == {f"{w}_{i}.JPEG" for w in TINY_WNIDS for i in range(4)}  # lowest numbers


def test_tiny_imagenet_missing_and_broken(tmp_path):
    with pytest.raises(DatasetNotFoundError, match=r"wnids\.txt[\s\S]*tiny-imagenet-200"):
        index_tiny_imagenet(tmp_path / "absent")
    root = make_tiny_imagenet(tmp_path / "t")
    (root / "val" / "val_annotations.txt").unlink()
    with pytest.raises(DatasetLayoutError, match="val_annotations.txt"):
        index_tiny_imagenet(root)


# ---------------------------------------------------------------- Dogs vs. Cats


def make_dogs_vs_cats(folder: Path, per_class: int = 12) -> Path:
    for animal in ("cat", "dog"):
        for i in range(per_class):
            write_image(folder / f"{animal}.{i}.jpg", 10 * i)
    write_image(folder / "cat.x.jpg")  # does not follow the naming: ignored, counted
    write_image(folder / "holiday.jpg")
    (folder / "readme.txt").write_text("not an image, not counted")
    return folder


def test_dogs_vs_cats_naming_limit_and_splits(tmp_path):
    make_dogs_vs_cats(tmp_path / "dogs-vs-cats" / "train")
    index = index_dogs_vs_cats(tmp_path)
    assert index.class_names == ["cat", "dog"]
    assert index.counts() == {"train": 18, "val": 3, "test": 3}
    assert "2 file(s) ignored" in index.source
    for paths, labels in index.splits.values():
        assert [p.name.split(".")[0] for p in paths] == [["cat", "dog"][y] for y in labels]
    small = index_dogs_vs_cats(tmp_path, limit=8, val_size=2, test_size=2)
    assert small.counts() == {"train": 4, "val": 2, "test": 2}
    every = sorted(p.name for split in small.splits.values() for p in split[0])
    assert every == sorted(f"{a}.{i}.jpg" for a in ("cat", "dog") for i in range(4))
    for split in ("val", "test"):
        assert sorted(small.splits[split][1].tolist()) == [0, 1]
    other = index_dogs_vs_cats(tmp_path, seed=7)
    assert other.splits["test"][0] != index.splits["test"][0]
    assert index_dogs_vs_cats(tmp_path).splits["test"][0] == index.splits["test"][0]


def test_dogs_vs_cats_load_flat_folder(tmp_path):
    make_dogs_vs_cats(tmp_path)  # files directly in the folder
    data = load_dogs_vs_cats(tmp_path, size=8, limit=20, progress=False)
    assert_images(data.x_train, data.y_train, (8, 8, 3))
    assert len(data.x_train) + len(data.x_val) + len(data.x_test) == 20
    assert data.info["ignored"] == 2 and data.info["skipped"] == 0


def test_dogs_vs_cats_errors(tmp_path):
    with pytest.raises(DatasetNotFoundError, match=r"cat\.N\.jpg[\s\S]*train"):
        index_dogs_vs_cats(tmp_path)
    for i in range(3):
        write_image(tmp_path / "train" / f"cat.{i}.jpg")
    with pytest.raises(DatasetLayoutError, match="no dog.N.jpg"):
        index_dogs_vs_cats(tmp_path)


# ---------------------------------------------------------------- CIFAR-10

CIFAR_CLASSES = [
    *("airplane", "automobile", "bird", "cat", "deer"),
    *("dog", "frog", "horse", "ship", "truck"),
]


def cifar_batch(start: int, per_class: int = 2) -> dict[bytes, object]:
    """Rows as in the official files: 1024 red, 1024 green, 1024 blue values, row-major. Red
    grows along x (column), green is the image number, blue a constant."""
    labels = [c for _ in range(per_class) for c in range(10)]
    rows = np.empty((len(labels), 3, 32, 32), dtype=np.uint8)
    rows[:, 0] = (np.arange(32) * 8).astype(np.uint8)[None, None, :]
    rows[:, 1] = (start + np.arange(len(labels)))[:, None, None] % 256
    rows[:, 2] = 250
    return {b"batch_label": b"fake", b"labels": labels, b"data": rows.reshape(len(labels), -1)}


def make_cifar_pickles(folder: Path) -> Path:
    folder.mkdir(parents=True)
    for i in range(1, 6):
        (folder / f"data_batch_{i}").write_bytes(pickle.dumps(cifar_batch(20 * i)))
    (folder / "test_batch").write_bytes(pickle.dumps(cifar_batch(0)))
    meta = {b"label_names": [n.encode() for n in CIFAR_CLASSES], b"num_vis": 3072}
    (folder / "batches.meta").write_bytes(pickle.dumps(meta))
    return folder


def test_cifar10_from_pickles(tmp_path, no_data):
    make_cifar_pickles(tmp_path / "c" / "cifar-10-batches-py")
    data = load_cifar10(tmp_path / "c", val_fraction=0.1, download=False)
    assert data.class_names == CIFAR_CLASSES
    assert (len(data.x_train), len(data.x_val), len(data.x_test)) == (90, 10, 20)
    assert_images(data.x_train, data.y_train, (32, 32, 3))
    assert set(data.y_val.tolist()) == set(range(10))
    np.testing.assert_allclose(data.x_test[:, 0, :, 0], np.tile(np.arange(32) * 8, (20, 1)) / 255)
    np.testing.assert_allclose(data.x_test[:, 5, 5, 1], np.arange(20) / 255)  # file order kept
    assert np.all(data.x_train[..., 2] == np.float32(250 / 255))
    assert data.y_test.tolist() == list(range(10)) * 2
    with pytest.raises(DatasetLayoutError, match="pickles"):
        index_cifar10(tmp_path / "c")


def test_cifar10_pickles_in_keras_cache_resized_and_limited(tmp_path, no_data):
    make_cifar_pickles(tmp_path / "home" / ".keras" / "datasets" / "cifar-10-batches-py")
    data = cvlab.data.load("cifar10", size=16, limit_per_class=4, val_fraction=0.25, seed=1)
    assert (len(data.x_train), len(data.x_val), len(data.x_test)) == (30, 10, 20)
    assert_images(data.x_val, data.y_val, (16, 16, 3))
    again = load_cifar10(size=16, limit_per_class=4, val_fraction=0.25, seed=1)
    np.testing.assert_array_equal(data.x_val, again.x_val)


def test_cifar10_from_jpeg_folders(tmp_path, no_data):
    classes = {name: 10 for name in CIFAR_CLASSES[:3]}
    make_folder(no_data / "cifar10" / "cifar10" / "train", classes)  # archive top folder
    make_folder(no_data / "cifar10" / "cifar10" / "test", {n: 4 for n in classes})
    index = index_cifar10()
    assert index.class_names == CIFAR_CLASSES[:3]
    assert index.counts() == {"train": 27, "val": 3, "test": 12}
    assert all("test" in p.parts for p in index.splits["test"][0])
    data = load_cifar10(size=8, download=False, progress=False)
    assert_images(data.x_train, data.y_train, (8, 8, 3))
    assert index_cifar10(seed=5).splits["val"][0] != index.splits["val"][0]


def test_cifar10_offline_with_nothing_cached_says_where_to_put_files(
    no_data, tmp_path, monkeypatch
):
    called = []  # the unreachable host is noticed before Keras is asked to download
    monkeypatch.setattr(cifar10, "_keras_load_data", lambda: called.append(1))
    for download in (False, True):
        with pytest.raises(DatasetNotFoundError) as err:
            load_cifar10(download=download)
        message = str(err.value)
        assert str(no_data / "cifar10") in message
        assert str(tmp_path / "home" / ".keras" / "datasets" / "cifar-10-batches-py") in message
        assert "data_batch_1" in message and "train/<class>" in message
    assert "unreachable" in message and not called
    with pytest.raises(DatasetNotFoundError, match="cifar10"):
        index_cifar10()
    with pytest.raises(DatasetNotFoundError, match="elsewhere"):
        load_cifar10(tmp_path / "elsewhere")  # an explicit folder is never replaced by a download


def test_cifar10_download_failure_and_success(no_data, monkeypatch):
    class Connection:
        def close(self) -> None:
            pass

    monkeypatch.setattr(socket, "create_connection", lambda *a, **k: Connection())

    def fails():
        raise Exception("URL fetch failure on https://www.cs.toronto.edu/: 403")

    monkeypatch.setattr(cifar10, "_keras_load_data", fails)
    with pytest.raises(DatasetNotFoundError, match="URL fetch failure"):
        load_cifar10()
    batch = cifar_batch(0)
    x = batch[b"data"].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    y = np.asarray(batch[b"labels"], dtype=np.uint8).reshape(-1, 1)
    monkeypatch.setattr(cifar10, "_keras_load_data", lambda: ((x, y), (x, y)))
    data = load_cifar10(val_fraction=0.5)
    assert (len(data.x_train), len(data.x_val), len(data.x_test)) == (10, 10, 20)
    assert data.source == "CIFAR-10 downloaded by Keras"


# ---------------------------------------------------------------- the real archives (slow)


@pytest.mark.slow
def test_real_flowers17():
    folder = installed_dataset("flowers17")
    data = load_image_folder(folder, size=32, val_fraction=0, test_fraction=0.25, progress=False)
    assert data.num_classes == 17 and "daffodil" in data.class_names
    assert (len(data.x_train), len(data.x_val), len(data.x_test)) == (1020, 0, 340)
    assert np.bincount(data.y_test).tolist() == [20] * 17
    assert data.info["skipped"] == 0
    # by name, from the data cache: the same classes and the book's 75/25 split
    named = cvlab.data.index("flowers17")
    assert named.class_names == data.class_names
    assert named.counts() == {"train": 1020, "val": 0, "test": 340}


@pytest.mark.slow
def test_real_dogs_vs_cats():
    folder = installed_dataset("dogs-vs-cats")
    assert sum(index_dogs_vs_cats(folder).counts().values()) == 2002
    assert sum(cvlab.data.index("dogs-vs-cats").counts().values()) == 2002
    data = load_dogs_vs_cats(folder, size=32, limit=200, progress=False)
    assert (len(data.x_train), len(data.x_val), len(data.x_test)) == (160, 20, 20)
    assert np.bincount(data.y_train).tolist() == [80, 80]
    assert data.info["skipped"] == 0 and data.info["ignored"] == 0


@pytest.mark.slow
def test_real_tiny_imagenet():
    folder = installed_dataset("tiny-imagenet")
    index = index_tiny_imagenet(folder)
    assert cvlab.data.index("tiny-imagenet").counts() == index.counts()
    assert len(index.class_names) == 200 and "goldfish" in index.class_names
    assert index.counts() == {"train": 10_000, "val": 10_000, "test": 10_000}
    assert np.bincount(index.splits["test"][1]).tolist() == [50] * 200
    data = load_tiny_imagenet(folder, limit_per_class=2, progress=False)
    assert (len(data.x_train), len(data.x_val), len(data.x_test)) == (200, 400, 200)
    assert_images(data.x_train, data.y_train, (64, 64, 3))


@pytest.mark.slow
def test_real_cifar10_jpeg():
    folder = installed_dataset("cifar10")
    index = index_cifar10(folder)
    assert cvlab.data.index("cifar10").counts() == index.counts()
    assert index.class_names == CIFAR_CLASSES
    assert index.counts() == {"train": 45_000, "val": 5_000, "test": 10_000}
    assert np.bincount(index.splits["val"][1]).tolist() == [500] * 10
    data = load_cifar10(folder, limit_per_class=20, download=False, progress=False)
    assert (len(data.x_train), len(data.x_val), len(data.x_test)) == (180, 20, 200)
    assert_images(data.x_test, data.y_test, (32, 32, 3))


def test_cifar10_pickles_build_to_hdf5(tmp_path, no_data):
    """The pickle layout has no file index: the builder loads it into memory instead."""
    from cvlab.data import HDF5DatasetReader, build_hdf5

    make_cifar_pickles(tmp_path / "c" / "cifar-10-batches-py")
    files = build_hdf5(
        "cifar10", tmp_path / "out" / "cifar10.hdf5", size=32, progress=False,
        directory=str(tmp_path / "c"), download=False,
    )  # fmt: skip
    with HDF5DatasetReader(files["train"]) as reader:
        assert len(reader) == 90 and reader.images.shape[1:] == (32, 32, 3)


@pytest.mark.slow
def test_real_imagenet_sample():
    folder = installed_dataset("imagenet-sample")
    index = cvlab.data.index("imagenet-sample", directory=folder)
    paths, labels = index.splits["test"]
    assert len(paths) == 1000 and sorted(labels.tolist()) == list(range(1000))
    assert index.class_names[0] == "n01440764" and index.class_names == sorted(index.class_names)
    assert all(
        Path(p).name.startswith(index.class_names[y]) for p, y in zip(paths, labels, strict=True)
    )
