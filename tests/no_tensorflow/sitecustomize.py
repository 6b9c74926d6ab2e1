"""Makes `import tensorflow` fail, as on a machine without TensorFlow (the GPU machines issue 19
targets). The test suite puts this folder on PYTHONPATH when it runs under KERAS_BACKEND=jax or
torch, so that the test process and every subprocess and papermill kernel it starts see no
TensorFlow, even where it is installed. CVLAB_TEST_ALLOW_TENSORFLOW=1 lets it through again."""

import os
import sys

_BLOCKED = ("tensorflow", "tf_keras", "tensorflow_datasets")


class _NoTensorFlow:
    def find_spec(self, name, path=None, target=None):
        if _blocked(name):
            raise ModuleNotFoundError(
                f"No module named {name!r} (blocked by tests/no_tensorflow: under "
                f"KERAS_BACKEND={os.environ.get('KERAS_BACKEND')} cvlab must run without TensorFlow; "
                f"set CVLAB_TEST_ALLOW_TENSORFLOW=1 to allow it)",
                name=name,
            )
        return None


def _blocked(name: str) -> bool:
    return name.split(".")[0] in _BLOCKED and not os.environ.get("CVLAB_TEST_ALLOW_TENSORFLOW")


def _hide_from_probes(find_spec):
    """`importlib.util.find_spec("tensorflow")` answers None, as where it is not installed
    (libraries probe with it, torch._dynamo among them, and do not expect it to raise)."""

    def probe(name, package=None):
        return None if _blocked(name) else find_spec(name, package)

    probe._cvlab_no_tensorflow = True
    return probe


if os.environ.get("KERAS_BACKEND", "tensorflow") != "tensorflow" and not any(
    type(f).__name__ == "_NoTensorFlow" for f in sys.meta_path
):
    import importlib.util

    sys.meta_path.insert(0, _NoTensorFlow())
    if not getattr(importlib.util.find_spec, "_cvlab_no_tensorflow", False):
        importlib.util.find_spec = _hide_from_probes(importlib.util.find_spec)
