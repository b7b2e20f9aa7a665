"""PyTorch tensors, on the CPU or a CUDA device; windows with ``Tensor.unfold``."""

from __future__ import annotations

import array_api_compat.torch as _xp
import torch

from .base import Backend, BackendUnavailableError, im2col_shape, offset_slices


class TorchBackend(Backend):
    """PyTorch tensors (``device`` ``cpu``, ``cuda``, ``cuda:1``, ...)."""

    name = "torch"
    xp = _xp
    array_type = torch.Tensor

    @classmethod
    def devices(cls) -> list:
        return [torch.device("cpu")] + [
            torch.device("cuda", i) for i in range(torch.cuda.device_count())
        ]

    @classmethod
    def resolve_device(cls, spec):
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
    def to_host(cls, x):
        return x.detach().cpu().resolve_conj().numpy()

    def from_host(self, a):
        return torch.from_numpy(
            a.copy() if not a.flags.writeable or not a.flags.c_contiguous else a
        ).to(self.device)

    def to_device(self, x):
        return x.to(self.device)

    def synchronize(self, *arrays) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def zero_(self, target):
        return target.zero_()

    def axpy_(self, target, alpha, x):
        if isinstance(alpha, (int, float)):
            return target.add_(x, alpha=alpha)  # one fused pass, no temporary
        return super().axpy_(target, alpha, x)

    def windows(self, x, kernel, strides):
        """im2col as a view: ``(N, *spatial, C)`` -> ``(N, *out, *kernel, C)``."""
        d = len(kernel)
        view = x
        for axis, (k, s) in enumerate(zip(kernel, strides), start=1):
            view = view.unfold(axis, k, s)
        # view: (N, *out, C, *kernel)
        return view.permute(0, *range(1, d + 1), *range(d + 2, 2 * d + 2), d + 1)

    def im2col(self, x, kernel, strides, *, ones=False):
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

    def max_pool_backward(self, x, y, delta, kernel, strides):
        """Max-pool gradient written straight into the result with ``out=``, each kernel offset
        once.

        The rule of the standard version, for windows that do not overlap
        (the others go to it): the first offsets take ``delta`` where they
        hold the window's first maximum, the last takes what is left.
        """
        out = tuple(y.shape[1:-1])
        slices = [index for _, index in offset_slices(kernel, strides, out)]
        if any(s < k for s, k in zip(strides, kernel)) or len(slices) == 1:
            return super().max_pool_backward(x, y, delta, kernel, strides)
        if any(s > k for s, k in zip(strides, kernel)):
            dx = torch.zeros_like(x)  # gaps between windows get no gradient
        else:
            dx = torch.empty_like(x)
            for axis, (n, k) in enumerate(zip(out, kernel), start=1):
                if n * k < x.shape[axis]:
                    dx.narrow(
                        axis, n * k, x.shape[axis] - n * k
                    ).zero_()  # the tail no window reads
        first = dx[slices[0]]
        taken = torch.eq(x[slices[0]], y)
        torch.mul(delta, taken, out=first)
        if len(slices) == 2:
            torch.sub(delta, first, out=dx[slices[1]])
            return dx
        hit = torch.empty_like(taken)
        for index in slices[1:-1]:
            torch.eq(x[index], y, out=hit)
            torch.gt(hit, taken, out=hit)  # a maximum here, and none at an earlier offset
            taken.logical_or_(hit)
            torch.mul(delta, hit, out=dx[index])
        taken.logical_not_()
        torch.mul(delta, taken, out=dx[slices[-1]])
        return dx
