"""Folders of single pictures, used by name: the paintings and photographs of style transfer and
DeepDream (book ch. 14-15).

    style-images     <data cache>/style-images/starry_night.jpg, the_scream.jpg, wave.jpg, ...
    content-photos   <data cache>/content-photos/tubingen.jpg, golden_gate.jpg, ...

`cvlab data import style-images FOLDER` copies a folder of JPEGs into the data cache (the team's
are `../shared/data/style` and `../shared/data/content`: `make import-shared`). Each picture is
known by its file name without the extension:

    picture_names("style-images")                 # ['shipwreck', 'starry_night', ...]
    load_picture("style-images", "starry_night")  # uint8 HxWx3 RGB

As an `ImageIndex` (what `cvlab data list` counts) every picture is its own class, in `test`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cvlab.data.cache import dataset_dir
from cvlab.data.catalog import CatalogEntry, register_dataset
from cvlab.data.dataset import ImageIndex
from cvlab.data.images import read_image
from cvlab.errors import DatasetLayoutError, DatasetNotFoundError
from cvlab.image_prep import as_rgb_uint8, decode

STYLE_IMAGES = "style-images"
CONTENT_PHOTOS = "content-photos"
NAMES = (STYLE_IMAGES, CONTENT_PHOTOS)
SUFFIXES = (".jpg", ".jpeg")
LAYOUT = """\
  <folder>/<picture>.jpg            one picture per file (.jpg or .jpeg), named as it is used
  (a single top folder inside <folder>, as an archive has, is accepted too)"""


def _jpegs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in SUFFIXES)


def find(name: str, directory: str | Path | None = None) -> Path:
    """The folder that holds `name`'s JPEGs: `directory`, else `<data cache>/<name>`, or the one
    folder inside it."""
    base = dataset_dir(name, directory)
    if not base.is_dir():
        raise DatasetNotFoundError(
            f"{name} not found: {base} is not a folder.\nExpected layout:\n{LAYOUT}\n"
            f"Fix: cvlab data import {name} FOLDER (`make import-shared` imports the team's), "
            "or pass directory="
        )
    if _jpegs(base):
        return base
    inner = [p for p in base.iterdir() if p.is_dir() and not p.name.startswith(".")]
    if len(inner) == 1 and _jpegs(inner[0]):
        return inner[0]
    found = sorted(p.name + ("/" if p.is_dir() else "") for p in base.iterdir())
    raise DatasetLayoutError(
        f"{base}: no JPEG pictures (.jpg, .jpeg) in it (found: {', '.join(found[:8]) or 'nothing'})."
        f"\nExpected layout:\n{LAYOUT}\nFix: import a folder of JPEG files"
    )


def index_pictures(name: str, directory: str | Path | None = None) -> ImageIndex:
    """Every picture as its own class, all in `test`."""
    folder = find(name, directory)
    paths = _jpegs(folder)
    stems = [p.stem for p in paths]
    doubles = sorted({s for s in stems if stems.count(s) > 1})
    if doubles:
        raise DatasetLayoutError(
            f"{folder}: two files named {doubles[0]} (.jpg and .jpeg?). Fix: one file per name"
        )
    empty = ([], np.empty(0, dtype=np.int64))
    test = (paths, np.arange(len(paths), dtype=np.int64))
    source = f"{name} at {folder} ({len(paths)} pictures)"
    return ImageIndex(name, stems, {"train": empty, "val": empty, "test": test}, source=source)


@register_dataset(
    name="style-images",
    loadable=False,
    catalog=CatalogEntry(
        "style-images",
        "style images (paintings for style transfer)",
        "a folder of JPEG pictures: <name>.jpg, one painting per file",
        aliases=("style",),
        no_download=(
            "it is a folder of pictures of your choice: the team's paintings are in "
            "../shared/data/style"
        ),
        pictures=True,
    ),
)
def index_style_images(directory: str | Path | None = None) -> ImageIndex:
    return index_pictures(STYLE_IMAGES, directory)


@register_dataset(
    name="content-photos",
    loadable=False,
    catalog=CatalogEntry(
        "content-photos",
        "content photographs (for style transfer and DeepDream)",
        "a folder of JPEG pictures: <name>.jpg, one photograph per file",
        aliases=("content",),
        no_download=(
            "it is a folder of pictures of your choice: the team's photographs are in "
            "../shared/data/content"
        ),
        pictures=True,
    ),
)
def index_content_photos(directory: str | Path | None = None) -> ImageIndex:
    return index_pictures(CONTENT_PHOTOS, directory)


def picture_names(name: str, directory: str | Path | None = None) -> list[str]:
    """The pictures' names (file names without the extension), sorted."""
    return index_pictures(name, directory).class_names


def picture_path(name: str, picture: str, directory: str | Path | None = None) -> Path:
    index = index_pictures(name, directory)
    paths = index.splits["test"][0]
    if picture not in index.class_names:
        raise DatasetNotFoundError(
            f"{name} has no picture {picture!r}; it has: {', '.join(index.class_names)}"
        )
    return paths[index.class_names.index(picture)]


def load_picture(name: str, picture: str, directory: str | Path | None = None) -> np.ndarray:
    """A picture of data set `name` as uint8 HxWx3 RGB, at its own size (`image_prep.decode`)."""
    return decode(picture_path(name, picture, directory))


def picture(spec: str, root: str | Path | None = None) -> tuple[np.ndarray, str]:
    """A picture named the way notebooks name them, and a label for it:

    * "style-images/starry_night", "content-photos/tubingen": a picture of those data sets;
    * "chelsea", "astronaut", "coffee", ...: a photograph scikit-image ships (no data cache);
    * any other string: the path of an image file (a relative one is also tried under `root`,
      e.g. the project folder, since a notebook runs from elsewhere).
    """
    head, _, tail = spec.partition("/")
    if head in NAMES and tail:
        return load_picture(head, tail), f"{tail} ({head})"
    if "/" not in spec and not Path(spec).suffix:
        import skimage.data

        loader = getattr(skimage.data, spec, None)
        if callable(loader):
            # scikit-image's convention: float images are on [0, 1]
            return as_rgb_uint8(loader(), scale="0-1"), f"{spec} (scikit-image)"
    path = Path(spec).expanduser()
    if not path.is_file() and root is not None and not path.is_absolute():
        path = Path(root) / path
    if not path.is_file():
        raise DatasetNotFoundError(
            f"no picture {spec!r}: give 'style-images/<name>' or 'content-photos/<name>' (data "
            "cache), a scikit-image photo name (chelsea, astronaut, coffee, ...), or an image path"
        )
    return read_image(path), path.name


__all__ = [
    "CONTENT_PHOTOS",
    "picture",
    "STYLE_IMAGES",
    "index_pictures",
    "load_picture",
    "picture_names",
    "picture_path",
]
