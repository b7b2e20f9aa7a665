"""Standard-only versions of the primitives the Array API lacks.

These are the fallback used by ``array_api_strict`` and the oracle the native
fast paths are tested against. Python loops here run over kernel offsets only,
never over the batch or over positions.

Layout convention (channels last, like the seed's 1-D layout):
``x`` is ``(N, *spatial, C)`` with one spatial axis for 1-D layers and two for
2-D layers; ``kernel`` and ``strides`` are tuples with one entry per spatial
axis.
"""

from __future__ import annotations

import itertools

from array_api_compat import array_namespace
from array_api_compat import device as device_of


def output_shape(spatial, kernel, strides):
    """Spatial output sizes ``(S - K) // stride + 1`` for each axis."""
    return tuple((s - k) // st + 1 for s, k, st in zip(spatial, kernel, strides))


def offset_slices(kernel, strides, out_shape):
    """Yield ``(offset, index)`` for every kernel offset.

    ``x[index]`` (``x`` of shape ``(N, *spatial, C)``) is the ``(N, *out_shape, C)``
    array of the input values that sit at ``offset`` inside each window: one
    strided slice per spatial axis, so every index occurs once per offset.
    """
    for offset in itertools.product(*(range(k) for k in kernel)):
        index = (slice(None),)
        for o, st, n in zip(offset, strides, out_shape):
            index += (slice(o, o + st * (n - 1) + 1, st),)
        yield offset, index + (slice(None),)


def windows(x, kernel, strides):
    """im2col: ``(N, *spatial, C)`` -> ``(N, *out, *kernel, C)``.

    Stacks the strided slice of every kernel offset (a copy).
    """
    xp = array_namespace(x)
    spatial = tuple(x.shape[1:-1])
    out = output_shape(spatial, kernel, strides)
    parts = [x[index] for _, index in offset_slices(kernel, strides, out)]
    stacked = xp.stack(parts, axis=-2)  # (N, *out, prod(kernel), C)
    return xp.reshape(stacked, (x.shape[0], *out, *kernel, x.shape[-1]))


def im2col_shape(w, d: int) -> tuple:
    """``(positions, window size)`` of the im2col matrix of windows ``w`` ``(N, *out, *kernel, C)``."""
    m = width = 1
    for n in w.shape[: 1 + d]:
        m *= n
    for n in w.shape[1 + d :]:
        width *= n
    return m, width


def im2col(x, kernel, strides, *, ones=False):
    """The im2col matrix ``(N * positions, prod(kernel) * C)`` of ``x``, one row per window.

    With ``ones=True`` a last column of ones is appended, so that a bias
    folds into the convolution's matmul (and its gradient into the weight
    gradient's): cheaper than a broadcast addition and a column sum over the
    whole output.
    """
    xp = array_namespace(x)
    w = windows(x, kernel, strides)
    m, _ = im2col_shape(w, len(kernel))
    cols = xp.reshape(w, (m, -1))
    if ones:
        cols = xp.concat([cols, xp.ones((m, 1), dtype=x.dtype, device=device_of(x))], axis=1)
    return cols


def overlap_add(cols, spatial, strides, *, inplace_views=False):
    """col2im, the adjoint of :func:`windows`: ``(N, *out, *kernel, C)`` -> ``(N, *spatial, C)``.

    Each window's values are added back where they were read; windows that
    overlap (stride < kernel) sum, positions no window reads (gaps when
    stride > kernel, and the unused tail) stay exactly zero.

    ``inplace_views`` is for libraries whose basic indexing returns views
    (NumPy, CuPy, PyTorch): the addition then writes through the view instead
    of going through ``__setitem__``, which saves one copy per offset.
    """
    xp = array_namespace(cols)
    d = len(spatial)
    n, c = cols.shape[0], cols.shape[-1]
    out = tuple(cols.shape[1 : 1 + d])
    kernel = tuple(cols.shape[1 + d : 1 + 2 * d])
    result = xp.zeros((n, *spatial, c), dtype=cols.dtype, device=device_of(cols))
    lead = (slice(None),) * (1 + d)
    for offset, index in offset_slices(kernel, strides, out):
        part = cols[lead + offset + (slice(None),)]
        if inplace_views:
            view = result[index]
            view += part
        else:
            result[index] += part
    return result


def max_pool_backward(x, y, delta, kernel, strides):
    """Gradient of max pooling w.r.t. its input ``x`` (``(N, *spatial, C)``).

    ``y`` is the pooled output and ``delta`` the gradient w.r.t. it. Each
    window's gradient goes to one element, its first maximum in row-major
    order (PyTorch's rule on ties); overlapping windows sum.
    """
    xp = array_namespace(x)
    out = tuple(y.shape[1:-1])
    slices = [index for _, index in offset_slices(kernel, strides, out)]
    overlapping = any(s < k for s, k in zip(strides, kernel))
    dx = xp.zeros_like(x)
    taken = None  # windows whose gradient already went to an earlier offset
    for i, index in enumerate(slices):
        if i == len(slices) - 1 and taken is not None:
            hit = xp.logical_not(taken)  # the maximum is somewhere: the last offset gets the rest
        else:
            hit = x[index] == y
            if taken is not None:
                hit = xp.logical_and(hit, xp.logical_not(taken))
                taken = xp.logical_or(taken, hit)
            else:
                taken = hit
        # multiply by the 0/1 mask rather than where(): a select on an
        # unpredictable mask is several times slower on NumPy
        part = delta * xp.astype(hit, delta.dtype)
        if overlapping:
            dx[index] += part
        else:
            dx[index] = part
    return dx
