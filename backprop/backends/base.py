"""The :class:`Backend` base class: one array library, one device, one floating dtype.

Everything here is written against the Python Array API standard only, so it
is both the fallback for a library without native fast paths
(``array_api_strict``) and the oracle those fast paths are tested against.
Each array library has one subclass in its own file (``numpy.py``,
``torch.py``, ...) that imports the library, says how to recognise its
arrays and devices, and overrides what the library does natively.

Layout convention for the window primitives (channels last, like the
assignment's 1-D layout): ``x`` is ``(N, *spatial, C)`` with one spatial axis
for 1-D layers and two for 2-D layers; ``kernel`` and ``strides`` are tuples
with one entry per spatial axis. Python loops run over kernel offsets only,
never over the batch or over positions.

Writes
------
Every write the library makes to an array it keeps (a gradient accumulated,
a parameter updated, an optimizer buffer, an index update) goes through
:meth:`Backend.add_`, :meth:`Backend.sub_`, :meth:`Backend.scale_`,
:meth:`Backend.axpy_`, :meth:`Backend.zero_`, :meth:`Backend.flush_`,
:meth:`Backend.add_at` or :meth:`Backend.set_at`.
They *return* the result, which the caller stores back in place of its
argument: libraries whose arrays can be written (``mutable``) update the
argument itself and return it, immutable ones (JAX) return a new array. One
code path is thus right on both.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

if TYPE_CHECKING:
    from .._typing import Array, Device, DType

__all__ = [
    "DTYPES", "Backend", "BackendUnavailableError", "first_max_masks", "offset_slices",
    "output_shape",
]  # fmt: skip

DTYPES = ("float32", "float64")
_INT_NAMES = ("int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64")


class BackendUnavailableError(RuntimeError):
    """The requested array library is not installed or has no usable device."""


def output_shape(
    spatial: Sequence[int], kernel: Sequence[int], strides: Sequence[int]
) -> tuple[int, ...]:
    """Spatial output sizes ``(S - K) // stride + 1`` for each axis."""
    return tuple((s - k) // st + 1 for s, k, st in zip(spatial, kernel, strides))


def offset_slices(
    kernel: Sequence[int], strides: Sequence[int], out_shape: Sequence[int]
) -> Iterator[tuple[tuple[int, ...], tuple[slice, ...]]]:
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


def im2col_shape(shape: Sequence[int], d: int) -> tuple[int, int]:
    """``(positions, window size)`` of the im2col matrix of windows of ``shape``
    ``(N, *out, *kernel, C)``.
    """
    m = width = 1
    for n in shape[: 1 + d]:
        m *= n
    for n in shape[1 + d :]:
        width *= n
    return m, width


class Backend:
    """An array library on one device with one floating dtype.

    Class attributes describe the library (set by each subclass); an
    instance fixes the device and the dtype that new parameters and data
    use. Build one with :func:`backprop.backends.make_backend`.

    Attributes
    ----------
    name : str
        Registry name (``"numpy"``, ``"torch"``, ...).
    xp : module
        The library's Array API namespace.
    device : object
        The library's device object.
    dtype, dtype_name
        ``xp.float32`` or ``xp.float64``, and its name.
    """

    name: ClassVar[str] = "standard"
    xp: ClassVar[Any] = None
    array_type: ClassVar[type] = object
    #: arrays can be written in place (False for JAX)
    mutable: ClassVar[bool] = True
    #: arrays carry a ``.device`` (False for NumPy < 2)
    has_devices: ClassVar[bool] = True
    #: :meth:`detached` can return another array (PyTorch's autograd): hot paths skip the call
    #: where it is False
    detaches: ClassVar[bool] = False

    def __init__(self, device: Device | None = None, dtype: DType | str = "float32") -> None:
        dtype_name = dtype if isinstance(dtype, str) else dtype_name_of(dtype)
        if dtype_name not in DTYPES:
            raise ValueError(f"unsupported dtype {dtype!r}; valid dtypes are: {', '.join(DTYPES)}")
        self._check_dtype(dtype_name)
        self.device = self.resolve_device(device)
        self.dtype_name = dtype_name
        self.dtype = getattr(self.xp, dtype_name)

    # ----------------------------------------------------------- library facts

    #: the library's real floating and integer dtypes (set for each subclass from its namespace)
    float_dtypes: ClassVar[tuple] = ()
    int_dtypes: ClassVar[tuple] = ()

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        if cls.xp is not None:
            cls.float_dtypes = (cls.xp.float32, cls.xp.float64)
            cls.int_dtypes = tuple(getattr(cls.xp, n) for n in _INT_NAMES if hasattr(cls.xp, n))

    @classmethod
    def wide_int(cls) -> DType:
        """The widest integer dtype the library holds now (for labels and counts)."""
        return cls.xp.int64

    @classmethod
    def owns(cls, x: object) -> bool:
        """True for an array of this library."""
        return isinstance(x, cls.array_type)

    @classmethod
    def device_of(cls, x: Array) -> Device:
        """The device ``x`` lives on."""
        return x.device

    @classmethod
    def devices(cls) -> list:
        """Every device of this library visible here, as the library counts them."""
        return list(cls.xp.__array_namespace_info__().devices())

    @classmethod
    def resolve_device(cls, spec: Device | str | None) -> Device:
        """The library's device object for a user's spec (None: the library's default)."""
        info = cls.xp.__array_namespace_info__()
        if spec is None:
            return info.default_device()
        for d in info.devices():
            if d == spec or str(d) == str(spec) or device_label(d) == str(spec):
                return d
        labels = ", ".join(repr(device_label(d)) for d in info.devices())
        raise ValueError(
            f"backend {cls.name!r}: unknown device {spec!r}; valid devices are: {labels}"
        )

    def _check_dtype(self, dtype_name: str) -> None:
        """Refuse a dtype the library cannot hold as asked (JAX float64 without x64)."""

    # -------------------------------------------------------- description

    def describe(self) -> str:
        """A short label such as ``numpy:cpu/float32``."""
        return f"{self.name}:{device_label(self.device)}/{self.dtype_name}"

    def __repr__(self) -> str:
        return f"Backend({self.describe()})"

    def __eq__(self, other) -> bool:
        return isinstance(other, Backend) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def _key(self) -> tuple:
        return (self.name, device_label(self.device), self.dtype_name)

    def __reduce__(self):
        # pickled by description: namespaces and device objects do not pickle
        from . import make_backend

        return make_backend, (self.name, device_label(self.device), self.dtype_name)

    # ----------------------------------------------------------- transfers

    @classmethod
    def to_host(cls, x: Array) -> np.ndarray:
        """``x`` as a NumPy array in host memory."""
        return np.asarray(x.to_device(cls.resolve_device(None)))

    def from_host(self, a: np.ndarray) -> Array:
        """A host NumPy array as an array of this library on this device (same dtype)."""
        return self.xp.asarray(np.asarray(a, order="C"), device=self.device)

    def to_device(self, x: Array) -> Array:
        """An array of this library moved to this backend's device."""
        return x.to_device(self.device)

    def detached(self, x: Array) -> Array:
        """``x`` without ties to the library's own autograd (PyTorch: a tensor that requires
        grad would pass its graph into every parameter it updates); other libraries: ``x``."""
        return x

    def on_device(self, x: Array) -> bool:
        """True when ``x`` (an array of this library) lives on this backend's device."""
        return self.device_of(x) == self.device

    def synchronize(self, *arrays: Array) -> None:
        """Wait until the device has finished its queued work (and ``arrays`` are computed).

        A no-op on CPU libraries that compute eagerly.
        """

    #: :meth:`compile` really compiles (False: it returns the function unchanged)
    compiles: ClassVar[bool] = False

    def compile(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        """``fn`` (arrays in, arrays out, no host reads) compiled as one program, where the
        library can.
        """
        return fn

    # ------------------------------------------------------------ writes

    def add_(self, target: Array, value: Array | float) -> Array:
        """``target + value``, written into ``target`` when the library allows it."""
        if not self.mutable:
            return target + value
        target += value
        return target

    def sub_(self, target: Array, value: Array | float) -> Array:
        """``target - value``, written into ``target`` when the library allows it."""
        if not self.mutable:
            return target - value
        target -= value
        return target

    def scale_(self, target: Array, factor: Array | float) -> Array:
        """``target * factor``, written into ``target`` when the library allows it."""
        if not self.mutable:
            return target * factor
        target *= factor
        return target

    def axpy_(self, target: Array, alpha: Array | float, x: Array) -> Array:
        """``target + alpha * x``, written into ``target`` when the library allows it.

        The update ``p <- p - lr * g`` is ``axpy_(p, -lr, g)``. ``alpha`` is a
        number or a 0-d array (inside a compiled step). Libraries override it
        to avoid the full-size temporary ``alpha * x``.
        """
        if not self.mutable:
            return target + alpha * x
        target += alpha * x
        return target

    def zero_(self, target: Array) -> Array:
        """Zeros shaped like ``target``, written into it when the library allows it."""
        if not self.mutable:
            return self.xp.zeros_like(target)
        target[...] = 0
        return target

    def flush_(self, target: Array) -> Array:
        """``target`` with every entry below the dtype's smallest normal number in magnitude set
        to zero (flush-to-zero), written into ``target`` when the library allows it.

        Subnormal numbers make CPU arithmetic an order of magnitude slower;
        the optimizers flush their running averages and updates with it.
        """
        xp = self.xp
        tiny = xp.finfo(target.dtype).smallest_normal
        zero = xp.zeros((), dtype=target.dtype, device=self.device_of(target))
        flushed = xp.where(xp.abs(target) < tiny, zero, target)
        if not self.mutable:
            return flushed
        target[...] = flushed
        return target

    def adam_update_(
        self,
        p: Array,
        g: Array,
        mean: Array,
        square: Array,
        betas: tuple[float, float],
        step_size: float | Array,
        c2_root: float | Array,
        eps: float,
    ) -> tuple[Array, Array, Array]:
        """One Adam update of parameter ``p`` from gradient ``g``: ``(p, mean, square)`` updated.

        ``mean <- b1 mean + (1 - b1) g`` and ``square <- b2 square + (1 - b2) g^2``,
        both flushed (:meth:`flush_`), then
        ``p <- p - flush(step_size * mean / (sqrt(square) / c2_root + eps))``.
        Each array is written in place where the library allows it. Libraries
        override it to fuse the passes; the result must be the same, bit for bit.
        """
        b1, b2 = betas
        mean = self.flush_(self.add_(self.scale_(mean, b1), (1 - b1) * g))
        square = self.flush_(self.add_(self.scale_(square, b2), (1 - b2) * (g * g)))
        step = mean / (self.xp.sqrt(square) / c2_root + eps)
        return self.sub_(p, self.flush_(self.scale_(step, step_size))), mean, square

    def adam_update_all_(
        self,
        params: list,
        grads: list,
        states: list,
        betas: tuple[float, float],
        step_size: float | Array,
        c2_root: float | Array,
        eps: float,
        cache: dict,
    ) -> bool:
        """:meth:`adam_update_` of every parameter at once, in place; False when this backend
        does not fuse them (the caller then updates parameter by parameter).

        ``states`` holds each parameter's ``{"mean", "square"}`` dict; a backend
        that fuses may replace its arrays by views of one buffer of its own,
        kept in ``cache`` (owned by the optimizer). The result is the one of
        :meth:`adam_update_` on each parameter, bit for bit.
        """
        return False

    def add_at(
        self, target: Array, index: int | slice | tuple[int | slice, ...], value: Array | float
    ) -> Array:
        """``target[index] += value`` (``index`` basic: slices and ints, each element once)."""
        if not self.mutable:
            return target.at[index].add(value)
        target[index] += value
        return target

    def set_at(
        self, target: Array, index: int | slice | tuple[int | slice, ...], value: Array | float
    ) -> Array:
        """``target[index] = value`` (basic indexing)."""
        if not self.mutable:
            return target.at[index].set(value)
        target[index] = value
        return target

    def index_add_rows(self, target: Array, index: Array, values: Array) -> Array:
        """``target[index[i]] += values[i]`` for every ``i`` (repeated indices add up), with
        ``target`` ``(R, D)``, ``index`` ``(M,)`` integers in ``[0, R)``, ``values`` ``(M, D)``.

        The standard has no scatter-add: a one-hot matrix times ``values``.
        """
        xp = self.xp
        rows = xp.arange(target.shape[0], dtype=index.dtype, device=self.device_of(index))
        onehot = xp.astype(index[:, None] == rows[None, :], values.dtype)
        return self.add_(target, onehot.T @ values)

    def copy(self, x: Array) -> Array:
        """A copy of ``x`` that no one else holds (``x`` itself for immutable libraries)."""
        return x if not self.mutable else self.xp.asarray(x, copy=True)

    # ------------------------------------------------------------ products

    def contract_rows(self, a: Array, b: Array) -> Array:
        """``a.T @ b`` for ``a`` ``(M, P)`` and ``b`` ``(M, Q)``: the sum over rows of outer
        products.

        A weight gradient with one row per position (a convolution's im2col
        matrix against its output gradient): ``M`` is large, ``P`` and ``Q``
        small. Libraries whose BLAS handles such a long contraction poorly
        override it.
        """
        return a.T @ b

    # ------------------------------------------------------ window primitives

    def windows(self, x: Array, kernel: tuple[int, ...], strides: tuple[int, ...]) -> Array:
        """im2col: ``(N, *spatial, C)`` -> ``(N, *out, *kernel, C)``, stacking the strided slice
        of every offset.
        """
        xp = self.xp
        out = output_shape(tuple(x.shape[1:-1]), kernel, strides)
        parts = [x[index] for _, index in offset_slices(kernel, strides, out)]
        stacked = xp.stack(parts, axis=-2)  # (N, *out, prod(kernel), C)
        return xp.reshape(stacked, (x.shape[0], *out, *kernel, x.shape[-1]))

    def im2col(
        self, x: Array, kernel: tuple[int, ...], strides: tuple[int, ...], *, ones: bool = False
    ) -> Array:
        """The im2col matrix ``(N * positions, prod(kernel) * C)`` of ``x``, one row per window.

        With ``ones=True`` a last column of ones is appended, so that a bias
        folds into the convolution's matmul (and its gradient into the weight
        gradient's): cheaper than a broadcast addition and a column sum over
        the whole output.
        """
        xp = self.xp
        w = self.windows(x, kernel, strides)
        m, width = im2col_shape(w.shape, len(kernel))
        cols = xp.reshape(w, (m, width))  # explicit sizes: -1 is ambiguous for an empty batch
        if ones:
            cols = xp.concat(
                [cols, xp.ones((m, 1), dtype=x.dtype, device=self.device_of(x))], axis=1
            )
        return cols

    def conv(
        self, x: Array, weight: Array, bias: Array | None, strides: tuple[int, ...]
    ) -> tuple[Array, Any]:
        """Convolution (cross-correlation) of ``x`` with ``weight``, plus ``bias``: ``(y, saved)``.

        ``x`` is ``(N, *spatial, C_in)``, already padded (a padding is applied
        by the layer before this call and cropped from the input gradient
        after :meth:`conv_backward`); ``weight`` ``(*kernel, C_in, C_out)``;
        ``bias`` ``(C_out,)`` or None. ``y`` is ``(N, *out, C_out)``. ``saved``
        is what :meth:`conv_backward` may reuse for the same ``x`` (here the
        im2col matrix; None when there is nothing to keep).

        The standard version: the im2col matrix (with a column of ones that
        carries the bias) times the weight matrix, one matmul.
        """
        xp = self.xp
        kernel, c_out = tuple(weight.shape[:-2]), weight.shape[-1]
        cols = self.im2col(x, kernel, strides, ones=bias is not None)
        w = xp.reshape(weight, (-1, c_out))
        if bias is not None:
            w = xp.concat([w, xp.reshape(bias, (1, c_out))], axis=0)
        out = output_shape(tuple(x.shape[1:-1]), kernel, strides)
        return xp.reshape(cols @ w, (x.shape[0], *out, c_out)), cols

    def conv_backward(
        self,
        x: Array,
        weight: Array,
        delta: Array,
        strides: tuple[int, ...],
        saved: Any = None,
        *,
        bias: bool = True,
        input_grad: bool = True,
        param_grad: bool = True,
    ) -> tuple[Array | None, Array | None, Array | None]:
        """Gradients of :meth:`conv` for the output gradient ``delta`` ``(N, *out, C_out)``:
        ``(input, weight, bias)``, each None when not asked for (``input_grad``,
        ``param_grad``; the bias gradient only with ``bias``).

        ``saved`` is what :meth:`conv` returned for this ``x`` (None: rebuilt
        from ``x``). The input gradient has the (padded) shape of ``x``;
        positions no window reads get exactly zero.

        The standard version: the weight and bias gradients are one
        contraction of the im2col matrix with ``delta``
        (:meth:`contract_rows`); the input gradient one matmul followed by an
        overlap-add (:meth:`overlap_add`).
        """
        xp = self.xp
        kernel, c_in, c_out = tuple(weight.shape[:-2]), weight.shape[-2], weight.shape[-1]
        d_mat = xp.reshape(delta, (-1, c_out))
        dx = dw = db = None
        if param_grad:
            cols = saved if saved is not None else self.im2col(x, kernel, strides, ones=bias)
            grad = self.contract_rows(cols, d_mat)
            width = grad.shape[0] - (1 if bias else 0)
            if bias:
                db = grad[width, ...]
            dw = xp.reshape(grad[:width, ...], tuple(weight.shape))
        if input_grad:
            w = xp.reshape(weight, (-1, c_out))
            dcols = xp.reshape(d_mat @ w.T, (*delta.shape[:-1], *kernel, c_in))
            dx = self.overlap_add(dcols, tuple(x.shape[1:-1]), strides)
        return dx, dw, db

    def overlap_add(self, cols: Array, spatial: tuple[int, ...], strides: tuple[int, ...]) -> Array:
        """col2im, the adjoint of :meth:`windows`: ``(N, *out, *kernel, C)`` ->
        ``(N, *spatial, C)``.

        Each window's values are added back where they were read; windows that
        overlap (stride < kernel) sum, positions no window reads (gaps when
        stride > kernel, and the unused tail) stay exactly zero.
        """
        d = len(spatial)
        n, c = cols.shape[0], cols.shape[-1]
        out = tuple(cols.shape[1 : 1 + d])
        kernel = tuple(cols.shape[1 + d : 1 + 2 * d])
        result = self.xp.zeros((n, *spatial, c), dtype=cols.dtype, device=self.device_of(cols))
        lead = (slice(None),) * (1 + d)
        for offset, index in offset_slices(kernel, strides, out):
            result = self.add_at(result, index, cols[lead + offset + (slice(None),)])
        return result

    def spread(
        self, part: Array, shape: tuple[int, ...], kernel: tuple[int, ...], strides: tuple[int, ...]
    ) -> Array:
        """``(N, *spatial, C)`` zeros plus ``part`` (``(N, *out, C)``) added at every kernel offset.

        The adjoint of summing the strided slices of every offset: average
        pooling's backward.
        """
        xp = self.xp
        result = xp.zeros(shape, dtype=part.dtype, device=self.device_of(part))
        out = tuple(part.shape[1:-1])
        overlapping = any(s < k for s, k in zip(strides, kernel))
        for _, index in offset_slices(kernel, strides, out):
            result = (
                self.add_at(result, index, part)
                if overlapping
                else self.set_at(result, index, part)
            )
        return result

    def relu_backward(self, x: Array, delta: Array) -> Array:
        """ReLU's input gradient: ``delta`` times the 0/1 mask of ``x > 0`` (0 where ``x`` is 0
        or NaN; a NaN or infinite delta gives NaN where the mask is 0, as the product does)."""
        return delta * self.xp.astype(x > 0, delta.dtype)

    def max_pool(self, x: Array, kernel: tuple[int, ...], strides: tuple[int, ...]) -> Array:
        """Max over windows: ``(N, *spatial, C)`` -> ``(N, *out, C)`` (an element-wise maximum of
        the offset slices).
        """
        xp = self.xp
        out = output_shape(tuple(x.shape[1:-1]), kernel, strides)
        slices = [index for _, index in offset_slices(kernel, strides, out)]
        if len(slices) == 1:
            return xp.asarray(x[slices[0]], copy=True)
        y = xp.maximum(x[slices[0]], x[slices[1]])
        for index in slices[2:]:
            y = xp.maximum(y, x[index])
        return y

    def max_pool_with_state(
        self, x: Array, kernel: tuple[int, ...], strides: tuple[int, ...]
    ) -> tuple[Array, Any]:
        """:meth:`max_pool` and what :meth:`max_pool_backward` may reuse for the same ``x``
        (``state``: None here; PyTorch keeps the places of the maxima)."""
        return self.max_pool(x, kernel, strides), None

    def max_pool_backward_nan_padded(
        self, x: Array, y: Array, delta: Array, kernel: tuple[int, ...], strides: tuple[int, ...]
    ) -> Array:
        """:meth:`max_pool_backward` for an ``x`` padded with NaN, which is never a window's
        maximum: the path that compares ``x`` with ``y`` (a library's own max-pool gradient,
        which recomputes the maxima from ``x``, would send them to the NaN)."""
        return self.max_pool_backward(x, y, delta, kernel, strides)

    def max_pool_backward(
        self,
        x: Array,
        y: Array,
        delta: Array,
        kernel: tuple[int, ...],
        strides: tuple[int, ...],
        state: Any = None,
    ) -> Array:
        """Gradient of max pooling w.r.t. its input ``x`` (``(N, *spatial, C)``).

        ``y`` is the pooled output, ``delta`` the gradient w.r.t. it and
        ``state`` what :meth:`max_pool_with_state` gave with ``y`` (or None). Each
        window's gradient goes to one element, its first maximum in row-major
        order (PyTorch's rule on ties); overlapping windows sum.
        """
        xp = self.xp
        out = tuple(y.shape[1:-1])
        slices = [index for _, index in offset_slices(kernel, strides, out)]
        overlapping = any(s < k for s, k in zip(strides, kernel))
        dx = xp.zeros_like(x)
        for index, hit in zip(slices, first_max_masks(xp, x, y, slices)):
            # multiply by the 0/1 mask rather than where(): a select on an
            # unpredictable mask is several times slower on NumPy
            part = delta * xp.astype(hit, delta.dtype)
            dx = self.add_at(dx, index, part) if overlapping else self.set_at(dx, index, part)
        return dx


def tiles(x: Array, kernel: tuple[int, ...], strides: tuple[int, ...]) -> bool:
    """Whether 2-D windows tile ``x`` (``(N, H, W, C)``): stride = kernel, more than one value
    a window, at least one window along each axis, no empty array."""
    return (
        len(kernel) == 2
        and tuple(strides) == tuple(kernel)
        and kernel[0] * kernel[1] > 1
        and all(k <= size for k, size in zip(kernel, x.shape[1:-1]))
        and all(n > 0 for n in x.shape)
    )


def tiled_max_pool(xp: Any, x: Array, kernel: tuple[int, ...]) -> Array:
    """Max pooling over windows that :func:`tiles` ``x``: the maxima over each window's rows,
    then over its columns, as element-wise maxima of views.

    A row of windows is one contiguous run of ``W_out * kw * C`` values, so
    the first maxima run over long inner loops, and the second over half as
    much data; slices at each kernel offset would have runs of ``C`` values
    (channels last: 6 on LeNet's first pooling, 1.4x slower on NumPy, and
    PyTorch's own max_pool2d measured 4x slower there). The maxima are those
    of :meth:`Backend.max_pool` (NaN kept), in a new array.
    """
    (kh, kw), (n, h, w, c) = kernel, tuple(x.shape)
    ho, wo = h // kh, w // kw
    rows = xp.reshape(x[:, : ho * kh, : wo * kw], (n * ho, kh, wo, kw * c))
    y = rows[:, 0]
    for a in range(1, kh):
        y = xp.maximum(y, rows[:, a])
    cols = xp.reshape(y, (n * ho, wo, kw, c))
    y = cols[:, :, 0]
    for b in range(1, kw):
        y = xp.maximum(y, cols[:, :, b])
    return xp.reshape(y, (n, ho, wo, c))


def flat_moments(
    cache: dict,
    states: list,
    shapes: tuple,
    owns: Callable[[Any], bool],
    new: Callable[[int], Array],
    fill: Callable[[Array, Array], Any],
    where: tuple = (),
) -> dict | None:
    """The flat buffers of a fused Adam update (:meth:`Backend.adam_update_all_`), kept in
    ``cache``: rebuilt when the parameters' shapes or ``where`` (their dtype, device) changed or a
    state's moment is no longer its view; None, having changed nothing, when a moment is not
    an array of the right library (``owns``: library, dtype and device) and shape.

    A new entry holds one buffer for the means and one for the squares (``whole``), each
    state's moments replaced by views of them (the current values copied in with ``fill``),
    a gradient buffer and an update buffer of the same length (``buffers``), and each
    parameter's view of the update (``update``). ``new(n)`` allocates a flat array.
    """
    flat = cache.get("adam")
    if (
        flat is not None
        and flat["where"] == where
        and flat["shapes"] == shapes
        and all(
            s["mean"] is m and s["square"] is v
            for s, m, v in zip(states, flat["mean"], flat["square"])
        )
    ):
        return flat
    # moments of another library, dtype, device or shape (a network moved or changed since): the
    # update parameter by parameter deals with them as it always did
    for state, shape in zip(states, shapes):
        for name in ("mean", "square"):
            if not owns(state[name]) or tuple(state[name].shape) != shape:
                return None
    sizes = [math.prod(shape) for shape in shapes]
    total = sum(sizes)
    whole, t = (new(total), new(total)), new(total)
    views: dict[str, list] = {"mean": [], "square": []}
    update, start = [], 0
    for state, shape, size in zip(states, shapes, sizes):
        stop = start + size
        for name, buffer in zip(("mean", "square"), whole):
            view = buffer[start:stop].reshape(shape)
            fill(view, state[name])
            state[name] = view
            views[name].append(view)
        update.append(t[start:stop].reshape(shape))
        start = stop
    flat = cache["adam"] = {
        "where": where,
        "shapes": shapes,
        "whole": whole,
        "mean": views["mean"],
        "square": views["square"],
        "update": update,
        "buffers": (new(total), t),
    }
    return flat


def first_max_masks(
    xp: Any, x: Array, y: Array, slices: Sequence[tuple[slice, ...]]
) -> Iterator[Array]:
    """For each offset slice of a max pooling in turn, the windows whose gradient goes there.

    A window's gradient goes to its first maximum in row-major order
    (PyTorch's rule on ties): an offset takes the windows where ``x[index]``
    equals the maximum ``y`` and no earlier offset did; the last offset takes
    every window left (the maximum is somewhere), with no comparison.
    """
    taken = None  # windows whose gradient already went to an earlier offset
    for i, index in enumerate(slices):
        if taken is not None and i == len(slices) - 1:
            yield xp.logical_not(taken)
            return
        hit = x[index] == y
        if taken is None:
            taken = hit
        else:
            hit = xp.logical_and(hit, xp.logical_not(taken))
            taken = xp.logical_or(taken, hit)
        yield hit


def dtype_name_of(dtype: DType) -> str:
    """``"float32"`` for any library's float32 dtype object (likewise for the others)."""
    text = str(dtype)
    for name in (*DTYPES, "float16", "bfloat16", *_INT_NAMES, "bool"):
        if text.endswith(name):
            return name
    return text


def device_label(device) -> str:
    """A device as the text that names it (``'cpu'``, ``'cuda:0'``), for messages and specs."""
    if hasattr(device, "id") and type(device).__module__.startswith("cupy"):
        return f"cuda:{device.id}"
    text = str(device)
    if text.startswith("array_api_strict.Device("):
        text = text[len("array_api_strict.Device(") : -1].strip("'")
    return text
