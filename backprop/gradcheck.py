"""Finite-difference gradient checker, public so users can test their own modules."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .backends import backend_of, kind_of, normal
from .module import Loss, Module

if TYPE_CHECKING:
    from ._typing import Array

__all__ = ["GradcheckError", "gradcheck"]


class GradcheckError(RuntimeError):
    """An analytic gradient disagrees with its central finite difference."""


def _numeric_gradient(f, x, eps):
    """Central differences of the scalar function ``f`` at every entry of ``x``."""
    xp = kind_of(x).xp
    flat = xp.reshape(x, (-1,))
    positions = xp.arange(flat.shape[0], device=backend_of(x).device_of(x))
    grad = []
    for i in range(flat.shape[0]):
        # no in-place write: JAX arrays are immutable
        step = xp.astype(positions == i, flat.dtype) * eps
        plus = f(xp.reshape(flat + step, x.shape))
        minus = f(xp.reshape(flat - step, x.shape))
        grad.append((plus - minus) / (2 * eps))
    return xp.reshape(xp.stack(grad), x.shape) if grad else xp.zeros_like(x)


def _compare(label, analytic, numeric, atol, rtol):
    xp = kind_of(numeric).xp
    if tuple(analytic.shape) != tuple(numeric.shape):
        raise GradcheckError(
            f"{label}: analytic gradient has shape {tuple(analytic.shape)}, expected "
            f"{tuple(numeric.shape)}"
        )
    err = xp.abs(analytic - numeric)
    bad = err > atol + rtol * xp.abs(numeric)
    if bool(xp.any(bad)):
        flat = int(xp.argmax(xp.reshape(err, (-1,))))
        a = float(xp.reshape(analytic, (-1,))[flat])
        n = float(xp.reshape(numeric, (-1,))[flat])
        raise GradcheckError(
            f"{label}: analytic {a:.10g} vs numeric {n:.10g} at flat index {flat} "
            f"(max abs error {float(xp.max(err)):.3g}, atol={atol}, rtol={rtol})"
        )


def _require_float64(x, what):
    kind = kind_of(x)
    if x.dtype != kind.xp.float64:
        raise ValueError(
            f"gradcheck needs float64 arrays ({what} is {x.dtype}); build the module under "
            "backprop.use_backend(dtype='float64')"
        )


def gradcheck(
    target: Module | Loss,
    *inputs: Array,
    eps: float = 1e-6,
    atol: float = 1e-6,
    rtol: float = 1e-5,
    delta: Array | None = None,
    seed: int = 0,
) -> bool:
    """Check backward rules against central finite differences, in float64.

    ``gradcheck(module, X)`` checks ``backward_delta`` and the gradient of
    every parameter (the module's and its children's) of the scalar
    ``sum(module.forward(X) * delta)``, with ``delta`` drawn at random (fixed
    ``seed``) unless given. The module's accumulated gradients are reset.

    ``gradcheck(loss, y, yhat)`` checks ``loss.backward(y, yhat)`` against the
    derivative of ``mean(loss.forward(y, yhat))`` with respect to ``yhat``.

    The module's parameters and the inputs must already be float64 (a float32
    module is refused, not converted): build both under
    ``backprop.use_backend(dtype="float64")``.

    Returns True, or raises :class:`GradcheckError` naming the first gradient
    that disagrees. Pick inputs away from kinks (ReLU at 0, max-pool ties).
    """
    if isinstance(target, Loss):
        if len(inputs) != 2:
            raise TypeError("gradcheck(loss, y, yhat) takes the target and the prediction")
        y, yhat = inputs
        _require_float64(yhat, "yhat")
        xp = kind_of(yhat).xp
        analytic = target.backward(y, yhat)
        numeric = _numeric_gradient(lambda z: xp.mean(target.forward(y, z)), yhat, eps)
        _compare(f"{target!r}.backward", analytic, numeric, atol, rtol)
        return True
    if not isinstance(target, Module):
        raise TypeError(f"gradcheck: expected a Module or a Loss, got {type(target).__name__}")
    if len(inputs) != 1:
        raise TypeError("gradcheck(module, X) takes one input batch")
    (X,) = inputs
    _require_float64(X, "the input")
    for name, p in target.named_parameters():
        _require_float64(p, f"parameter {name}")
    xp = kind_of(X).xp
    out = target.forward(X)
    if delta is None:
        delta = normal(tuple(out.shape), rng=seed, backend=backend_of(X))

    def f(x):
        return xp.sum(target.forward(x) * delta)

    label = target._label()
    target.zero_grad()
    target.forward(X)
    input_grad = target.backward(X, delta)
    grads = {(id(m), k): m._gradient[k] for m, k in target.parameter_slots()}
    _compare(f"{label}.backward_delta", input_grad, _numeric_gradient(f, X, eps), atol, rtol)
    seen = set()
    for m, key in target.parameter_slots():
        if (id(m), key) in seen:
            continue
        seen.add((id(m), key))
        original = m._parameters[key]

        def f_param(p, m=m, key=key, original=original):
            m._parameters[key] = p
            try:
                return f(X)
            finally:
                m._parameters[key] = original

        numeric = _numeric_gradient(f_param, original, eps)
        _compare(
            f"{label}: gradient of {m._label()}.{key}", grads[(id(m), key)], numeric, atol, rtol
        )
    target.forward(X)  # leave the caches consistent with the restored parameters
    return True
