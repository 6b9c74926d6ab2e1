"""The value and the gradient of a function of an *image* (not of the weights), on whichever Keras
backend runs: what DeepDream and style transfer optimise.

    grad_fn = value_and_grad(loss_fn, net.model.variables)   # loss_fn(x, *args) -> (loss, aux)
    loss, aux, grad = grad_fn(image, *args)                  # grad: d loss / d image

Keras 3 has no backend-neutral gradient call (its own training loops differentiate per
backend: `tf.GradientTape`, `jax.value_and_grad`, torch autograd), so this module holds that one
switch, compiled where the backend allows it:

* tensorflow: a `tf.GradientTape` inside `tf.function` (shapes generalised, so octaves of new
  sizes do not retrace for ever);
* jax: `jax.jit(jax.value_and_grad(..., has_aux=True))`, the network's weights passed in as
  arguments through `keras.StatelessScope` (as `Layer.stateless_call` does) rather than baked
  into the compiled program as constants;
* torch: eager autograd (`torch.autograd.grad` with respect to the image only, so no weight
  collects a `.grad`).

`compiled(fn, variables)` is the same without the gradient (a forward pass compiled once).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

GradFn = Callable[..., tuple[Any, Any, Any]]


def backend() -> str:
    """The Keras backend this process runs ("tensorflow", "jax" or "torch")."""
    import keras  # lazy: keras

    return keras.backend.backend()


def value_and_grad(fn: Callable[..., tuple[Any, Any]], variables: Sequence[Any] = ()) -> GradFn:
    """`fn(x, *args) -> (loss, aux)` becomes `g(x, *args) -> (loss, aux, d loss / d x)`,
    compiled on tensorflow and jax. `variables`: the Keras variables `fn` reads (the network's
    weights), passed to the jax program as arguments; `args` are tensors that take no gradient
    (targets), `aux` any nest of tensors returned beside the loss."""
    name = backend()
    if name == "tensorflow":
        return _tf_value_and_grad(fn)
    if name == "jax":
        return _jax_value_and_grad(fn, list(variables))
    if name == "torch":
        return _torch_value_and_grad(fn)
    raise NotImplementedError(f"KERAS_BACKEND={name}: use tensorflow, jax or torch")


def compiled(fn: Callable[..., Any], variables: Sequence[Any] = ()) -> Callable[..., Any]:
    """`fn(*args)` compiled where the backend allows (tf.function, jax.jit with `variables` as
    arguments; torch: eager under `torch.no_grad`), for forward passes taking no gradient."""
    name = backend()
    if name == "tensorflow":
        import tensorflow as tf  # lazy: tensorflow

        return tf.function(fn, reduce_retracing=True)
    if name == "jax":
        import jax  # lazy: jax

        variables = list(variables)
        jitted = jax.jit(_stateless(fn, variables))
        return lambda *args: jitted([v.value for v in variables], *args)
    if name == "torch":
        import torch  # lazy: torch

        def no_grad(*args):
            with torch.no_grad():
                return fn(*args)

        return no_grad
    raise NotImplementedError(f"KERAS_BACKEND={name}: use tensorflow, jax or torch")


def _stateless(fn: Callable[..., Any], variables: list[Any]) -> Callable[..., Any]:
    """`fn` with the values of `variables` as its first argument (read through a StatelessScope,
    so that under jax.jit they are inputs of the program, not constants in it)."""
    import keras  # lazy: keras

    def pure(values, *args):
        with keras.StatelessScope(state_mapping=list(zip(variables, values, strict=True))):
            return fn(*args)

    return pure


def _tf_value_and_grad(fn) -> GradFn:
    import tensorflow as tf  # lazy: tensorflow

    def step(x, *args):
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss, aux = fn(x, *args)
        return loss, aux, tape.gradient(loss, x)

    traced = tf.function(step, reduce_retracing=True)
    return lambda x, *args: traced(tf.convert_to_tensor(x, dtype="float32"), *args)


def _jax_value_and_grad(fn, variables: list[Any]) -> GradFn:
    import jax  # lazy: jax

    pure = _stateless(fn, variables)
    grad = jax.jit(
        jax.value_and_grad(lambda x, values, *args: pure(values, x, *args), has_aux=True)
    )

    def call(x, *args):
        (loss, aux), dx = grad(
            jax.numpy.asarray(x, dtype="float32"), [v.value for v in variables], *args
        )
        return loss, aux, dx

    return call


def _torch_value_and_grad(fn) -> GradFn:
    import keras  # lazy: keras
    import torch  # lazy: torch

    def call(x, *args):
        x = keras.ops.convert_to_tensor(x, dtype="float32").detach().requires_grad_(True)
        with torch.enable_grad():
            loss, aux = fn(x, *args)
            (dx,) = torch.autograd.grad(loss, [x])
        aux = keras.tree.map_structure(lambda t: t.detach() if torch.is_tensor(t) else t, aux)
        return loss.detach(), aux, dx

    return call


__all__ = ["backend", "compiled", "value_and_grad"]
