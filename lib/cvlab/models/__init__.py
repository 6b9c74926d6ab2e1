"""Models by name: `cvlab.models.build("lenet", input_shape=(28, 28, 1), classes=10)`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from cvlab.errors import UnknownNameError

_BUILDERS: dict[str, str] = {
    # name -> "module:function", imported on first use so listing names needs no TensorFlow
    "shallownet": "cvlab.models.small:shallownet",
    "lenet": "cvlab.models.small:lenet",
    "resnet": "cvlab.models.resnet:resnet",
}


def names() -> list[str]:
    return sorted(_BUILDERS)


def _builder(name: str) -> Callable[..., Any]:
    import importlib

    try:
        module, func = _BUILDERS[name].split(":")
    except KeyError:
        raise UnknownNameError("model", name, list(_BUILDERS)) from None
    return getattr(importlib.import_module(module), func)


def build(name: str, /, **options: Any):
    """Build the Keras model registered as `name` with its options."""
    return _builder(name)(**options)


__all__ = ["build", "names"]
