"""`cvlab data import / fetch / list`: archives and folders into the data cache, layout checks,
downloads (from a local HTTP server), and the offline error. Data sets are built tiny in tmp."""

from __future__ import annotations

import functools
import hashlib
import http.server
import io
import json
import os
import socket
import subprocess
import sys
import tarfile
import threading
import zipfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import cvlab.data
from cvlab.cli import main as cvlab_main
from cvlab.data import catalog
from cvlab.data.catalog import Download
from cvlab.data.flowers17 import OXFORD_ORDER
from cvlab.data.install import MANIFEST, fetch_dataset, import_dataset, installed, read_manifest
from cvlab.errors import (
    DatasetExistsError,
    DatasetFetchError,
    DatasetLayoutError,
    DatasetNameError,
    DatasetNotFoundError,
)


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    """An empty data cache, and no Keras cache (so nothing is found elsewhere)."""
    root = tmp_path / "cache"
    monkeypatch.setenv("CVLAB_DATA", str(root))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("KERAS_HOME", raising=False)
    return root


def jpeg(path: Path, value: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 8), (value % 256, 40, 200)).save(path)


def dogs_vs_cats_folder(root: Path, per_class: int = 6) -> Path:
    """Kaggle's layout: train/cat.N.jpg, train/dog.N.jpg."""
    for i in range(per_class):
        jpeg(root / "train" / f"cat.{i}.jpg", i)
        jpeg(root / "train" / f"dog.{i}.jpg", 100 + i)
    return root


def flowers_folder(root: Path, per_class: int = 4) -> Path:
    """Flowers-17 as class folders under a top folder, as the team's archive has it."""
    for c, name in enumerate(OXFORD_ORDER):
        for i in range(per_class):
            jpeg(root / "flowers17" / name / f"image_{c * 80 + i + 1:04d}.jpg", c * 10 + i)
    return root


def tar_of(folder: Path, archive: Path) -> Path:
    with tarfile.open(archive, "w:gz") as tar:
        for path in sorted(folder.rglob("*")):
            tar.add(path, arcname=str(path.relative_to(folder)), recursive=False)
    return archive


def zip_of(folder: Path, archive: Path) -> Path:
    with zipfile.ZipFile(archive, "w") as zf:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                zf.write(path, str(path.relative_to(folder)))
    return archive


def leftovers(root: Path) -> list[str]:
    return [p.name for p in root.iterdir() if p.name.startswith(".importing-")]


# ---------------------------------------------------------------- import


def test_import_tar_gz_then_load_by_name(tmp_path, cache):
    archive = tar_of(flowers_folder(tmp_path / "src"), tmp_path / "flowers17.tar.gz")
    result = import_dataset("flowers17", archive, progress=False)
    assert result.target == cache / "flowers17" and not result.skipped
    assert result.survey.classes == 17 and result.survey.per_class == (4, 4)
    assert result.survey.splits == {"train": 68, "val": 0, "test": 0}
    assert (cache / "flowers17" / MANIFEST).is_file() and leftovers(cache) == []
    data = cvlab.data.load("flowers17", size=8, progress=False)  # the book's 75/25 split
    assert (len(data.x_train), len(data.x_val), len(data.x_test)) == (51, 0, 17)
    assert data.class_names == sorted(OXFORD_ORDER)


def test_import_zip_and_folder_copy_and_link(tmp_path, cache):
    src = dogs_vs_cats_folder(tmp_path / "kaggle")
    import_dataset("dogs-vs-cats", zip_of(src, tmp_path / "train.zip"), progress=False)
    assert sum(cvlab.data.index("dogs-vs-cats").counts().values()) == 12

    copied = import_dataset("dogs-vs-cats", src, force=True, progress=False)
    assert not (cache / "dogs-vs-cats").is_symlink()
    (src / "train" / "cat.0.jpg").unlink()  # a copy does not follow its source
    assert sum(cvlab.data.index("dogs-vs-cats").counts().values()) == 12
    assert copied.survey.per_class == (6, 6)

    linked = import_dataset("dogs-vs-cats", src, force=True, link=True, progress=False)
    assert (cache / "dogs-vs-cats").is_symlink() and linked.survey.per_class == (5, 6)
    assert [i.survey.images for i in installed() if i.name == "dogs-vs-cats"] == [11]


