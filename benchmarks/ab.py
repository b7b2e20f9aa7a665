"""Before/after: the same training steps timed on two checkouts of the library, alternately.

``python -m benchmarks.ab BEFORE_DIR AFTER_DIR [--rounds 3]``

Each round runs one fresh process per checkout (``PYTHONPATH`` set to it),
before then after. A process times ``Optim(net, loss, eps).step(x, y)`` (the
assignment's single step, the same public call in every version) for the
seed's MLP, the 1-D CNN as the command line builds it (``Reshape`` first) and
the autoencoder, at batch 32, 256 and 2048, on the NumPy and PyTorch backends
(float32, 2 threads), next to the same network in native PyTorch in the same
process; the seed's MLP also with Adam (``seed_mlp_adam``, learning rate
1e-3, against ``torch.optim.Adam``), and LeNet-5 on 28x28 images at batch 50
with Adam (``lenet5``, channels last behind a ``Reshape``). Every step gets
the next of 8 pre-drawn batches (fresh data, so no
cache keyed on the input can hit). Reported per workload, batch and backend:
the median over rounds of samples per second, before and after, and of the
ratio to native PyTorch, which cancels most of the machine's drift between
processes.

Only the assignment's public API is used (``set_backend``, the modules,
``Optim``), so any two versions of the library can be compared.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

BATCHES = (32, 256, 2048)
BACKENDS = ("numpy", "torch")
POOL = 8
LENET_BATCH = 50
_LOAD = (
    "import importlib.util, sys; path = sys.argv.pop(1); "
    "spec = importlib.util.spec_from_file_location('ab', path); "
    "m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m); m.main(sys.argv[1:])"
)


def _networks(bp):
    """``{workload: (net, loss, eps, autoencoder?)}`` built with the public modules."""
    mlp = bp.Sequentiel(bp.Linear(256, 100), bp.TanH(), bp.Linear(100, 10))
    cnn = bp.Sequentiel(
        bp.Reshape((256, 1)), bp.Conv1D(3, 1, 32), bp.MaxPool1D(2, 2), bp.Flatten(),
        bp.Linear(4064, 100), bp.ReLU(), bp.Linear(100, 10),
    )  # fmt: skip
    auto = bp.Sequentiel(
        bp.Linear(256, 100), bp.TanH(), bp.Linear(100, 10), bp.TanH(),
        bp.Linear(10, 100), bp.TanH(), bp.Linear(100, 256), bp.Sigmoid(),
    )  # fmt: skip
    adam = bp.Sequentiel(bp.Linear(256, 100), bp.TanH(), bp.Linear(100, 10))
    return {
        "seed_mlp": (mlp, bp.CELogSoftmax(), 0.1, False, "sgd"),
        "seed_cnn": (cnn, bp.CELogSoftmax(), 0.1, False, "sgd"),
        "autoencoder": (auto, bp.BCELoss(), 0.1, True, "sgd"),
        "seed_mlp_adam": (adam, bp.CELogSoftmax(), 1e-3, False, "adam"),
    }


def _lenet(bp):
    """LeNet-5 on 28x28 single-channel images, channels last (the benchmark's lenet5)."""
    return bp.Sequentiel(
        bp.Reshape((28, 28, 1)), bp.Conv2D(5, 1, 6), bp.ReLU(), bp.MaxPool2D(2),
        bp.Conv2D(5, 6, 16), bp.ReLU(), bp.MaxPool2D(2), bp.Flatten(),
        bp.Linear(256, 120), bp.ReLU(), bp.Linear(120, 84), bp.ReLU(), bp.Linear(84, 10),
    )  # fmt: skip


def _torch_networks(torch):
    nn = torch.nn
    return {
        "seed_mlp": (nn.Sequential(nn.Linear(256, 100), nn.Tanh(), nn.Linear(100, 10)), False),
        "seed_cnn": (
            nn.Sequential(
                nn.Unflatten(1, (1, 256)),
                nn.Conv1d(1, 32, 3),
                nn.MaxPool1d(2, 2),
                nn.Flatten(),
                nn.Linear(4064, 100),
                nn.ReLU(),
                nn.Linear(100, 10),
            ),
            False,
        ),  # fmt: skip
        "autoencoder": (
            nn.Sequential(
                nn.Linear(256, 100),
                nn.Tanh(),
                nn.Linear(100, 10),
                nn.Tanh(),
                nn.Linear(10, 100),
                nn.Tanh(),
                nn.Linear(100, 256),
                nn.Sigmoid(),
            ),
            True,
        ),  # fmt: skip
        "seed_mlp_adam": (nn.Sequential(nn.Linear(256, 100), nn.Tanh(), nn.Linear(100, 10)), False),
    }


def _torch_lenet(torch):
    nn = torch.nn
    return nn.Sequential(
        nn.Unflatten(1, (1, 28, 28)), nn.Conv2d(1, 6, 5), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
        nn.Linear(256, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, 10),
    )  # fmt: skip


def _torch_optimizer(torch, net, wname):
    if wname.endswith("_adam"):
        return torch.optim.Adam(net.parameters(), lr=1e-3)
    return torch.optim.SGD(net.parameters(), lr=0.1)


def _time(step, n_calls, sync, blocks, min_block, gap):
    """Median seconds per call over ``blocks`` timed blocks (each at least ``min_block`` s)."""
    for i in range(3):
        step(i)
    sync()
    t0 = time.perf_counter()
    step(0)
    sync()
    inner = max(1, int(min_block / max(time.perf_counter() - t0, 1e-7)))
    times = []
    for _ in range(blocks):
        time.sleep(gap)
        t0 = time.perf_counter()
        for i in range(inner):
            step(i)
        sync()
        times.append((time.perf_counter() - t0) / inner)
    return statistics.median(times)


def _time_optim(optim, xs, ys, timing) -> float:
    """Seconds per ``optim.step`` on the next of the batches ``xs``, ``ys``."""

    def step(i):
        optim.step(xs[i % POOL], ys[i % POOL])

    return _time(step, POOL, lambda: None, *timing)


def _time_torch(net, opt, cost, xs, ys, timing) -> float:
    """Seconds per native PyTorch step (zero_grad, cost, backward, update) on the next batch."""

    def step(i):
        opt.zero_grad()
        cost(net(xs[i % POOL]), ys[i % POOL]).backward()
        opt.step()

    return _time(step, POOL, lambda: None, *timing)


def worker(blocks: int, min_block: float, gap: float) -> dict:
    """One process: every workload, batch and backend, and native PyTorch; ``{key: seconds}``."""
    import numpy as np
    import torch

    import backprop as bp

    torch.set_num_threads(2)
    timing = (blocks, min_block, gap)
    rng = np.random.default_rng(0)
    out = {"_library": os.path.dirname(bp.__file__)}
    for batch in BATCHES:
        data = [
            (rng.random((batch, 256), dtype=np.float32), rng.integers(0, 10, batch))
            for _ in range(POOL)
        ]
        for name in BACKENDS:
            bp.set_backend(name, dtype="float32")
            bp.manual_seed(0)
            for wname, (net, loss, eps, auto, rule) in _networks(bp).items():
                xs = [bp.asarray(x) for x, _ in data]
                ys = xs if auto else [bp.asarray(y) for _, y in data]
                optim = bp.Optim(net, loss, eps, optimizer=rule)
                out[f"{wname}|{batch}|{name}"] = _time_optim(optim, xs, ys, timing)
        torch.manual_seed(0)
        for wname, (net, auto) in _torch_networks(torch).items():
            cost = torch.nn.BCELoss() if auto else torch.nn.CrossEntropyLoss()
            xs = [torch.from_numpy(x) for x, _ in data]
            ys = xs if auto else [torch.from_numpy(y) for _, y in data]
            opt = _torch_optimizer(torch, net, wname)
            out[f"{wname}|{batch}|torch (native)"] = _time_torch(net, opt, cost, xs, ys, timing)
    # LeNet-5 at batch 50 (random 28x28 images: the time depends on the shapes only)
    data = [
        (rng.random((LENET_BATCH, 784), dtype=np.float32), rng.integers(0, 10, LENET_BATCH))
        for _ in range(POOL)
    ]
    for name in BACKENDS:
        bp.set_backend(name, dtype="float32")
        bp.manual_seed(0)
        optim = bp.Optim(_lenet(bp), bp.CELogSoftmax(), 1e-3, optimizer="adam")
        xs, ys = [bp.asarray(x) for x, _ in data], [bp.asarray(y) for _, y in data]
        out[f"lenet5|{LENET_BATCH}|{name}"] = _time_optim(optim, xs, ys, timing)
    net = _torch_lenet(torch)
    xs, ys = [torch.from_numpy(x) for x, _ in data], [torch.from_numpy(y) for _, y in data]
    opt, cost = torch.optim.Adam(net.parameters(), lr=1e-3), torch.nn.CrossEntropyLoss()
    out[f"lenet5|{LENET_BATCH}|torch (native)"] = _time_torch(net, opt, cost, xs, ys, timing)
    return out


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m benchmarks.ab", description=__doc__)
    p.add_argument("before", nargs="?")
    p.add_argument("after", nargs="?")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--blocks", type=int, default=5)
    p.add_argument("--min-block", type=float, default=0.1)
    p.add_argument("--gap", type=float, default=0.2)
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--out", default=None, help="write every round's timings here (JSON)")
    args = p.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.blocks, args.min_block, args.gap)))
        return
    if not (args.before and args.after):
        p.error("give the two checkouts: BEFORE_DIR AFTER_DIR")
    runs = {"before": [], "after": []}
    here = os.path.abspath(__file__)
    for r in range(args.rounds):
        for label in ("before", "after"):
            env = dict(os.environ, PYTHONPATH=os.path.abspath(getattr(args, label)))
            env.update(OMP_NUM_THREADS="2", OPENBLAS_NUM_THREADS="2", MKL_NUM_THREADS="2")
            # run this file by path from an empty folder: neither checkout's folder on sys.path
            # first, and no benchmarks/profile.py in the place of the standard library's
            cmd = [sys.executable, "-c", _LOAD, here, "--worker", "--blocks", str(args.blocks),
                   "--min-block", str(args.min_block), "--gap", str(args.gap)]  # fmt: skip
            with tempfile.TemporaryDirectory() as empty:
                done = subprocess.run(
                    cmd, env=env, cwd=empty, capture_output=True, text=True, check=False
                )
            if done.returncode:
                raise SystemExit(f"the {label} process failed:\n{done.stderr}")
            runs[label].append(json.loads(done.stdout.strip().splitlines()[-1]))
            print(f"round {r + 1} {label}: done", file=sys.stderr, flush=True)
    if args.out:
        with open(args.out, "w") as f:
            json.dump(runs, f, indent=1)
    for label in ("before", "after"):
        print(f"{label}: {runs[label][0]['_library']}")
    print(report(runs))


def report(runs: dict) -> str:
    """The Markdown table: samples/s before and after, and the ratios to native PyTorch."""
    lines = [
        "| workload | batch | backend | before samples/s (x torch) | after samples/s (x torch) "
        "| after / before |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    keys = [k for k in runs["before"][0] if "|" in k and not k.endswith("torch (native)")]
    for key in keys:
        wname, batch, backend = key.split("|")
        torch_key = f"{wname}|{batch}|torch (native)"
        cells = []
        for label in ("before", "after"):
            sps = statistics.median(int(batch) / run[key] for run in runs[label])
            ratio = statistics.median(run[torch_key] / run[key] for run in runs[label])
            cells.append((sps, ratio))
        (b, rb), (a, ra) = cells
        lines.append(
            f"| {wname} | {batch} | {backend} | {b:,.0f} ({rb:.2f}x) | {a:,.0f} ({ra:.2f}x) "
            f"| {a / b:.2f} (ratio {ra / rb:.2f}) |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
