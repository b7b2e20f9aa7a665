"""PyTorch tensors, on the CPU or a CUDA device; windows with ``Tensor.unfold``."""

from __future__ import annotations

import types
from typing import TYPE_CHECKING

import array_api_compat.torch as _xp
import torch

from . import _strided
from .base import (
    Backend,
    BackendUnavailableError,
    flat_moments,
    im2col_shape,
    tiled_max_pool,
    tiles,
)

if TYPE_CHECKING:
    import numpy as np

    from .._typing import Array

# the element-wise functions with out= that _strided.max_pool_backward uses, by NumPy's names
_OUT_OPS = types.SimpleNamespace(
    zeros_like=torch.zeros_like, empty_like=torch.empty_like, equal=torch.eq, greater=torch.gt,
    logical_or=torch.logical_or, logical_not=torch.logical_not, multiply=torch.mul,
    subtract=torch.sub,
)  # fmt: skip


#: the largest subnormal number of each floating dtype: ``hardshrink`` at it zeroes exactly the
#: entries below the smallest normal number
_LARGEST_SUBNORMAL = {
    dtype: float(
        torch.nextafter(
            torch.tensor(torch.finfo(dtype).smallest_normal, dtype=dtype),
            torch.tensor(0.0, dtype=dtype),
        )
    )
    for dtype in (torch.float16, torch.bfloat16, torch.float32, torch.float64)
}