def test_same_source_again_is_skipped_another_needs_force(tmp_path, cache):
    archive = tar_of(dogs_vs_cats_folder(tmp_path / "a"), tmp_path / "dogs-vs-cats.tar.gz")
    import_dataset("dogs-vs-cats", archive, progress=False)
    assert import_dataset("dogs-vs-cats", archive, progress=False).skipped
    other = tar_of(dogs_vs_cats_folder(tmp_path / "b", 3), tmp_path / "other.tar.gz")
    with pytest.raises(DatasetExistsError, match=r"--force"):
        import_dataset("dogs-vs-cats", other, progress=False)
    assert import_dataset("dogs-vs-cats", other, force=True, progress=False).survey.images == 6
    assert leftovers(cache) == []


def test_wrong_layout_is_refused_naming_the_expected_file(tmp_path, cache):
    archive = tar_of(dogs_vs_cats_folder(tmp_path / "src"), tmp_path / "wrong.tar.gz")
    with pytest.raises(DatasetLayoutError) as err:
        import_dataset("tiny-imagenet", archive, progress=False)
    message = str(err.value)
    assert "wrong.tar.gz" in message and "wnids.txt" in message and "train/" in message
    assert not (cache / "tiny-imagenet").exists() and leftovers(cache) == []


def test_wrong_class_count_is_refused(tmp_path, cache):
    """Any folder of class folders looks like an image folder: the class count tells."""
    src = tmp_path / "two"
    for name in ("a", "b"):
        jpeg(src / name / "x.jpg", 1)
    with pytest.raises(DatasetLayoutError, match=r"found 2 classes where Oxford Flowers-17 has 17"):
        import_dataset("flowers17", src, progress=False)


def test_failed_replacement_keeps_the_old_copy(tmp_path, cache):
    good = tar_of(dogs_vs_cats_folder(tmp_path / "a"), tmp_path / "good.tar.gz")
    import_dataset("dogs-vs-cats", good, progress=False)
    from cvlab.data import install

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    other = tar_of(dogs_vs_cats_folder(tmp_path / "b", 2), tmp_path / "other.tar.gz")
    with pytest.MonkeyPatch.context() as patch, pytest.raises(KeyboardInterrupt):
        patch.setattr(install, "survey", interrupted)
        import_dataset("dogs-vs-cats", other, force=True, progress=False)
    assert sum(cvlab.data.index("dogs-vs-cats").counts().values()) == 12
    assert leftovers(cache) == []


def test_unsafe_and_broken_archives(tmp_path, cache):
    evil = tmp_path / "evil.tar"
    with tarfile.open(evil, "w") as tar:
        info = tarfile.TarInfo("../outside.txt")
        info.size = 2
        tar.addfile(info, io.BytesIO(b"hi"))
    with pytest.raises(DatasetLayoutError, match=r"evil.tar: not a readable"):
        import_dataset("dogs-vs-cats", evil, progress=False)
    assert not (cache / "outside.txt").exists() and not (tmp_path / "outside.txt").exists()

    truncated = tmp_path / "cut.tar.gz"
    whole = tar_of(dogs_vs_cats_folder(tmp_path / "src"), tmp_path / "whole.tar.gz").read_bytes()
    truncated.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(DatasetLayoutError, match=r"cut.tar.gz: not a readable"):
        import_dataset("dogs-vs-cats", truncated, progress=False)

    text = tmp_path / "notes.txt"
    text.write_text("not an archive")
    with pytest.raises(DatasetLayoutError, match=r"not a .tar, .tar.gz or .zip"):
        import_dataset("dogs-vs-cats", text, progress=False)
    with pytest.raises(DatasetNotFoundError, match=r"does not exist"):
        import_dataset("dogs-vs-cats", tmp_path / "missing.tar", progress=False)
    assert leftovers(cache) == []


def test_archive_aliases_and_unknown_names(tmp_path, cache):
    assert catalog.entry("tiny-imagenet-200").name == "tiny-imagenet"
    assert catalog.entry("cifar-10-python").name == "cifar10"
    with pytest.raises(KeyError, match=r"choose one of: cifar10, content-photos, dogs-vs-cats"):
        catalog.entry("mnist")


# ---------------------------------------------------------------- the official layouts


