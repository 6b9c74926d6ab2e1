"""Makes `import tensorflow` fail, as on a machine without TensorFlow (the GPU machines issue 19
targets). The test suite puts this folder on PYTHONPATH when it runs under KERAS_BACKEND=jax or
torch, so that the test process and every subprocess and papermill kernel it starts see no
TensorFlow, even where it is installed. CVLAB_TEST_ALLOW_TENSORFLOW=1 lets it through again."""

import os
import sys

_BLOCKED = ("tensorflow", "tf_keras", "tensorflow_datasets")


class _NoTensorFlow:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in _BLOCKED and not os.environ.get("CVLAB_TEST_ALLOW_TENSORFLOW"):
            raise ModuleNotFoundError(
                f"No module named {name!r} (blocked by tests/no_tensorflow: under "
                f"KERAS_BACKEND={os.environ.get('KERAS_BACKEND')} cvlab must run without TensorFlow; "
                f"set CVLAB_TEST_ALLOW_TENSORFLOW=1 to allow it)",
                name=name,
            )
        return None


if os.environ.get("KERAS_BACKEND", "tensorflow") != "tensorflow" and not any(
    isinstance(f, _NoTensorFlow) for f in sys.meta_path
):
    sys.meta_path.insert(0, _NoTensorFlow())
