"""The data sets `cvlab data import/fetch/list` know: folder name, official download, layout.

Each entry's folder in the data cache is its registry name (`<data cache>/tiny-imagenet/`),
which is where `cvlab.data.load(name)` looks first.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from cvlab.errors import UnknownNameError


@dataclass(frozen=True)
class Download:
    """An official source: the file's URL and, where published, its MD5."""

    url: str
    md5: str | None = None

    @property
    def file_name(self) -> str:
        return self.url.rsplit("/", 1)[-1]


@dataclass(frozen=True)
class CatalogEntry:
    """What the installer needs to know about one data set."""

    name: str  # registry name = folder in the data cache
    title: str
    expected: str  # the file or folder whose absence means "wrong layout"
    aliases: tuple[str, ...] = ()  # archive stems that mean this set (tiny-imagenet-200)
    download: Download | None = None
    no_download: str = ""  # why there is no `fetch`, and where to get the files instead
    classes: int | None = None  # the class count a correct copy has (None: any)
    # options that make the indexer report the data set's own splits (nothing carved)
    survey_options: dict[str, Any] = field(default_factory=dict)
    # "module:function" that indexes the layout, for sets `cvlab.data.index` does not name
    indexer: str = ""


CATALOG: dict[str, CatalogEntry] = {
    entry.name: entry
    for entry in [
        CatalogEntry(
            "cifar10",
            "CIFAR-10",
            "train/<class>/*.jpg + test/<class>/*.jpg, or cifar-10-batches-py/data_batch_1",
            aliases=("cifar-10-python", "cifar-10-batches-py", "cifar-10"),
            download=Download(
                "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
                md5="c58f30108f718f92721af3b95e74349a",
            ),
            survey_options={"val_fraction": 0},
            classes=10,
        ),
        CatalogEntry(
            "tiny-imagenet",
            "Tiny ImageNet",
            "tiny-imagenet-200/wnids.txt (with train/ and val/ beside it)",
            aliases=("tiny-imagenet-200",),
            download=Download("http://cs231n.stanford.edu/tiny-imagenet-200.zip"),
            survey_options={"test_size": 0},
            classes=200,
        ),
        CatalogEntry(
            "flowers17",
            "Oxford Flowers-17",
            "<class>/image_XXXX.jpg folders, or jpg/image_0001.jpg (Oxford's 17flowers.tgz)",
            aliases=("17flowers", "flowers-17"),
            download=Download("https://www.robots.ox.ac.uk/~vgg/data/flowers/17/17flowers.tgz"),
            survey_options={"val_fraction": 0, "test_fraction": 0},
            classes=17,
        ),
        CatalogEntry(
            "dogs-vs-cats",
            "Kaggle Dogs vs. Cats",
            "train/cat.0.jpg ... dog.0.jpg (Kaggle's train.zip)",
            aliases=("dogs-vs-cats-redux-kernels-edition",),
            no_download=(
                "Kaggle serves it only to signed-in users: download train.zip from the "
                "'Dogs vs. Cats' competition page on kaggle.com"
            ),
            survey_options={"val_fraction": 0, "test_fraction": 0},
            classes=2,
        ),
        CatalogEntry(
            "imagenet-sample",
            "ImageNet sample (one image per class)",
            "labels.csv (columns file,wnid,index) beside <wnid>_<name>.JPEG files",
            no_download="it has no official source: use the imagenet-sample archive you were given",
        ),
        CatalogEntry(
            "style-images",
            "style images (paintings for style transfer)",
            "a folder of JPEG pictures: <name>.jpg, one painting per file",
            aliases=("style",),
            no_download=(
                "it is a folder of pictures of your choice: the team's paintings are in "
                "../shared/data/style"
            ),
            indexer="cvlab.data.pictures:index_style_images",
        ),
        CatalogEntry(
            "content-photos",
            "content photographs (for style transfer and DeepDream)",
            "a folder of JPEG pictures: <name>.jpg, one photograph per file",
            aliases=("content",),
            no_download=(
                "it is a folder of pictures of your choice: the team's photographs are in "
                "../shared/data/content"
            ),
            indexer="cvlab.data.pictures:index_content_photos",
        ),
    ]
}


def entry(name: str) -> CatalogEntry:
    """The catalog entry for a registry name or an archive alias (`tiny-imagenet-200`)."""
    if name in CATALOG:
        return CATALOG[name]
    for candidate in CATALOG.values():
        if name in candidate.aliases:
            return candidate
    raise UnknownNameError("importable data set", name, list(CATALOG))