def test_flowers17_official_flat_layout_gives_the_same_labels(tmp_path, cache):
    """Oxford's 17flowers.tgz: jpg/image_0001.jpg ... in runs of 80 per class."""
    official = tmp_path / "oxford"
    for c in range(17):
        for i in range(3):
            jpeg(official / "jpg" / f"image_{c * 80 + i + 1:04d}.jpg", c)
    (official / "jpg" / "files.txt").write_text("image_0001.jpg\n")
    import_dataset("flowers17", tar_of(official, tmp_path / "17flowers.tgz"), progress=False)
    index = cvlab.data.index("flowers17", test_fraction=0)
    paths, labels = index.splits["train"]
    by_name = {Path(p).name: index.class_names[y] for p, y in zip(paths, labels, strict=True)}
    assert by_name["image_0001.jpg"] == "daffodil" and by_name["image_0081.jpg"] == "snowdrop"
    assert by_name["image_1281.jpg"] == "pansy" and len(by_name) == 51


def imagenet_sample_folder(root: Path) -> Path:
    rows = [
        ("n01440764_tench.JPEG", "n01440764", 0),
        ("n15075141_toilet_tissue.JPEG", "n15075141", 999),
    ]
    for i, (name, _, _) in enumerate(rows):
        jpeg(root / "imagenet-sample" / name, i * 50)
    lines = ["file,wnid,index"] + [f"{f},{w},{i}" for f, w, i in rows]
    (root / "imagenet-sample" / "labels.csv").write_text("\n".join(lines) + "\n")
    return root


def test_imagenet_sample_import_index_and_load(tmp_path, cache):
    import_dataset("imagenet-sample", imagenet_sample_folder(tmp_path / "s"), progress=False)
    index = cvlab.data.index("imagenet-sample")
    assert index.counts() == {"train": 0, "val": 0, "test": 2}
    assert index.splits["test"][1].tolist() == [0, 999]
    assert index.class_names[0] == "n01440764" and index.class_names[999] == "n15075141"
    data = cvlab.data.load("imagenet-sample", size=16, progress=False)
    assert data.x_test.shape == (2, 16, 16, 3) and data.x_train.shape == (0, 16, 16, 3)


def test_imagenet_sample_bad_labels_name_the_file_and_line(tmp_path, cache):
    folder = imagenet_sample_folder(tmp_path / "s") / "imagenet-sample"
    labels = folder / "labels.csv"
    labels.write_text("file,wnid,index\nn01440764_tench.JPEG,n01440764,1000\n")
    with pytest.raises(DatasetLayoutError, match=r"labels.csv, line 2: index 1000"):
        cvlab.data.index("imagenet-sample", directory=folder)
    labels.write_text("file,wnid,index\nmissing.JPEG,n01440764,0\n")
    with pytest.raises(DatasetLayoutError, match=r"missing.JPEG"):
        cvlab.data.index("imagenet-sample", directory=folder)
    labels.write_text("name,wnid\n")
    with pytest.raises(DatasetLayoutError, match=r"no column\(s\) file, index"):
        cvlab.data.index("imagenet-sample", directory=folder)


# ---------------------------------------------------------------- fetch


@pytest.fixture
def http_folder(tmp_path):
    """A local HTTP server over a folder (loopback only); yields its base URL."""
    served = tmp_path / "served"
    served.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield served, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def serve_as(monkeypatch, name: str, url: str, md5: str | None) -> None:
    item = catalog.CATALOG[name]
    monkeypatch.setitem(catalog.CATALOG, name, replace(item, download=Download(url, md5=md5)))


def test_fetch_downloads_checks_and_imports(tmp_path, cache, http_folder, monkeypatch):
    served, base = http_folder
    archive = tar_of(flowers_folder(tmp_path / "src", 2), served / "17flowers.tgz")
    md5 = hashlib.md5(archive.read_bytes()).hexdigest()
    serve_as(monkeypatch, "flowers17", f"{base}/17flowers.tgz", md5)
    result = fetch_dataset("flowers17", progress=False)
    assert result.survey.images == 34 and (cache / "flowers17").is_dir()
    assert list((cache / ".downloads").iterdir()) == []  # the archive is not kept


def test_fetch_with_a_wrong_checksum_keeps_nothing(tmp_path, cache, http_folder, monkeypatch):
    served, base = http_folder
    tar_of(flowers_folder(tmp_path / "src", 2), served / "17flowers.tgz")
    serve_as(monkeypatch, "flowers17", f"{base}/17flowers.tgz", "0" * 32)
    with pytest.raises(DatasetFetchError, match=r"MD5 .* expected 0{32}"):
        fetch_dataset("flowers17", progress=False)
    assert list((cache / ".downloads").iterdir()) == [] and not (cache / "flowers17").exists()


