"""The data set registry: every data set registers in its own module with its loader, its
indexer (sets stored as image files) and its catalog entry (what `cvlab data import/fetch/list`
know: folder name, official download, layout).

    @register_dataset(name="flowers17", index=index_flowers17, catalog=CatalogEntry(...))
    def load_flowers17(directory=None, *, size=224, ...): ...

Each catalog entry's folder in the data cache is its registry name (`<data cache>/tiny-imagenet/`),
which is where `cvlab.data.load(name)` looks first. A user's own data sets (imported with
`cvlab data import NAME PATH --layout image-folder`) are read from the cache's manifests by
`cvlab.data.install`, not registered here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from cvlab.errors import UnknownNameError
from cvlab.registry import Entry, Registry, first_line


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
    # a folder of pictures (style transfer, DeepDream), not a labelled data set: read with
    # cvlab.data.pictures, not cvlab.data.load
    pictures: bool = False


# name -> the registered data set; filled by `register_dataset` in the loader modules, which
# `cvlab.data` imports.
DATASETS = Registry("data set")
# name -> catalog entry of every registered set `cvlab data import/fetch` know (built-in names)
CATALOG: dict[str, CatalogEntry] = {}


def register_dataset(
    *,
    name: str,
    index: Callable[..., Any] | None = None,
    catalog: CatalogEntry | None = None,
    loadable: bool = True,
    layout: str | None = None,
    description: str | None = None,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register the decorated loader as data set `name`, with its indexer (file-based sets) and
    catalog entry (importable sets). `loadable=False`: the decorated function is the indexer of
    a set `cvlab.data.load` does not return (folders of pictures). `layout`: the set is also a
    layout users import their own data sets in (`cvlab data import NAME PATH --layout name`),
    the text says what it expects; its loader and indexer take `directory=`."""

    def add(func: Callable[..., Any]) -> Callable[..., Any]:
        if catalog is not None:
            if catalog.name != name:
                raise ValueError(f"catalog entry {catalog.name!r} registered as {name!r}")
            CATALOG[name] = catalog
        return DATASETS.register(
            func,
            name=name,
            description=description
            if description is not None
            else (catalog.title if catalog else first_line(func.__doc__)),
            index=index if loadable else func,
            catalog=catalog,
            loadable=loadable,
            layout=layout,
        )

    return add


def dataset(name: str, kind: str = "data set") -> Entry:
    """The registered data set `name` (UnknownNameError naming the loadable ones otherwise)."""
    if name in DATASETS and DATASETS.get(name).extra["loadable"]:
        return DATASETS.get(name)
    raise UnknownNameError(kind, name, loadable_names())


def loadable_names() -> list[str]:
    return [e.name for e in DATASETS.entries() if e.extra["loadable"]]


def indexed_names() -> list[str]:
    return [e.name for e in DATASETS.entries() if e.extra["loadable"] and e.extra["index"]]


def indexer(name: str) -> Callable[..., Any]:
    """The function that indexes a built-in set's files (catalog sets and file-based ones)."""
    found = DATASETS.get(name).extra["index"] if name in DATASETS else None
    if found is None:
        raise UnknownNameError("file-based data set", name, indexed_names())
    return found


def layouts() -> list[str]:
    """The layouts a user's own data set can be imported in (`--layout`)."""
    return [e.name for e in DATASETS.entries() if e.extra["layout"]]


def layout(name: str) -> Entry:
    if name in layouts():
        return DATASETS.get(name)
    raise UnknownNameError("layout", name, layouts())


def entry(name: str) -> CatalogEntry:
    """The catalog entry for a registry name or an archive alias (`tiny-imagenet-200`)."""
    if name in CATALOG:
        return CATALOG[name]
    for candidate in CATALOG.values():
        if name in candidate.aliases:
            return candidate
    raise UnknownNameError("importable data set", name, list(CATALOG))
