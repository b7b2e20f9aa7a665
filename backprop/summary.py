"""``net.summary(input_shape)``: a table of layers with output shapes and parameter counts."""

from __future__ import annotations

from ._checks import positive_int, prod
from ._network import backend_of_net
from .containers import _CALLS
from .module import Module

__all__ = ["summary"]


def _count(m: Module) -> int:
    return sum(prod(p.shape) for p in m._parameters.values())


def _rows(net: Module, x) -> list:
    """``(path, label, output shape, own parameters)`` of every module, from one forward of
    ``x``: each container records what its children computed (Container.child_forward)."""
    calls: dict = {}
    token = _CALLS.set(calls)
    try:
        y = net.forward(x)
    finally:
        _CALLS.reset(token)
    rows, seen = [], set()
    for path, m in net.named_modules():
        shared = id(m) in seen
        seen.add(id(m))
        if not path:
            label = type(m).__name__ + (f"({m.extra_repr()})" if m.extra_repr() else "")
            if not m.children():
                label = m._label()
            rows.append((path, label, tuple(y.shape), net.n_parameters()))
            continue
        out = calls.get(path)
        label = (
            m._label()
            if not m.children()
            else type(m).__name__ + (f"({m.extra_repr()})" if m.extra_repr() else "")
        )
        own = 0 if shared or m.children() else _count(m)
        rows.append((path, label + (" (shared)" if shared else ""), out, own))
    return rows


def summary(net: Module, input_shape: int | tuple[int, ...]) -> str:
    """A table of every layer of ``net``: its path, output shape for inputs of ``(N,
    *input_shape)``,
    parameters (a shared module counted at its first use), and the totals with their memory.

    Runs one sample through the network in evaluation mode; nothing is kept.
    """
    if not isinstance(net, Module):
        raise TypeError(f"summary: expected a Module, got {type(net).__name__}")
    shape = tuple(
        positive_int("summary", "input_shape entries", s)
        for s in ((input_shape,) if isinstance(input_shape, int) else tuple(input_shape))
    )
    b = backend_of_net(net)
    x = b.xp.zeros((1, *shape), dtype=b.dtype, device=b.device)
    modes = [(m, m.training) for m in net.unique_modules()]
    net.eval()
    try:
        rows = _rows(net, x)
    except (ValueError, TypeError) as exc:
        raise ValueError(
            f"summary: the network does not take samples of shape {shape}: {exc}"
        ) from None
    finally:
        for m, mode in modes:
            m.training = mode
        for m in net.unique_modules():
            m.clear_cache()
    total = net.n_parameters()
    itemsize = 8 if b.dtype_name == "float64" else 4
    lines = [f"{'layer':<28s} {'type':<36s} {'output shape':<18s} {'parameters':>12s}"]
    lines.append("-" * len(lines[0]))
    for path, label, out, count in rows:
        shown = "(N, " + ", ".join(str(d) for d in out[1:]) + ")" if out is not None else "-"
        lines.append(f"{path or '(network)':<28s} {label[:36]:<36s} {shown:<18s} {count:>12,d}")
    lines.append("-" * len(lines[0]))
    lines.append(
        f"input (N, {', '.join(map(str, shape))}); {total:,d} parameters, "
        f"{total * itemsize / 2**20:.2f} MiB in {b.dtype_name} on {b.describe()}"
    )
    return "\n".join(lines)
