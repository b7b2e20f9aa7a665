"""JAX arrays, which are immutable: every write is functional (``.at[...]``).

float64 needs JAX's ``jax_enable_x64`` flag; asking for a float64 backend
turns it on (JAX would otherwise truncate float64 data to float32 without a
word). Arrays inside ``jax.jit`` are tracers: they are recognised as JAX
arrays, and have no device, so device checks pass them through.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from .base import Backend, BackendUnavailableError, offset_slices


class JaxBackend(Backend):
    """JAX arrays (``device`` ``cpu``, ``gpu``, ``cuda:1``, ...)."""

    name = "jax"
    xp = jnp
    array_type = jax.Array
    mutable = False

    @classmethod
    def wide_int(cls):
        # without jax_enable_x64, int64 is truncated to int32 with a warning
        return jnp.int64 if jax.config.jax_enable_x64 else jnp.int32

    @classmethod
    def device_of(cls, x):
        try:
            return x.device
        except AttributeError:  # a tracer inside jax.jit has no device
            return None

    def on_device(self, x) -> bool:
        device = self.device_of(x)
        return device is None or device == self.device

    @classmethod
    def devices(cls) -> list:
        return list(jax.devices())

    @classmethod
    def resolve_device(cls, spec):
        if spec is None:
            return jax.devices()[0]
        if isinstance(spec, jax.Device):
            return spec
        kind, _, index = str(spec).partition(":")
        kind = {"cuda": "gpu"}.get(kind, kind)
        if kind not in ("cpu", "gpu", "tpu") or (index and not index.isdigit()):
            raise ValueError(f"backend 'jax': cannot read device {spec!r}; use e.g. 'cpu', 'gpu' or 'cuda:1'")
        try:
            found = jax.devices(kind)
        except RuntimeError:
            found = []
        i = int(index or 0)
        if i >= len(found):
            raise BackendUnavailableError(f"backend 'jax': no {kind} device {i} ({len(found)} {kind} device(s) visible)")
        return found[i]

    def _check_dtype(self, dtype_name: str) -> None:
        if dtype_name == "float64" and not jax.config.jax_enable_x64:
            jax.config.update("jax_enable_x64", True)

    @classmethod
    def to_host(cls, x):
        return np.asarray(x)

    def from_host(self, a):
        if a.dtype.itemsize == 8 and a.dtype.kind in "fiu" and not jax.config.jax_enable_x64:
            # without x64, JAX would narrow 64-bit data silently: do it here,
            # where the value range is known (labels and counts fit in 32 bits)
            target = {"f": np.float32, "i": np.int32, "u": np.uint32}[a.dtype.kind]
            if a.dtype.kind != "f" and a.size and (a.max() > np.iinfo(target).max or a.min() < np.iinfo(target).min):
                raise ValueError(
                    "backend 'jax': integers beyond 32 bits need jax_enable_x64 (set JAX_ENABLE_X64=1 or use a float64 backend)"
                )
            a = a.astype(target)
        return jax.device_put(a, self.device)

    def to_device(self, x):
        return jax.device_put(x, self.device)

    def synchronize(self, *arrays) -> None:
        # JAX dispatches asynchronously: wait for the arrays themselves
        jax.block_until_ready(arrays)

    def copy(self, x):
        return x

    compiles = True

    def compile(self, fn):
        return jax.jit(fn)

    def max_pool_backward(self, x, y, delta, kernel, strides):
        """For windows that tile the input (stride = kernel): each offset's part, interleaved by a reshape.

        ``.at[strided slice].set`` lowers to a scatter, slow on XLA's CPU
        backend; stacking the parts and reshaping them into place is one
        fused loop. Same rule as the standard version (first maximum).
        """
        if tuple(strides) != tuple(kernel):
            return super().max_pool_backward(x, y, delta, kernel, strides)
        out = tuple(y.shape[1:-1])
        d = len(kernel)
        parts, taken = [], None
        slices = [index for _, index in offset_slices(kernel, strides, out)]
        for i, index in enumerate(slices):
            if taken is not None and i == len(slices) - 1:
                hit = jnp.logical_not(taken)
            else:
                hit = x[index] == y
                if taken is not None:
                    hit = jnp.logical_and(hit, jnp.logical_not(taken))
                    taken = jnp.logical_or(taken, hit)
                else:
                    taken = hit
            parts.append(jnp.where(hit, delta, jnp.zeros((), delta.dtype)))
        n, c = x.shape[0], x.shape[-1]
        g = jnp.stack(parts, axis=-2).reshape(n, *out, *kernel, c)
        # (N, *out, *kernel, C) -> (N, o1, k1, o2, k2, C): each window's values back in place
        perm = (0, *(a for i in range(d) for a in (1 + i, 1 + d + i)), 1 + 2 * d)
        g = jnp.transpose(g, perm).reshape(n, *(o * k for o, k in zip(out, kernel)), c)
        tail = [(0, s - o * k) for s, o, k in zip(x.shape[1:-1], out, kernel)]
        return jnp.pad(g, [(0, 0), *tail, (0, 0)]) if any(t for _, t in tail) else g
