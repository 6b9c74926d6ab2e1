"""Reading PyTorch's legacy (non-zip) `torch.save` checkpoints into NumPy arrays, without PyTorch.

Why: the offline ImageNet weights (`efficientnet_lite0`) ship as such a file, and installing
PyTorch to read 18 MB of floats would pull a multi-GB CUDA build on many machines.

The stream is five parts: a pickled magic number, the protocol version (1001), a pickled dict
of system info (byte order), the pickled object (tensors rebuilt by
`torch._utils._rebuild_tensor_v2` from storages named by persistent id
`('storage', <FloatStorage...>, key, location, numel, None)`), a pickled list of storage keys,
then per key an 8-byte little-endian element count and the storage's raw bytes.

The unpickler admits only the few globals a weights file needs, so reading a checkpoint runs no
code from it. Tensors keep their offset, sizes and strides: weights saved as permuted views
(their bytes in another order than their shape) come back as the tensor PyTorch would give.
"""

from __future__ import annotations

import collections
import pickle
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from cvlab.errors import CheckpointFormatError

MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
PROTOCOL_VERSION = 1001

# torch.<Name>Storage -> element type (little-endian; swapped below for big-endian files)
STORAGE_DTYPES: dict[str, np.dtype] = {
    "FloatStorage": np.dtype("<f4"),
    "DoubleStorage": np.dtype("<f8"),
    "HalfStorage": np.dtype("<f2"),
    "LongStorage": np.dtype("<i8"),
    "IntStorage": np.dtype("<i4"),
    "ShortStorage": np.dtype("<i2"),
    "CharStorage": np.dtype("i1"),
    "ByteStorage": np.dtype("u1"),
    "BoolStorage": np.dtype("?"),
}


@dataclass(frozen=True)
class _StorageType:
    """What `find_class("torch", "FloatStorage")` returns: only its element type is needed."""

    name: str
    dtype: np.dtype


@dataclass
class _TensorRef:
    """A tensor before its storage's bytes are read (they come after the pickle)."""

    key: str
    offset: int
    size: tuple[int, ...]
    stride: tuple[int, ...]


def _rebuild_tensor_v2(storage, storage_offset, size, stride, *_ignored) -> _TensorRef:
    key, _dtype = storage
    return _TensorRef(key, storage_offset, tuple(size), tuple(stride))


def _rebuild_parameter(data, *_ignored):  # nn.Parameter: the tensor inside is what counts
    return data


