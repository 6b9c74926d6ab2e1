"""Things registered by name where they are defined, created by name, listed with patterns.

timm's `@register_model` / `create_model` / `list_models("res*")` are the model:

    MODELS = Registry("model")

    @MODELS.register
    def lenet(input_shape=(28, 28, 1), classes=10): ...   # in the module that defines it

    MODELS.create("lenet", classes=3)
    MODELS.names("*net")                                  # fnmatch patterns, sorted

Each entry keeps a one-line description (its docstring's first line) and its options (read from
the signature), so a listing can show what can be built and how. A registry only knows the
entries of modules imported so far: a package imports its registering modules, which therefore
stay cheap to import (`lazy_module` keeps Keras out until a builder runs).
"""

from __future__ import annotations

import difflib
import fnmatch
import importlib
import inspect
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from cvlab.errors import UnknownNameError


@dataclass(frozen=True)
class Option:
    """One keyword a registered builder takes, with its default (`REQUIRED` when it has none)."""

    name: str
    default: Any = inspect.Parameter.empty

    @property
    def required(self) -> bool:
        return self.default is inspect.Parameter.empty

    def __str__(self) -> str:
        return self.name if self.required else f"{self.name}={self.default!r}"


@dataclass(frozen=True)
class Entry:
    """A registered name: what builds it, what it is in a line, which options it takes, and
    whatever else the registry's kind records (a data set's indexer and catalog entry)."""

    name: str
    defined: Callable[..., Any]  # the function as registered
    description: str = ""
    options: tuple[Option, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def builder(self) -> Callable[..., Any]:
        """The function its module holds under that name now (a test's monkeypatch or a
        reload included, as the old `module:function` tables resolved it), else the one
        registered."""
        module = sys.modules.get(self.defined.__module__)
        return getattr(module, self.defined.__name__, self.defined)

    @property
    def target(self) -> str:
        """`module:function` of the builder (where to read its code)."""
        return f"{self.defined.__module__}:{self.defined.__name__}"

    def option_names(self) -> list[str]:
        return [o.name for o in self.options]


def first_line(doc: str | None) -> str:
    """A docstring's first sentence (its first paragraph, up to the first full stop), for a
    one-line description."""
    if not doc:
        return ""
    paragraph = " ".join(inspect.cleandoc(doc).split("\n\n")[0].split())
    end = paragraph.find(". ")
    return paragraph if end < 0 else paragraph[: end + 1]


def options_of(builder: Callable[..., Any], skip: tuple[str, ...] = ()) -> tuple[Option, ...]:
    """The keyword options of `builder`'s signature (not *args / **kwargs, not `skip`)."""
    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    return tuple(
        Option(p.name, p.default)
        for p in inspect.signature(builder).parameters.values()
        if p.kind in kinds and p.name not in skip
    )


class Registry:
    """Names of one kind ("model", "data set") → `Entry`, filled by `register` where defined."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, Entry] = {}

    def register(
        self,
        builder: Callable[..., Any] | None = None,
        /,
        *,
        name: str | None = None,
        description: str | None = None,
        skip_options: tuple[str, ...] = (),
        **extra: Any,
    ) -> Any:
        """Register `builder` under `name` (default: its function name). Usable bare
        (`@REG.register`), with keywords (`@REG.register(name="tiny-imagenet")`) or as a call."""

        def add(func: Callable[..., Any]) -> Callable[..., Any]:
            key = name or func.__name__
            if key in self._entries and self._entries[key].defined is not func:
                raise ValueError(
                    f"{self.kind} {key!r} is registered twice: by "
                    f"{self._entries[key].target} and by {func.__module__}:{func.__name__}"
                )
            self._entries[key] = Entry(
                key,
                func,
                description if description is not None else first_line(func.__doc__),
                options_of(func, skip_options),
                dict(extra),
            )
            return func

        return add if builder is None else add(builder)

    def unknown(self, name: str) -> UnknownNameError:
        return UnknownNameError(self.kind, name, list(self._entries))

    def get(self, name: str) -> Entry:
        try:
            return self._entries[name]
        except (KeyError, TypeError):
            raise self.unknown(name) from None

    def create(self, name: str, /, **options: Any) -> Any:
        """Call `name`'s builder with `options`."""
        return self.get(name).builder(**options)

    def names(self, pattern: str | None = None) -> list[str]:
        """Registered names, sorted; `pattern` filters them as a shell glob (`res*`, `*net`)."""
        return [e.name for e in self.entries(pattern)]

    def entries(self, pattern: str | None = None) -> list[Entry]:
        return [self._entries[key] for key in fnmatch_names(self._entries, pattern)]

    def suggest(self, name: str) -> str | None:
        """The closest registered name to a misspelt one (difflib), if any is close."""
        close = difflib.get_close_matches(name, list(self._entries), n=1, cutoff=0.6)
        return close[0] if close else None

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._entries))

    def __len__(self) -> int:
        return len(self._entries)


def fnmatch_names(names: Iterable[str], pattern: str | None = None) -> list[str]:
    """`names` sorted, those matching the shell glob `pattern` when given (case-sensitive)."""
    return sorted(n for n in names if pattern is None or fnmatch.fnmatchcase(n, pattern))


class _LazyModule(ModuleType):
    """A module imported on first attribute access (see `lazy_module`)."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.__dict__["_cvlab_target"] = name

    def __getattr__(self, attr: str) -> Any:
        module = importlib.import_module(self.__dict__["_cvlab_target"])
        return getattr(module, attr)

    def __repr__(self) -> str:
        return f"<lazy module {self.__dict__['_cvlab_target']!r}>"


def lazy_module(name: str) -> ModuleType:
    """`name` imported when first used, so a registering module stays cheap to import:
    `keras = lazy_module("keras")`, `layers = lazy_module("keras.layers")`.

    Written here because the stdlib's `importlib.util.LazyLoader` (and `lazy_loader.load`, built
    on it) imports a submodule's parent package at once: `keras.layers` would load Keras.
    """
    return _LazyModule(name)


__all__ = [
    "Entry",
    "Option",
    "Registry",
    "first_line",
    "fnmatch_names",
    "lazy_module",
    "options_of",
]
