"""Channel ordering of the book's networks: `channels="last"` (NHWC, the default and what CPUs
want) or `"first"` (NCHW, the book's `chanDim = 1`, often faster with cuDNN on a GPU).

Inputs stay height × width × channels either way, as every cvlab data pipeline delivers them: a
channels-first network transposes its input once, in a `Permute` layer, then runs every
convolution, pooling, batch norm and concatenation on channels-first tensors. Weights have the
same shapes in both orders (Keras keeps kernels HWIO and flattens channels-first maps in
channels-last order), so a model's weights load into the other ordering unchanged.

The builders set the ordering for their whole body with `channel_order(...)`, and the module
functions they share (the book's `conv_module`, inception modules, residual modules) read it
with `data_format()` / `channel_axis()`: that keeps those functions' signatures the book's,
instead of threading a `chanDim` argument through every one of them.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Literal

from cvlab.registry import lazy_module

layers = lazy_module("keras.layers")  # lazy: keras (listing models needs no Keras)


Channels = Literal["last", "first"]
CHANNELS: tuple[Channels, ...] = ("last", "first")
_current: ContextVar[Channels] = ContextVar("cvlab_channels", default="last")


def check_channels(model: str, channels: str) -> Channels:
    if channels not in CHANNELS:
        raise ValueError(
            f"{model}: channels must be 'last' (height, width, channels) or 'first' "
            f"(channels, height, width), got {channels!r}"
        )
    return channels  # type: ignore[return-value]


@contextmanager
def channel_order(channels: Channels) -> Iterator[None]:
    """Build layers in `channels` ordering inside the block."""
    token = _current.set(channels)
    try:
        yield
    finally:
        _current.reset(token)


def data_format() -> str:
    """The Keras `data_format` of the ordering being built."""
    return "channels_first" if _current.get() == "first" else "channels_last"


def channel_axis() -> int:
    """The axis of channels in feature maps (the book's `chanDim`): -1, or 1 channels-first."""
    return 1 if _current.get() == "first" else -1


def to_model_order(x):
    """An HWC input tensor in the ordering being built (a transpose when channels-first)."""
    return (
        layers.Permute((3, 1, 2), name="to_channels_first")(x) if _current.get() == "first" else x
    )