def test_fetch_offline_names_the_import_command(cache, monkeypatch, capsys):
    def offline(*args, **kwargs):
        raise OSError("network is unreachable (test)")

    monkeypatch.setattr(socket, "create_connection", offline)
    assert cvlab_main(["data", "fetch", "cifar10", "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "could not download https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz" in err
    assert "cvlab data import cifar10 /path/to/cifar-10-python.tar.gz" in err
    assert not (cache / "cifar10").exists()


def test_fetch_without_an_official_source_says_where_to_get_it(cache):
    with pytest.raises(DatasetFetchError, match=r"Kaggle.*cvlab data import dogs-vs-cats PATH"):
        fetch_dataset("dogs-vs-cats", progress=False)


# ---------------------------------------------------------------- the command line


def test_cli_import_list_and_exit_codes(tmp_path, cache, capsys):
    archive = tar_of(dogs_vs_cats_folder(tmp_path / "src"), tmp_path / "dogs-vs-cats.tar")
    assert cvlab_main(["data", "import", "dogs-vs-cats", str(archive), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "dogs-vs-cats: 12 images (12 train), 2 classes, 6 per class" in out
    assert f"installed: {cache / 'dogs-vs-cats'}" in out

    assert cvlab_main(["data", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    row = next(line for line in lines if line.startswith("dogs-vs-cats"))
    assert row.split()[:5] == ["dogs-vs-cats", "12", "0", "0", "2"]
    cifar = next(line for line in lines if line.startswith("cifar10"))
    assert "not installed (cvlab data import cifar10 PATH  or  cvlab data fetch cifar10)" in cifar

    assert cvlab_main(["data", "import", "tiny-imagenet", str(archive), "--quiet"]) == 2
    assert "not a Tiny ImageNet layout" in capsys.readouterr().err
    assert cvlab_main(["data", "import", "mnist", str(archive)]) == 2
    assert cvlab_main(["nope"]) == 2


def test_load_prefers_the_data_cache(tmp_path, cache):
    """An imported set is what `load` returns without a directory."""
    import_dataset("dogs-vs-cats", dogs_vs_cats_folder(tmp_path / "src", 10), progress=False)
    data = cvlab.data.load("dogs-vs-cats", size=8, progress=False)
    assert len(data.y_train) + len(data.y_val) + len(data.y_test) == 20
    assert np.bincount(data.y_train).tolist()[0] == np.bincount(data.y_train).tolist()[1]


# ---------------------------------------------------------------- a user's own data set


def animals_folder(root: Path, classes=("cat", "dog", "fox"), per_class: int = 10) -> Path:
    """The layout people bring: a top folder of class folders."""
    for c, name in enumerate(classes):
        for i in range(per_class):
            jpeg(root / "animals" / name / f"{name}_{i}.jpg", c * 60 + i)
    return root


def test_user_data_set_import_list_load_and_reimport(tmp_path, cache, capsys):
    archive = tar_of(animals_folder(tmp_path / "src"), tmp_path / "animals.tar.gz")
    assert "animals" not in cvlab.data.names()
    code = cvlab_main(["data", "import", "animals", str(archive), "--layout", "image-folder"])
    out = capsys.readouterr().out
    assert code == 0 and "animals: 30 images (30 train), 3 classes, 10 per class" in out
    assert "cvlab.data.load('animals')" in out
    manifest = json.loads((cache / "animals" / MANIFEST).read_text())
    assert manifest["layout"] == "image-folder" and manifest["user"] is True
    assert leftovers(cache) == []

    assert "animals" in cvlab.data.names() and "animals" in cvlab.data.file_based_names()
    data = cvlab.data.load("animals", size=8, val_fraction=0.2, test_fraction=0.2, progress=False)
    assert data.class_names == ["cat", "dog", "fox"] and data.name == "animals"
    assert data.x_train.shape == (18, 8, 8, 3) and data.x_test.shape == (6, 8, 8, 3)
    labels = np.concatenate([data.y_train, data.y_val, data.y_test])
    assert np.bincount(labels).tolist() == [10, 10, 10]
    assert sum(cvlab.data.index("animals").counts().values()) == 30

    assert cvlab_main(["data", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    row = next(line for line in lines if line.startswith("animals"))
    assert row.split()[:5] == ["animals", "30", "0", "0", "3"] and str(cache / "animals") in row
    assert any("your data set (image-folder layout" in line for line in lines)
    assert cvlab_main(["data", "list", "anim*", "--no-options"]) == 0
    assert [line.split() for line in capsys.readouterr().out.splitlines()[2:]] == [row.split()]

    # the same source again: nothing to do (layout detected from the manifest); --force redoes it
    again = import_dataset("animals", archive, progress=False)
    assert again.skipped and again.survey.classes == 3
    assert not import_dataset("animals", archive, force=True, progress=False).skipped
    other = tar_of(animals_folder(tmp_path / "other", per_class=2), tmp_path / "other.tar")
    with pytest.raises(DatasetExistsError, match="--force"):
        import_dataset("animals", other, progress=False)


def test_user_data_set_layout_detected_with_split_folders(tmp_path, cache):
    src = tmp_path / "kennel"  # not the name it is imported under
    for split, n in (("train", 4), ("test", 2)):
        for c, name in enumerate(("cat", "dog")):
            for i in range(n):
                jpeg(src / split / name / f"{i}.png", c * 100 + i)
    result = import_dataset("pets", src, progress=False)  # no layout given: detected
    assert result.survey.splits == {"train": 8, "val": 0, "test": 4}
    assert read_manifest(cache / "pets")["layout"] == "image-folder"
    index = cvlab.data.index("pets", val_fraction=0.25)  # val carved from train/, test = test/
    assert index.counts() == {"train": 6, "val": 2, "test": 4}
    assert index.class_names == ["cat", "dog"] and index.name == "pets"
    assert all("/test/" in str(p) for p in index.splits["test"][0])
    linked = import_dataset("pets-linked", src, link=True, progress=False)
    assert (cache / "pets-linked").is_symlink() and linked.survey.images == 12
    assert {"pets", "pets-linked"} <= set(cvlab.data.names())
    assert cvlab.data.index("pets-linked", val_fraction=0).counts()["test"] == 4


def test_user_data_set_in_a_grid_validates(tmp_path, cache):
    import_dataset("animals", animals_folder(tmp_path / "src"), progress=False)
    grid = tmp_path / "animals.yaml"
    notebook = Path(__file__).resolve().parents[1] / "notebooks" / "00_quickstart.ipynb"
    grid.write_text(
        f"notebook: {notebook}\nparams:\n  dataset: animals\n  model_name: lenet\n"
        "grid:\n  optimizer: [sgd, adam]\nrank_by: {metric: test_accuracy, mode: max}\n"
    )
    root = Path(__file__).resolve().parents[1]
    run_grid = root / "run_grid.py"
    env = {**os.environ, "CVLAB_DATA": str(cache), "PYTHONPATH": str(root / "lib")}
    command = [sys.executable, str(run_grid), str(grid), "--dry-run", "--out", str(tmp_path)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    grid.write_text(grid.read_text().replace("dataset: animals", "dataset: animalz"))
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and "did you mean 'animals'" in done.stdout + done.stderr


def test_user_data_set_refusals_install_nothing(tmp_path, cache, capsys):
    src = animals_folder(tmp_path / "src")
    assert cvlab_main(["data", "import", "animals", str(src), "--layout", "nope"]) == 2
    assert "unknown layout 'nope'; choose one of: image-folder" in capsys.readouterr().err
    flat = tmp_path / "flat"  # images, but no class folders
    for i in range(3):
        jpeg(flat / f"{i}.jpg", i)
    assert cvlab_main(["data", "import", "animals", str(flat), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "not a 'image-folder' layout" in err and "<folder>/<class name>/<image>.jpg" in err
    assert "Nothing was installed" in err
    with pytest.raises(DatasetNameError, match="built-in data set name"):
        import_dataset("mnist5k", src, progress=False)
    with pytest.raises(DatasetNameError, match="built-in data set name"):
        import_dataset("image-folder", src, progress=False)
    with pytest.raises(DatasetNameError, match="--layout is for your own data sets"):
        import_dataset("flowers17", src, layout="image-folder", progress=False)
    with pytest.raises(DatasetNameError, match="cannot name a data set"):
        import_dataset("../animals", src, layout="image-folder", progress=False)
    with pytest.raises(DatasetNameError, match="data set 'tinyimagenet' .did you mean 'tiny-imag"):
        import_dataset("tinyimagenet", src, progress=False)  # a typo, not a new set
    assert not cache.exists() or sorted(p.name for p in cache.iterdir()) == []
    assert "animals" not in cvlab.data.names()
