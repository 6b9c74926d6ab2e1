"""Models by name: `cvlab.models.build("lenet", input_shape=(28, 28, 1), classes=10)`.

Every model registers where it is defined (`@register_model` in `cvlab.models.options`); this
package imports those modules, which stay light (Keras loads when a model is built), so listing
names needs no TensorFlow. `list_models("res*")` lists them with their options, as
`cvlab models` does. Every model takes the Keras option names `input_shape, classes,
include_top, weights, pooling` (the book's networks build their own classifier, so they accept
only `include_top=True` and `pooling=None`; their `weights` is "none", a file or "run:<id>").

For ImageNet models: `decode_predictions(preds)` names the top classes, `predict(model, path)`
shows what the network sees in one photo (both in `cvlab.models.imagenet`)."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

from cvlab.models import (  # noqa: F401 - imported for their registrations
    alexnet,
    applications,
    efficientnet_lite,
    googlenet,
    heads,
    resnet,
    small,
    vgg,
)
from cvlab.models.applications import with_weights
from cvlab.models.options import MODELS, register_model
from cvlab.registry import Entry, Option

# The option names a Keras user knows (keras.applications'), which every model takes.
KERAS_OPTIONS: tuple[Option, ...] = (
    Option("input_shape", None),
    Option("classes", None),
    Option("include_top", True),
    Option("weights", "none"),
    Option("pooling", None),
)

# name -> module: ImageNet helpers, imported on first use (no TensorFlow on `import cvlab.models`)
_LAZY: dict[str, str] = {
    "decode_predictions": "cvlab.models.imagenet",
    "predict": "cvlab.models.imagenet",
    "imagenet_class_names": "cvlab.models.imagenet",
    "preprocessing": "cvlab.models.applications",
}


@dataclass(frozen=True)
class ModelInfo:
    """One row of `list_models` / `cvlab models`: a name, what it is, the options it takes."""

    name: str
    description: str
    options: tuple[Option, ...]
    target: str  # module:function

    def options_text(self) -> str:
        return ", ".join(map(str, self.options))


def names(pattern: str | None = None) -> list[str]:
    """Every registered model name, sorted (`pattern`: a shell glob such as "res*")."""
    return MODELS.names(pattern)


def _options(entry: Entry) -> tuple[Option, ...]:
    """The builder's own options, plus the Keras names it does not spell itself."""
    own = entry.option_names()
    return (*entry.options, *(o for o in KERAS_OPTIONS if o.name not in own))


def list_models(pattern: str | None = None) -> list[ModelInfo]:
    """The registered models matching `pattern` (a shell glob; all by default), with options."""
    return [
        ModelInfo(e.name, e.description, _options(e), e.target) for e in MODELS.entries(pattern)
    ]


def build(name: str, /, **options: Any):
    """Build the Keras model registered as `name` with its options."""
    entry = MODELS.get(name)
    own = set(entry.option_names())
    if "weights" in own and "include_top" in own:
        return entry.builder(**options)
    include_top = options.pop("include_top", True) if "include_top" not in own else True
    pooling = options.pop("pooling", None) if "pooling" not in own else None
    if include_top not in (True, None) or pooling is not None:  # None: "the model's default"
        backbones = ", ".join(n for n in names() if "include_top" in MODELS.get(n).option_names())
        raise ValueError(
            f"{name} builds its own classifier: include_top={include_top!r}, pooling={pooling!r} "
            f"apply to the ImageNet backbones ({backbones}). Fix: leave them out, or build a "
            f"backbone and put a new head on it with build('fchead', base=...)"
        )
    if "weights" in own:
        return entry.builder(**options)
    weights = options.pop("weights", "none")
    return with_weights(
        name,
        lambda: entry.builder(**options),
        weights,
        input_shape=options.get("input_shape"),
        classes=options.get("classes"),
    )


create_model = build  # timm's name


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    if name == "_BUILDERS":  # name -> "module:function", read from the registrations
        return {e.name: e.target for e in MODELS.entries()}
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "KERAS_OPTIONS",
    "MODELS",
    "ModelInfo",
    "build",
    "create_model",
    "decode_predictions",
    "imagenet_class_names",
    "list_models",
    "names",
    "predict",
    "preprocessing",
    "register_model",
]