class TorchBackend(_strided.OutMaxPool, Backend):
    """PyTorch tensors (``device`` ``cpu``, ``cuda``, ``cuda:1``, ...)."""

    name = "torch"
    xp = _xp
    array_type = torch.Tensor
    out_ops = _OUT_OPS

    def index_add_rows(self, target: Array, index: Array, values: Array) -> Array:
        return target.index_add_(0, index, values)

    @classmethod
    def devices(cls) -> list:
        return [torch.device("cpu")] + [
            torch.device("cuda", i) for i in range(torch.cuda.device_count())
        ]

    @classmethod
    def resolve_device(cls, spec: torch.device | str | int | None) -> torch.device:
        try:
            dev = torch.device(spec) if spec is not None else torch.device("cpu")
        except (RuntimeError, TypeError) as exc:
            raise ValueError(
                f"backend 'torch': cannot read device {spec!r} ({exc}); use e.g. 'cpu' or 'cuda:0'"
            ) from None
        if dev.type == "cuda":
            if not torch.cuda.is_available():
                raise BackendUnavailableError(
                    "backend 'torch' was asked for a CUDA device but "
                    "torch.cuda.is_available() is False "
                    "(no GPU, no driver, or a CPU-only build of PyTorch)"
                )
            count = torch.cuda.device_count()
            index = torch.cuda.current_device() if dev.index is None else dev.index
            if index >= count:
                raise BackendUnavailableError(
                    f"backend 'torch': device cuda:{index} does not exist ({count} visible)"
                )
            dev = torch.device("cuda", index)
        elif dev.type != "cpu":
            raise ValueError(
                f"backend 'torch': unsupported device {spec!r}; use 'cpu' or 'cuda[:index]'"
            )
        return dev

    @classmethod
    def to_host(cls, x: torch.Tensor) -> np.ndarray:
        return x.detach().cpu().resolve_conj().numpy()

    def from_host(self, a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(
            a.copy() if not a.flags.writeable or not a.flags.c_contiguous else a
        ).to(self.device)

    def to_device(self, x: torch.Tensor) -> torch.Tensor:
        return x.to(self.device)

    detaches = True

    def detached(self, x: torch.Tensor) -> torch.Tensor:
        # an input that requires grad would make every parameter it updates carry a grad_fn,
        # each step's graph kept alive by the next (memory grows step after step)
        return x.detach() if isinstance(x, torch.Tensor) and x.requires_grad else x

    def synchronize(self, *arrays: torch.Tensor) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def zero_(self, target: torch.Tensor) -> torch.Tensor:
        return target.zero_()

    def axpy_(self, target: torch.Tensor, alpha: Array | float, x: torch.Tensor) -> torch.Tensor:
        if isinstance(alpha, (int, float)):
            return target.add_(x, alpha=alpha)  # one fused pass, no temporary
        return super().axpy_(target, alpha, x)

    def flush_(self, target: torch.Tensor) -> torch.Tensor:
        """Entries below the smallest normal number set to zero, in place: ``hardshrink`` at
        the largest subnormal number (one pass; a mask and ``masked_fill_`` measured ten times
        slower). NaN and infinities pass unchanged."""
        lam = _LARGEST_SUBNORMAL.get(target.dtype)
        if lam is None:
            return target
        return torch.ops.aten.hardshrink.out(target, lam, out=target)

    def adam_update_all_(self, params, grads, states, betas, step_size, c2_root, eps, cache):
        """The standard update's operations (the same bits) over one flat buffer for every
        parameter (the moments are views of it; see the NumPy backend): some twenty kernel
        launches a step instead of twenty per parameter."""
        dtype, device = self.dtype, self.device
        if len(params) < 2 or not isinstance(step_size, float) or not isinstance(c2_root, float):
            return False
        for p, g in zip(params, grads):
            if (
                type(p) is not torch.Tensor
                or p.dtype != dtype
                or p.device != device
                or p.requires_grad
                or not p.is_contiguous()
                or type(g) is not torch.Tensor
                or g.requires_grad
                or g.shape != p.shape
                or g.dtype != dtype
                or g.device != device
            ):
                return False
        flat = flat_moments(
            cache,
            states,
            tuple(tuple(p.shape) for p in params),
            owns=lambda a: type(a) is torch.Tensor and a.dtype == dtype and a.device == device,
            new=lambda n: torch.empty(n, dtype=dtype, device=device),
            fill=torch.Tensor.copy_,
            where=(dtype, device),
        )
        if flat is None:
            return False
        gathered, t = flat["buffers"]
        torch.cat([g.reshape(-1) for g in grads], out=gathered)
        mean, square = flat["whole"]
        b1, b2 = betas
        torch.mul(gathered, 1 - b1, out=t)
        self.flush_(mean.mul_(b1).add_(t))
        torch.mul(gathered, gathered, out=t)
        t.mul_(1 - b2)
        self.flush_(square.mul_(b2).add_(t))
        torch.sqrt(square, out=t)
        t.div_(c2_root).add_(eps)
        torch.div(mean, t, out=t)
        self.flush_(t.mul_(step_size))
        for p, part in zip(params, flat["update"]):
            p.sub_(part)
        return True

    # ------------------------------------------------------------ convolution
    # PyTorch's own 2-D convolution (oneDNN on the CPU, cuDNN on CUDA). A channels-last image
    # moved to channels first is a view in PyTorch's channels_last memory format, which these
    # kernels take without a copy; the results come back as channels-last views. 1-D inputs
    # have no channels-last format (each call copies both ways): on the 1-D CNN the native
    # 1-D convolution and pooling measured slower than the unfolded matrix and the out= max
    # pool, so 1-D layers keep those.

    def conv(self, x, weight, bias, strides):
        if x.ndim != 4:
            return super().conv(x, weight, bias, strides)
        y = torch.nn.functional.conv2d(
            x.movedim(-1, 1), _torch_weight(weight), bias, stride=tuple(strides)
        )
        return y.movedim(1, -1), None

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
        dx, dw, db = torch.ops.aten.convolution_backward(
            delta.movedim(-1, 1), x.movedim(-1, 1), _torch_weight(weight),
            [weight.shape[-1]] if bias else None, list(strides), [0] * d, [1] * d, False,
            [0] * d, 1, [input_grad, param_grad, param_grad and bias],
        )  # fmt: skip
        if dx is not None:
            dx = dx.movedim(1, -1)
        if dw is not None:  # (C_out, C_in, *kernel) -> (*kernel, C_in, C_out)
            dw = dw.permute(*range(2, d + 2), 1, 0)
        return dx, dw, db if (param_grad and bias) else None

    def relu_backward(self, x, delta):
        # on the CPU, PyTorch's comparisons and bool-to-float casts are two slow passes (75 us
        # each on LeNet's first activations); the same 0/1 mask comes from threshold_backward
        # of ones (1 where x > 0; NaN made 0 first, so it counts as not positive): 3x faster
        if x.device.type != "cpu" or x.shape != delta.shape:
            return super().relu_backward(x, delta)
        mask = torch.ops.aten.threshold_backward(
            torch.ones_like(delta), torch.nan_to_num(x, nan=0.0), 0
        )
        return delta * mask

    # ---------------------------------------------------------------- pooling
    # PyTorch's own 2-D max pooling on channels_last views (as the convolution), the places of
    # the maxima kept from the forward for the backward (max_pool_with_state): the same rule on
    # ties (the first maximum in row-major order takes the window's gradient); a window holding
    # NaN sends its gradient to a NaN. A forward alone over windows that tile the input
    # (stride = kernel) takes the maxima over the window's rows, then its columns, as
    # element-wise maxima of views (like NumPy's): measured 4x faster than max_pool2d on
    # LeNet's first pooling. 1-D pooling keeps the out= version.

    def max_pool(self, x, kernel, strides):
        if x.ndim != 4 or not x.is_floating_point():
            return super().max_pool(x, kernel, strides)
        if tiles(x, kernel, strides):
            return tiled_max_pool(torch, x, kernel)
        y = torch.nn.functional.max_pool2d(x.movedim(-1, 1), tuple(kernel), tuple(strides))
        return y.movedim(1, -1)

    def max_pool_with_state(self, x, kernel, strides):
        # the places of the maxima, for a backward that would otherwise find them again
        if x.ndim != 4 or not x.is_floating_point():
            return super().max_pool_with_state(x, kernel, strides)
        y, index = torch.ops.aten.max_pool2d_with_indices(
            x.movedim(-1, 1), list(kernel), list(strides), [0, 0], [1, 1], False
        )
        return y.movedim(1, -1), ("max_pool2d", index)

    def max_pool_backward_nan_padded(self, x, y, delta, kernel, strides):
        # the comparison path (not the native one, which takes NaN for a maximum)
        return _strided.OutMaxPool.max_pool_backward(self, x, y, delta, kernel, strides)

    def max_pool_backward(self, x, y, delta, kernel, strides, state=None):
        if x.ndim != 4 or not x.is_floating_point():
            return super().max_pool_backward(x, y, delta, kernel, strides, state)
        xc, dc = x.movedim(-1, 1), delta.movedim(-1, 1)
        args = (list(kernel), list(strides), [0, 0], [1, 1], False)
        if _state_fits(state, "max_pool2d", dc):
            index = state[1]
        else:
            _, index = torch.ops.aten.max_pool2d_with_indices(xc, *args)
        dx = torch.ops.aten.max_pool2d_with_indices_backward(dc, xc, *args, index)
        return dx.movedim(1, -1)

    def windows(
        self, x: torch.Tensor, kernel: tuple[int, ...], strides: tuple[int, ...]
    ) -> torch.Tensor:
        """im2col as a view: ``(N, *spatial, C)`` -> ``(N, *out, *kernel, C)``."""
        d = len(kernel)
        view = x
        for axis, (k, s) in enumerate(zip(kernel, strides), start=1):
            view = view.unfold(axis, k, s)
        # view: (N, *out, C, *kernel)
        return view.permute(0, *range(1, d + 1), *range(d + 2, 2 * d + 2), d + 1)

    def im2col(
        self,
        x: torch.Tensor,
        kernel: tuple[int, ...],
        strides: tuple[int, ...],
        *,
        ones: bool = False,
    ) -> torch.Tensor:
        w = self.windows(x, kernel, strides)
        d = len(kernel)
        lead = tuple(w.shape[: 1 + d])
        m, width = im2col_shape(w.shape, d)
        if not ones:
            return w.reshape(m, width)
        cols = torch.empty((m, width + 1), dtype=x.dtype, device=x.device)
        cols[:, width] = 1
        cols.view(*lead, width + 1)[..., :width].unflatten(-1, tuple(w.shape[1 + d :])).copy_(w)
        return cols


def _state_fits(state, kind: str, like: torch.Tensor) -> bool:
    """Whether ``state`` is a max pool's ``(kind, index)`` for a delta like ``like``."""
    return (
        isinstance(state, tuple)
        and len(state) == 2
        and state[0] == kind
        and tuple(state[1].shape) == tuple(like.shape)
        and state[1].device == like.device
    )


def _torch_weight(weight: torch.Tensor) -> torch.Tensor:
    """backprop's ``(*kernel, C_in, C_out)`` weight as PyTorch's ``(C_out, C_in, *kernel)``."""
    d = weight.ndim - 2
    return weight.permute(d + 1, d, *range(d)).contiguous()  # small; some kernels need it
