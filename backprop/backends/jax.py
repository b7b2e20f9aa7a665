"""JAX arrays, which are immutable: every write is functional (``.at[...]``).

The window primitives avoid ``.at[strided slice]``, which lowers to a scatter
(slow on XLA's CPU backend): a kernel offset's values are put in place with
``lax.pad`` (its interior padding is the stride) and the offsets summed, or,
for windows that tile the input, stacked and reshaped into place. XLA fuses
either into one loop.

float64 needs JAX's ``jax_enable_x64`` flag; asking for a float64 backend
turns it on (JAX would otherwise truncate float64 data to float32 without a
word). Arrays inside ``jax.jit`` are tracers: they are recognised as JAX
arrays, and have no device, so device checks pass them through.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any

import jax
import jax.numpy as jnp
import numpy as np

from .base import Backend, BackendUnavailableError, first_max_masks, offset_slices

if TYPE_CHECKING:
    from .._typing import Array, DType


_DIMENSIONS = {1: ("NWC", "WIO", "NWC"), 2: ("NHWC", "HWIO", "NHWC")}


def _conv(x, weight, strides):
    return jax.lax.conv_general_dilated(
        x, weight, strides, "VALID", dimension_numbers=_DIMENSIONS[x.ndim - 2]
    )


@partial(jax.jit, static_argnums=(3, 4, 5))
def _conv_grads(x, weight, delta, strides, input_grad, param_grad):
    _, vjp = jax.vjp(lambda a, w: _conv(a, w, strides), x, weight)
    dx, dw = vjp(delta)
    return (dx if input_grad else None), (dw if param_grad else None)


class JaxBackend(Backend):
    """JAX arrays (``device`` ``cpu``, ``gpu``, ``cuda:1``, ...)."""

    name = "jax"
    xp = jnp
    array_type = jax.Array
    mutable = False

    @classmethod
    def wide_int(cls) -> DType:
        # without jax_enable_x64, int64 is truncated to int32 with a warning
        return jnp.int64 if jax.config.jax_enable_x64 else jnp.int32

    @classmethod
    def device_of(cls, x: Array) -> jax.Device | None:
        try:
            return x.device
        except AttributeError:  # a tracer inside jax.jit has no device
            return None

    def on_device(self, x: Array) -> bool:
        device = self.device_of(x)
        return device is None or device == self.device

    @classmethod
    def devices(cls) -> list:
        return list(jax.devices())

    @classmethod
    def resolve_device(cls, spec: jax.Device | str | None) -> jax.Device:
        if spec is None:
            return jax.devices()[0]
        if isinstance(spec, jax.Device):
            return spec
        kind, _, index = str(spec).partition(":")
        kind = {"cuda": "gpu"}.get(kind, kind)
        if kind not in ("cpu", "gpu", "tpu") or (index and not index.isdigit()):
            raise ValueError(
                f"backend 'jax': cannot read device {spec!r}; use e.g. 'cpu', 'gpu' or 'cuda:1'"
            )
        try:
            found = jax.devices(kind)
        except RuntimeError:
            found = []
        i = int(index or 0)
        if i >= len(found):
            raise BackendUnavailableError(
                f"backend 'jax': no {kind} device {i} ({len(found)} {kind} device(s) visible)"
            )
        return found[i]

    def _check_dtype(self, dtype_name: str) -> None:
        if dtype_name == "float64" and not jax.config.jax_enable_x64:
            jax.config.update("jax_enable_x64", True)

    @classmethod
    def to_host(cls, x: jax.Array) -> np.ndarray:
        return np.asarray(x)

    def from_host(self, a: np.ndarray) -> jax.Array:
        if a.dtype == np.float64 and not jax.config.jax_enable_x64:
            # only data asked for in float64 comes here (floating data takes the backend's
            # dtype first): JAX would narrow it to float32 without a word
            raise ValueError(
                "backend 'jax': float64 data needs jax_enable_x64, which this float32 backend "
                "leaves off; use a float64 backend (use_backend('jax', dtype='float64')) or set "
                "JAX_ENABLE_X64=1"
            )
        if a.dtype.itemsize == 8 and a.dtype.kind in "fiu" and not jax.config.jax_enable_x64:
            # without x64, JAX would narrow 64-bit data silently: do it here,
            # where the value range is known (labels and counts fit in 32 bits)
            target = {"f": np.float32, "i": np.int32, "u": np.uint32}[a.dtype.kind]
            if (
                a.dtype.kind != "f"
                and a.size
                and (a.max() > np.iinfo(target).max or a.min() < np.iinfo(target).min)
            ):
                raise ValueError(
                    "backend 'jax': integers beyond 32 bits need jax_enable_x64 "
                    "(set JAX_ENABLE_X64=1 or use a float64 backend)"
                )
            a = a.astype(target)
        return jax.device_put(a, self.device)

    def to_device(self, x: jax.Array) -> jax.Array:
        return jax.device_put(x, self.device)

    def synchronize(self, *arrays: jax.Array) -> None:
        # JAX dispatches asynchronously: wait for the arrays themselves
        jax.block_until_ready(arrays)

    def copy(self, x: jax.Array) -> jax.Array:
        return x

    compiles = True

    def index_add_rows(self, target: Array, index: Array, values: Array) -> Array:
        return target.at[index].add(values)

    def compile(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        return jax.jit(fn)

    # ------------------------------------------------------------ convolution
    # XLA's own 2-D convolution (lax.conv_general_dilated, channels last as backprop's layout)
    # and its gradients from jax.vjp, compiled once per shape (inlined inside a compiled step).
    # 1-D layers keep the standard path: on the 1-D CNN (one input channel, kernel 3) the
    # native convolution measured slower in the compiled step at batch 256.

    def conv(self, x, weight, bias, strides):
        d = x.ndim - 2
        if d != 2:
            return super().conv(x, weight, bias, strides)
        y = _conv(x, weight, tuple(strides))
        return (y if bias is None else y + bias), None

    def conv_backward(
        self, x, weight, delta, strides, saved=None, *, bias=True, input_grad=True, param_grad=True
    ):
        d = x.ndim - 2
        if d != 2:
            return super().conv_backward(
                x, weight, delta, strides, saved,
                bias=bias, input_grad=input_grad, param_grad=param_grad,
            )  # fmt: skip
        if not (input_grad or param_grad):
            return None, None, None
        dx, dw = _conv_grads(x, weight, delta, tuple(strides), input_grad, param_grad)
        db = jnp.sum(delta, axis=tuple(range(d + 1))) if (param_grad and bias) else None
        return dx, dw, db

    def overlap_add(
        self, cols: jax.Array, spatial: tuple[int, ...], strides: tuple[int, ...]
    ) -> jax.Array:
        d = len(spatial)
        out = tuple(cols.shape[1 : 1 + d])
        kernel = tuple(cols.shape[1 + d : 1 + 2 * d])
        lead = (slice(None),) * (1 + d)
        offsets = [offset for offset, _ in offset_slices(kernel, strides, out)]
        parts = [cols[lead + offset + (slice(None),)] for offset in offsets]
        return self._placed_sum(parts, offsets, tuple(spatial), strides)

    def spread(
        self,
        part: jax.Array,
        shape: tuple[int, ...],
        kernel: tuple[int, ...],
        strides: tuple[int, ...],
    ) -> jax.Array:
        out = tuple(part.shape[1:-1])
        offsets = [offset for offset, _ in offset_slices(kernel, strides, out)]
        return self._placed_sum([part] * len(offsets), offsets, tuple(shape[1:-1]), strides)

    def max_pool_backward(
        self,
        x: jax.Array,
        y: jax.Array,
        delta: jax.Array,
        kernel: tuple[int, ...],
        strides: tuple[int, ...],
        state: Any = None,
    ) -> jax.Array:
        """Each offset's part of the gradient (first-maximum mask times ``delta``), put in place.

        Windows that tile the input (stride = kernel) stack their parts and
        reshape them into place; other windows go through ``lax.pad`` and a
        sum (overlapping windows add up). Same rule as the standard version.
        """
        out = tuple(y.shape[1:-1])
        d = len(kernel)
        pairs = list(offset_slices(kernel, strides, out))
        masks = first_max_masks(jnp, x, y, [index for _, index in pairs])
        parts = [jnp.where(hit, delta, jnp.zeros((), delta.dtype)) for hit in masks]
        spatial = tuple(x.shape[1:-1])
        if tuple(strides) != tuple(kernel):
            return self._placed_sum(parts, [offset for offset, _ in pairs], spatial, strides)
        n, c = x.shape[0], x.shape[-1]
        g = jnp.stack(parts, axis=-2).reshape(n, *out, *kernel, c)
        # (N, *out, *kernel, C) -> (N, o1, k1, o2, k2, C): each window's values back in place
        perm = (0, *(a for i in range(d) for a in (1 + i, 1 + d + i)), 1 + 2 * d)
        g = jnp.transpose(g, perm).reshape(n, *(o * k for o, k in zip(out, kernel)), c)
        tail = [(0, s - o * k) for s, o, k in zip(spatial, out, kernel)]
        return jnp.pad(g, [(0, 0), *tail, (0, 0)]) if any(t for _, t in tail) else g

    @staticmethod
    def _placed_sum(parts, offsets, spatial, strides):
        """The sum of ``parts[j]`` put at ``offsets[j]`` in ``(N, *spatial, C)`` (zeros
        elsewhere).
        """
        total = None
        for part, offset in zip(parts, offsets):
            config = [(0, 0, 0)]
            for o, s, m, size in zip(offset, strides, part.shape[1:-1], spatial):
                config.append((o, size - (o + s * (m - 1) + 1), s - 1))
            config.append((0, 0, 0))
            placed = jax.lax.pad(part, jnp.zeros((), part.dtype), config)
            total = placed if total is None else total + placed
        return total
