"""The Keras backends cvlab runs on: which names exist, whether one is installed, which extra
installs it, what device the running one computes on, and an NVIDIA GPU it cannot see.

A foundation module: nothing here imports a framework at module level; `check_backend`,
`nvidia_gpu_present` and `backend_sees_gpu` read only installed metadata and the driver, so the
grid driver can call them before any kernel (and without TensorFlow installed).
"""

from __future__ import annotations

import difflib
import importlib.util
import os
import shutil
import subprocess
import sys
from importlib import metadata

from cvlab.errors import BackendNotInstalledError, UnknownBackendError

BACKENDS = ("tensorflow", "jax", "torch")
DEFAULT_BACKEND = "tensorflow"
ENV_VAR = "KERAS_BACKEND"

# The top-level modules a backend needs (found with find_spec, never imported).
_MODULES = {"tensorflow": ("tensorflow",), "jax": ("jax", "jaxlib"), "torch": ("torch",)}
# What installs a backend on a CPU machine, and with CUDA on a Linux NVIDIA machine.
INSTALL = {
    "tensorflow": "pip install -e .",
    "jax": "pip install -e '.[jax]'",
    "torch": "pip install -e '.[torch]'",
}
GPU_INSTALL = {
    "tensorflow": "pip install -e '.[gpu]'  (or: make setup GPU=1)",
    "jax": "pip install -e '.[jax-cuda]'  (or: make setup GPU=1 BACKEND=jax)",
    "torch": (
        "pip install -e '.[torch]' --extra-index-url https://download.pytorch.org/whl/cu128  "
        "(or: make setup GPU=1 BACKEND=torch)"
    ),
}

__all__ = [
    "BACKENDS",
    "DEFAULT_BACKEND",
    "ENV_VAR",
    "backend_env",
    "backend_sees_gpu",
    "check_backend",
    "chosen_backend",
    "describe_device",
    "gpu_compute_capability",
    "gpu_warning",
    "has_gpu",
    "is_installed",
    "nvidia_gpu_present",
]


def chosen_backend(*choices: str | None) -> str:
    """The first backend named in `choices` (e.g. --backend, then the grid's `backend:`), else
    $KERAS_BACKEND, else TensorFlow. Not checked: see `check_backend`."""
    for choice in choices:
        if choice:
            return str(choice).strip().lower()
    return (os.environ.get(ENV_VAR) or DEFAULT_BACKEND).strip().lower()


def is_installed(name: str) -> bool:
    """Whether the backend's packages are importable here (metadata only, no import)."""
    return all(importlib.util.find_spec(module) is not None for module in _MODULES[name])


def check_backend(name: str, *, where: str = "backend") -> str:
    """`name` if it is a Keras backend installed here; else UnknownBackendError (naming the three,
    and the closest one) or BackendNotInstalledError (naming the extra that installs it)."""
    key = str(name).strip().lower()
    if key not in BACKENDS:
        close = difflib.get_close_matches(key, BACKENDS, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise UnknownBackendError(
            f"{where}: unknown Keras backend {name!r}; use one of: {', '.join(BACKENDS)}.{hint}"
        )
    if not is_installed(key):
        raise BackendNotInstalledError(
            f"{where}: the Keras backend {key!r} is not installed in {sys.prefix}. "
            f"Fix: {INSTALL[key]} (on a Linux machine with an NVIDIA GPU: {GPU_INSTALL[key]})"
        )
    return key


def backend_env(name: str) -> dict[str, str]:
    """What a kernel's environment needs so that Keras picks `name` at its first import."""
    return {ENV_VAR: name}


def nvidia_gpu_present() -> bool:
    """Whether this machine has an NVIDIA GPU with its driver loaded (no framework import)."""
    if os.path.isdir("/proc/driver/nvidia/gpus") and os.listdir("/proc/driver/nvidia/gpus"):
        return True
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return False
    try:
        out = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return False
    return out.returncode == 0 and "GPU" in out.stdout


def _dist_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def backend_sees_gpu(name: str) -> bool:
    """Whether the backend's installed build can use an NVIDIA GPU, read from the installed
    distributions (importing TensorFlow just to ask would cost the driver seconds): TensorFlow
    with its CUDA libraries (`tensorflow[and-cuda]`), jaxlib with a CUDA plugin, a torch build
    that is not `+cpu`."""
    if name == "tensorflow":
        if _dist_version("tensorflow") is None:  # only tensorflow-cpu (or nothing)
            return False
        return any(
            _dist_version(lib) is not None for lib in ("nvidia-cudnn-cu12", "nvidia-cudnn-cu13")
        )
    if name == "jax":
        return any(
            _dist_version(plugin) is not None
            for plugin in ("jax-cuda12-plugin", "jax-cuda13-plugin", "jax-cuda12-pjrt")
        )
    if name == "torch":
        version = _dist_version("torch")
        return version is not None and "+cpu" not in version
    return False


def gpu_warning(name: str) -> str | None:
    """The warning for an NVIDIA GPU here that backend `name` will not use, or None."""
    if not nvidia_gpu_present() or backend_sees_gpu(name):
        return None
    return (
        f"this machine has an NVIDIA GPU, but the {name} backend installed here is a CPU build: "
        f"the runs will train on the CPU. To use the GPU: {GPU_INSTALL[name]}"
    )


def describe_device() -> str:
    """The device the running Keras backend computes on: the GPU's model name, or "CPU"."""
    import keras  # lazy: keras

    backend = keras.config.backend()
    if backend == "tensorflow":
        import tensorflow as tf  # lazy: tensorflow

        gpus = tf.config.list_physical_devices("GPU")
        if gpus:
            details = tf.config.experimental.get_device_details(gpus[0])
            return str(details.get("device_name") or "GPU")
    elif backend == "torch":
        import torch  # lazy: torch

        if torch.cuda.is_available():
            return str(torch.cuda.get_device_name(0))
    elif backend == "jax":
        import jax  # lazy: jax

        device = jax.devices()[0]
        if device.platform != "cpu":
            return str(device.device_kind)
    return "CPU"


def gpu_compute_capability() -> tuple[int, int] | None:
    """The CUDA compute capability of the running backend's first GPU (e.g. (9, 0) for an H100
    or H200), or None without an NVIDIA GPU or when the backend does not say."""
    import keras  # lazy: keras

    backend = keras.config.backend()
    try:
        if backend == "tensorflow":
            import tensorflow as tf  # lazy: tensorflow

            gpus = tf.config.list_physical_devices("GPU")
            if gpus:
                cc = tf.config.experimental.get_device_details(gpus[0]).get("compute_capability")
                return (int(cc[0]), int(cc[1])) if cc else None
        elif backend == "torch":
            import torch  # lazy: torch

            if torch.cuda.is_available():
                return tuple(torch.cuda.get_device_capability(0))  # type: ignore[return-value]
        elif backend == "jax":
            import jax  # lazy: jax

            device = jax.devices()[0]
            cc = getattr(device, "compute_capability", None)
            if device.platform == "gpu" and cc:
                major, _, minor = str(cc).partition(".")
                return int(major), int(minor or 0)
    except (RuntimeError, ValueError, TypeError, IndexError):
        return None
    return None


def has_gpu() -> bool:
    """Whether the running Keras backend computes on a GPU."""
    return describe_device() != "CPU"