class _RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that builds only dicts, storages and tensor references."""

    def __init__(self, file: BinaryIO, path: Path):
        super().__init__(file)
        self.path = path
        self.storages: dict[str, tuple[np.dtype, int]] = {}  # key -> (dtype, element count)

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if module == "torch._utils" and name == "_rebuild_tensor_v2":
            return _rebuild_tensor_v2
        if module == "torch._utils" and name == "_rebuild_parameter":
            return _rebuild_parameter
        if module == "torch" and name in STORAGE_DTYPES:
            return _StorageType(name, STORAGE_DTYPES[name])
        raise CheckpointFormatError(
            f"{self.path}: the checkpoint refers to {module}.{name}, which a file of plain "
            f"tensors does not need; this reader only loads state dicts (refusing to run code "
            f"from the file). Fix: save model.state_dict(), or read it with torch.load"
        )

    def persistent_load(self, pid: Any) -> tuple[str, np.dtype]:
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"):
            raise CheckpointFormatError(f"{self.path}: unknown persistent id {pid!r}")
        storage_type, key, _location, numel = pid[1:5]
        if len(pid) > 5 and pid[5] is not None:
            raise CheckpointFormatError(
                f"{self.path}: storage {key} is a view of another storage (a format older than "
                f"PyTorch 0.4); re-save the checkpoint with a recent PyTorch"
            )
        if not isinstance(storage_type, _StorageType):
            raise CheckpointFormatError(f"{self.path}: storage {key} has no known element type")
        self.storages.setdefault(str(key), (storage_type.dtype, int(numel)))
        return str(key), storage_type.dtype


def _strided(path: Path, name: str, ref: _TensorRef, storage: np.ndarray) -> np.ndarray:
    """The tensor `ref` describes, as a contiguous copy of its elements in `storage`."""
    numbers = (ref.offset, *ref.size, *ref.stride)
    if (
        len(ref.size) != len(ref.stride)
        or not all(isinstance(v, int) for v in numbers)
        or any(v < 0 for v in numbers)
    ):
        raise CheckpointFormatError(
            f"{path}: tensor {name!r} has size {ref.size} and stride {ref.stride}"
        )
    if 0 in ref.size:
        return np.empty(ref.size, dtype=storage.dtype)
    last = ref.offset + sum((d - 1) * s for d, s in zip(ref.size, ref.stride, strict=True))
    if last >= storage.size:
        raise CheckpointFormatError(
            f"{path}: tensor {name!r} (offset {ref.offset}, size {ref.size}, stride {ref.stride}) "
            f"reaches element {last} of a storage of {storage.size}: the file is corrupt"
        )
    base = storage[ref.offset :]
    strides = tuple(s * storage.itemsize for s in ref.stride)
    view = np.lib.stride_tricks.as_strided(base, shape=ref.size, strides=strides, writeable=False)
    return view.copy(order="C")  # (ascontiguousarray would turn a scalar into shape (1,))


def _read_storages(
    file: BinaryIO, path: Path, keys: list[str], storages: dict[str, tuple[np.dtype, int]], swap
) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for key in keys:
        header = file.read(8)
        if len(header) != 8:
            raise CheckpointFormatError(f"{path}: the file ends before storage {key}'s data")
        (count,) = struct.unpack("<q", header)
        if key not in storages:  # its element size is unknown, so the rest cannot be found
            raise CheckpointFormatError(f"{path}: storage {key} is used by no tensor")
        dtype, numel = storages[key]
        if count != numel:
            raise CheckpointFormatError(
                f"{path}: storage {key} holds {count} elements, the tensors expect {numel}"
            )
        raw = file.read(count * dtype.itemsize)
        if len(raw) != count * dtype.itemsize:
            raise CheckpointFormatError(f"{path}: the file ends inside storage {key}'s data")
        out[key] = np.frombuffer(raw, dtype=dtype.newbyteorder(">") if swap else dtype)
    missing = sorted(set(storages) - set(out))
    if missing:
        raise CheckpointFormatError(f"{path}: no data for storage(s) {', '.join(missing[:5])}")
    return out


def load_legacy_checkpoint(path: str | Path) -> dict[str, np.ndarray]:
    """The state dict in a legacy `torch.save` file, as {name: contiguous NumPy array}.

    Raises `CheckpointFormatError` (naming the file) for zip-format checkpoints, other pickled
    objects, unknown globals and truncated files.
    """
    path = Path(path)
    with path.open("rb") as file:
        if file.read(4) == b"PK\x03\x04":
            raise CheckpointFormatError(
                f"{path} is a zip-format checkpoint (torch.save's default since PyTorch 1.6); this "
                f"reader handles the legacy format only. Fix: read it with torch.load, or re-save "
                f"it with torch.save(..., _use_new_zipfile_serialization=False)"
            )
        file.seek(0)
        unpickler = _RestrictedUnpickler(file, path)
        try:
            magic = unpickler.load()
            if magic != MAGIC_NUMBER:
                raise CheckpointFormatError(
                    f"{path} is not a PyTorch checkpoint (no legacy magic number)"
                )
            version = unpickler.load()
            if version != PROTOCOL_VERSION:
                raise CheckpointFormatError(
                    f"{path}: legacy protocol version {version}, expected {PROTOCOL_VERSION}"
                )
            info = unpickler.load()
            state = unpickler.load()
            keys = pickle.Unpickler(file).load()  # a list of strings: nothing to restrict
        except (pickle.UnpicklingError, EOFError, AttributeError, TypeError, ValueError) as exc:
            if isinstance(exc, CheckpointFormatError):
                raise
            raise CheckpointFormatError(
                f"{path} is not a readable legacy PyTorch checkpoint: {type(exc).__name__}: {exc}"
            ) from exc
        swap = isinstance(info, dict) and info.get("little_endian") is False
        storages = _read_storages(file, path, [str(k) for k in keys], unpickler.storages, swap)

    if not isinstance(state, dict):
        raise CheckpointFormatError(
            f"{path} holds a {type(state).__name__}, not a state dict of tensors. "
            f"Fix: save model.state_dict()"
        )
    tensors: dict[str, np.ndarray] = {}
    for name, ref in state.items():
        if not isinstance(ref, _TensorRef):
            raise CheckpointFormatError(
                f"{path}: entry {name!r} is a {type(ref).__name__}, not a tensor; this reader "
                f"loads flat state dicts (name -> tensor). Fix: save model.state_dict()"
            )
        array = _strided(path, str(name), ref, storages[ref.key])
        tensors[str(name)] = array.astype(array.dtype.newbyteorder("="), copy=False)
    return tensors


__all__ = ["CheckpointFormatError", "load_legacy_checkpoint"]
