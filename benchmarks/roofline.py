"""What the hardware allows: the machine's rates, measured in the run, and each step's work.

A training step needs a number of matmul FLOPs and moves a number of bytes
at the very least. With the machine's float32 GEMM rate and memory bandwidth
measured in the same run, its roofline time is
``max(FLOPs / GEMM rate, bytes / bandwidth)``; a contender's share of the
roofline is that time over its measured time (100 % = at the hardware's limit).
The GEMM share alone (FLOPs / GEMM rate over the measured time) is the figure
the goals of ``docs/benchmarks.md`` use.

The model counts, per sample, what any implementation must do:

- FLOPs: the matmuls (2 per multiply-add) of the forward pass, of every
  weight gradient, and of the input gradients that a step needs (none
  before the first layer with parameters). Element-wise work is not counted.
- bytes: each array the step creates is written once and read once by each
  rule that needs it (forward: input and parameters read, output written;
  backward: the saved input or output, the incoming gradient, the parameters
  read, the gradients written; the update reads parameter and gradient and
  writes the parameter). Shape-only layers (Reshape, Flatten) move nothing.
- live set: the memory a step must hold at its peak: every forward output
  that backward needs, plus, at the worst layer, the gradient coming in and
  the one going out, plus the parameter gradients. The input batch and the
  parameters themselves are not counted (they exist outside the step).
"""

from __future__ import annotations

import time

import numpy as np

import backprop as bp

FLOAT_BYTES = 4
_VIEWS = {"Reshape", "Flatten"}
_ACTIVATIONS = {"TanH", "Sigmoid", "ReLU"}


def gemm_rate(n: int = 1024, repeats: int = 7) -> float:
    """float32 GEMM throughput of NumPy's BLAS, in GFLOP/s: the best of ``repeats`` products.

    The best, not the median: it estimates what the machine can do, and a
    shared machine only ever makes a product slower.
    """
    a = np.random.default_rng(0).random((n, n), dtype=np.float32)
    b = a.copy()
    out = np.empty_like(a)
    np.matmul(a, b, out=out)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        np.matmul(a, b, out=out)
        times.append(time.perf_counter() - t0)
    return 2 * n**3 / min(times) / 1e9


def bandwidth(mib: int = 64, repeats: int = 7) -> float:
    """Memory bandwidth in GB/s: the best copy between two ``mib`` MiB float32 arrays (read + write)."""
    src = np.random.default_rng(0).random(mib * 2**20 // 4, dtype=np.float32)
    dst = np.empty_like(src)
    np.copyto(dst, src)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        np.copyto(dst, src)
        times.append(time.perf_counter() - t0)
    return 2 * src.nbytes / min(times) / 1e9


def _leaves(net):
    """The network's layers in order (nested Sequentiels flattened)."""
    return [m for m in net.modules() if not m.children()]


def step_model(net, n_features: int) -> dict:
    """Per-sample FLOPs, bytes and live-set bytes of one training step of ``net`` (a chain of layers).

    Returns ``{"flops", "bytes", "live_bytes", "fixed_bytes", "layers"}``:
    ``flops``, ``bytes`` and ``live_bytes`` scale with the batch, ``fixed_bytes``
    (parameter traffic and gradients, independent of the batch) does not.
    """
    layers = _leaves(net)
    # a probe row on the network's own backend (whatever BACKPROP_BACKEND says)
    backend = next((m.backend for m in layers if m.backend is not None), None) or _host_backend()
    x = bp.asarray(np.zeros((1, n_features), dtype=np.float32), backend=backend)
    shapes = []
    for m in layers:
        y = m.forward(x)
        shapes.append((int(np.prod(x.shape[1:])), int(np.prod(y.shape[1:]))))
        x = y
    first = next((i for i, m in enumerate(layers) if m.n_parameters()), len(layers))
    flops = moved = fixed = 0
    activations = 0
    widest = 0  # the largest (incoming + outgoing gradient) of a backward rule
    grads = 0
    per_layer = []
    for i, (m, (n_in, n_out)) in enumerate(zip(layers, shapes)):
        kind = type(m).__name__
        params = m.n_parameters()
        grads += params
        input_grad = i > first
        f = b = 0  # this layer's per-sample FLOPs and element moves
        if kind in _VIEWS:
            per_layer.append((repr(m), 0, 0))
            continue
        activations += n_out
        if kind == "Linear" or kind.startswith("Conv"):
            window = m.in_features if kind == "Linear" else int(np.prod(m.kernel)) * m.chan_in
            macs = window * (m.out_features if kind == "Linear" else n_out)
            f += 2 * macs * (3 if input_grad else 2)
            b += n_in + n_out  # forward: read X, write Y
            b += n_in + n_out  # weight gradient: read X and delta
            fixed += params * 3  # read W (forward), write the gradient, read W (input gradient)
            if input_grad:
                b += n_out + n_in  # input gradient: read delta, write dX
        elif kind in _ACTIVATIONS:
            b += n_in + n_out + (n_out + n_out + n_in if input_grad else 0)
        elif kind.startswith(("MaxPool", "AvgPool")):
            b += n_in + n_out + (n_in + n_out + n_out + n_in if input_grad else 0)
        else:
            b += n_in + n_out + (n_out + n_in if input_grad else 0)
        if input_grad:
            widest = max(widest, n_out + n_in)
        flops += f
        moved += b
        per_layer.append((repr(m), f, b * FLOAT_BYTES))
    # the cost: read the output and the targets, write its gradient
    moved += 3 * shapes[-1][1]
    widest = max(widest, 2 * shapes[-1][1])
    fixed += 3 * grads  # update: read parameter and gradient, write the parameter
    return {
        "flops": flops,
        "bytes": moved * FLOAT_BYTES,
        "live_bytes": (activations + widest) * FLOAT_BYTES,
        "fixed_bytes": fixed * FLOAT_BYTES,
        "grad_bytes": grads * FLOAT_BYTES,
        "layers": per_layer,
    }


def _host_backend():
    return bp.backends.make_backend("numpy", None, "float32")


def for_batch(model: dict, batch: int) -> dict:
    """The step's FLOPs, bytes and live set at ``batch`` samples."""
    return {
        "flops": model["flops"] * batch,
        "bytes": model["bytes"] * batch + model["fixed_bytes"],
        "live_bytes": model["live_bytes"] * batch + model["grad_bytes"],
    }


def shares(work: dict, seconds: float, gemm_gflops: float, bandwidth_gbs: float) -> dict:
    """Share of the GEMM bound and of the full roofline reached by a step that took ``seconds``."""
    t_flops = work["flops"] / (gemm_gflops * 1e9)
    t_bytes = work["bytes"] / (bandwidth_gbs * 1e9)
    return {"gemm": t_flops / seconds, "roofline": max(t_flops, t_bytes) / seconds}
