"""Where the time of a training step goes, layer by layer.

``python -m benchmarks.profile seed_cnn --batch 256 --backend numpy``

Runs the training step of a workload the way ``Optim.step`` does (zero the
gradients, each layer's internal forward, the cost and its gradient, each
layer's internal backward in reverse, the update), timing every part, on
fresh batches; prints the median of each part in microseconds, their sum,
and the median of whole ``Optim.step`` calls for comparison. Nested
``Sequentiel`` containers are flattened into their layers.
"""

from __future__ import annotations

import argparse
import statistics
import time

import backprop as bp

from .workloads import LR, WORKLOADS, backprop_loss, backprop_network, make_batches


def layers_of(net) -> list:
    """The leaves of a chain of Sequentiels, in order."""
    if isinstance(net, bp.Sequentiel):
        return [leaf for child in net.children() for leaf in layers_of(child)]
    return [net]


def profile(wname: str, batch: int, backend: str = "numpy", steps: int = 40) -> dict:
    """Median seconds of each part of a step: ``{part: seconds}`` (in step order)."""
    w = WORKLOADS[wname]
    with bp.use_backend(backend, dtype="float32") as b:
        net = backprop_network(w)
        loss = backprop_loss(w)
        optim = bp.Optim(net, loss, eps=LR)
        data = [(bp.asarray(X), bp.asarray(y)) for X, y in make_batches(w, batch)]
        layers = layers_of(net)
        first = next((i for i, m in enumerate(layers) if m.n_parameters()), len(layers))
        times: dict = {}

        def timed(part, fn, *args):
            b.synchronize()
            t0 = time.perf_counter()
            out = fn(*args)
            b.synchronize(*(() if out is None else (out,)))
            times.setdefault(part, []).append(time.perf_counter() - t0)
            return out

        with bp.Loss.targets_checked():
            for i in range(steps):
                x, y = data[i % len(data)]
                timed("zero_grad", net.zero_grad)
                acts = [x]
                for j, m in enumerate(layers):
                    acts.append(timed(f"{j} {m!r} forward", m.chain_forward, acts[-1]))
                per_row, delta = timed("cost and its gradient", loss.forward_backward, y, acts[-1])
                for j in range(len(layers) - 1, -1, -1):
                    m = layers[j]
                    delta = timed(
                        f"{j} {m!r} backward", m.chain_backward, acts[j], delta, j > first
                    )
                timed("update", optim.optimizer.step, net)
            for i in range(steps):
                timed("whole Optim.step", optim.step, *data[i % len(data)])
    warm = steps // 5
    return {part: statistics.median(v[warm:]) for part, v in times.items()}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks.profile", description=__doc__)
    p.add_argument("workload", choices=list(WORKLOADS))
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--backend", default="numpy")
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--threads", type=int, default=2, help="CPU threads for BLAS and PyTorch")
    args = p.parse_args(argv)
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(args.threads)
    except ImportError:
        pass
    try:
        import torch

        torch.set_num_threads(args.threads)
    except ImportError:
        pass
    parts = profile(args.workload, args.batch, args.backend, args.steps)
    whole = parts.pop("whole Optim.step")
    total = sum(parts.values())
    print(f"{args.workload}, batch {args.batch}, backend {args.backend}: median microseconds")
    for part, seconds in parts.items():
        print(f"  {part:55s} {seconds * 1e6:9.0f}  {seconds / total:4.0%}")
    print(f"  {'sum of the parts':55s} {total * 1e6:9.0f}")
    print(f"  {'whole Optim.step':55s} {whole * 1e6:9.0f}")


if __name__ == "__main__":
    main()
