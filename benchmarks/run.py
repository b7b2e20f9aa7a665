"""Run the benchmarks: every contender on every workload and batch size, interleaved."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

import backprop as bp
from backprop.backends import BackendUnavailableError

from .workloads import WORKLOADS, NumpyStep, SklearnStep, TorchStep, backprop_loss, backprop_network, make_data, weights_of

DEFAULT_BATCHES = (32, 256, 2048)


@dataclass
class Contender:
    """One way of running a workload: a training step and an inference pass on a fixed batch."""

    name: str
    kind: str  # "backprop", "peer", "floor" or "reference"
    train: object
    infer: object
    sync: object = lambda: None
    times: dict = field(default_factory=lambda: {"train": [], "infer": []})


def _backprop_contender(w, batch, backend_name, device=None, label=None):
    try:
        backend = bp.backends.make_backend(backend_name, device, "float32")
    except (BackendUnavailableError, ValueError) as exc:
        return None, f"{label or backend_name}: {exc}"
    with bp.use_backend(backend):
        net = backprop_network(w)
        optim = bp.Optim(net, backprop_loss(w), eps=0.01)
        X, y = make_data(w, batch)
        Xb, yb = bp.asarray(X), bp.asarray(y)
    name = f"backprop[{label or backend_name}]"
    kind = "reference" if backend_name == "array_api_strict" else "backprop"
    return Contender(name, kind, lambda: optim.step(Xb, yb), lambda: net.forward(Xb), backend.synchronize), None


def contenders_for(w, batch, backends, peers, skipped):
    out = []

    def add(result):
        c, reason = result
        if c is not None:
            out.append(c)
        elif reason not in skipped:
            skipped.append(reason)

    for name in backends:
        if name == "torch:cuda":
            add(_backprop_contender(w, batch, "torch", "cuda", "torch:cuda"))
        elif name == "array_api_strict" and batch != min(DEFAULT_BATCHES + (batch,)):
            continue  # the conformance reference runs at the smallest size only
        else:
            add(_backprop_contender(w, batch, name))
    X, y = make_data(w, batch)
    weights = weights_of(backprop_network(w))
    if "numpy" in peers:
        floor = NumpyStep(w, weights)
        out.append(Contender("numpy (hand-written)", "floor", lambda: floor.step(X, y), lambda: floor.infer(X)))
    if "torch" in peers or "torch:cuda" in peers:
        try:
            import torch
        except ImportError:
            skipped.append("torch (native): PyTorch is not installed")
            torch = None
        if torch is not None:
            devices = [d for d in ("cpu", "cuda") if ("torch" if d == "cpu" else "torch:cuda") in peers]
            for device in devices:
                if device == "cuda" and not torch.cuda.is_available():
                    reason = "torch:cuda (native): no CUDA device"
                    if reason not in skipped:
                        skipped.append(reason)
                    continue
                t = TorchStep(w, weights, device)
                tX, ty = t.prepare(X, y)
                label = "torch (native)" if device == "cpu" else "torch:cuda (native)"
                out.append(
                    Contender(label, "peer", lambda t=t, tX=tX, ty=ty: t.step(tX, ty), lambda t=t, tX=tX: t.infer(tX), t.sync)
                )
    if "sklearn" in peers and w.sklearn:
        try:
            s = SklearnStep(w, batch)
            s.step(X, y)
            out.append(Contender("sklearn MLPClassifier", "peer", lambda: s.step(X, y), lambda: s.infer(X)))
        except ImportError:
            skipped.append("sklearn: scikit-learn is not installed")
    return out


def _block(fn, sync, inner):
    sync()
    t0 = time.perf_counter()
    for _ in range(inner):
        fn()
    sync()
    return (time.perf_counter() - t0) / inner


def measure(contenders, mode, repeats, min_block, gap):
    """Median seconds per call of each contender; repetitions interleaved across contenders.

    ``gap`` seconds of sleep separate two timed blocks: the thread pools of
    one library (OpenBLAS, OpenMP) spin for a while after their last call and
    would otherwise take the cores from the next contender.
    """
    inner = {}
    for c in contenders:
        fn = getattr(c, mode)
        for _ in range(3):  # warm-up: caches, allocator, lazy compilation
            fn()
        one = _block(fn, c.sync, 1)
        inner[c.name] = max(1, min(1000, int(min_block / max(one, 1e-7))))
    for r in range(repeats):
        order = contenders[r % len(contenders) :] + contenders[: r % len(contenders)]
        for c in order:
            time.sleep(gap)
            c.times[mode].append(_block(getattr(c, mode), c.sync, inner[c.name]))


def gemm_rate(n=1024, repeats=7):
    """float32 GEMM throughput of NumPy's BLAS, in GFLOP/s (the machine's dense-maths ceiling)."""
    a = np.random.default_rng(0).random((n, n), dtype=np.float32)
    b = a.copy()
    a @ b
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - t0)
    return 2 * n**3 / statistics.median(times) / 1e9


def environment(threads):
    info = {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "threads": threads,
        "versions": {"backprop": bp.__version__, "numpy": np.__version__},
    }
    for mod in ("torch", "sklearn", "array_api_compat", "array_api_strict", "cupy"):
        with contextlib.suppress(Exception):  # not installed, or no GPU for cupy
            info["versions"][mod] = __import__(mod).__version__
    try:
        from threadpoolctl import threadpool_info

        info["blas"] = [
            {k: d.get(k) for k in ("internal_api", "version", "num_threads", "architecture")} for d in threadpool_info()
        ]
    except ImportError:
        info["blas"] = "threadpoolctl not installed"
    try:
        import torch

        if torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name(0)
    except ImportError:
        pass
    return info


def summarise(samples, batch):
    med = statistics.median(samples)
    q = np.percentile(samples, [25, 75]) if len(samples) > 1 else (med, med)
    return {"median_s": med, "iqr_s": float(q[1] - q[0]), "samples_per_s": batch / med}


def run(args):
    threads = args.threads
    try:
        import torch

        torch.set_num_threads(threads)
    except ImportError:
        pass
    limiter = None
    try:
        from threadpoolctl import threadpool_limits

        limiter = threadpool_limits(threads)
    except ImportError:
        pass
    results = {"environment": environment(threads), "gemm_gflops": gemm_rate(), "workloads": {}, "skipped": []}
    print(f"float32 GEMM (NumPy BLAS, {threads} threads): {results['gemm_gflops']:.1f} GFLOP/s", flush=True)
    for wname in args.models:
        w = WORKLOADS[wname]
        results["workloads"][wname] = {"description": w.description, "batches": {}}
        for batch in args.batch_sizes:
            cs = contenders_for(w, batch, args.backends, args.peers, results["skipped"])
            entry = {}
            for mode in ("train", "infer"):
                measure(cs, mode, args.repeats, args.min_block, args.gap)
            for c in cs:
                entry[c.name] = {
                    "kind": c.kind,
                    "train": summarise(c.times["train"], batch) | {"raw_s": c.times["train"]},
                    "infer": summarise(c.times["infer"], batch) | {"raw_s": c.times["infer"]},
                }
            results["workloads"][wname]["batches"][str(batch)] = entry
            print(
                f"  {wname:12s} batch {batch:5d}: "
                + ", ".join(f"{n} {e['train']['samples_per_s']:,.0f}/s" for n, e in entry.items()),
                flush=True,
            )
    if limiter is not None:
        limiter.restore_original_limits()
    results["ratios"] = ratios(results)
    return results


def _ratio(entry, a, b, mode="train"):
    if a in entry and b in entry:
        return entry[a][mode]["samples_per_s"] / entry[b][mode]["samples_per_s"]
    return None


def ratios(results):
    """The ratios the library promises, from one run (see docs/benchmarks.md)."""
    out = []
    for wname, wdata in results["workloads"].items():
        for batch, entry in wdata["batches"].items():
            for mode in ("train", "infer"):
                r_torch = _ratio(entry, "backprop[numpy]", "torch (native)", mode)
                r_floor = _ratio(entry, "backprop[numpy]", "numpy (hand-written)", mode)
                out.append(
                    {
                        "workload": wname,
                        "batch": int(batch),
                        "mode": mode,
                        "numpy_vs_torch": r_torch,
                        "numpy_vs_handwritten": r_floor,
                        "cupy_vs_torch_cuda": _ratio(entry, "backprop[cupy]", "torch:cuda (native)", mode),
                        "cupy_vs_numpy": _ratio(entry, "backprop[cupy]", "backprop[numpy]", mode),
                    }
                )
    return out


TARGETS = [  # (workload, batch, key, minimum) for training steps
    ("seed_mlp", 32, "numpy_vs_torch", 2.0),
    ("digits_mlp", 32, "numpy_vs_torch", 2.0),
    ("seed_mlp", 256, "numpy_vs_torch", 1.5),
    ("digits_mlp", 256, "numpy_vs_torch", 1.5),
    ("seed_cnn", 256, "numpy_vs_torch", 1.0),
]


def check_targets(results):
    lines = []
    for r in results["ratios"]:
        if r["mode"] != "train":
            continue
        for wname, batch, key, minimum in TARGETS:
            if r["workload"] == wname and r["batch"] == batch and r[key] is not None:
                ok = "met" if r[key] >= minimum else "NOT MET"
                lines.append(f"{wname} batch {batch}: backprop[numpy] / torch = {r[key]:.2f}x (target >= {minimum}) {ok}")
        if r["numpy_vs_handwritten"] is not None:
            ok = "met" if r["numpy_vs_handwritten"] >= 0.8 else "NOT MET"
            lines.append(
                f"{r['workload']} batch {r['batch']}: backprop[numpy] / hand-written NumPy = "
                f"{r['numpy_vs_handwritten']:.2f}x (target >= 0.8) {ok}"
            )
    return lines


def table(results, mode="train"):
    lines = []
    for wname, wdata in results["workloads"].items():
        batches = list(wdata["batches"])
        names = []
        for entry in wdata["batches"].values():
            names += [n for n in entry if n not in names]
        lines.append(f"\n{wname} ({mode}): {wdata['description']}")
        lines.append("| contender | " + " | ".join(f"batch {b} samples/s (x torch)" for b in batches) + " |")
        lines.append("| --- |" + " --- |" * len(batches))
        for n in names:
            cells = []
            for b in batches:
                entry = wdata["batches"][b]
                if n not in entry:
                    cells.append("-")
                    continue
                sps = entry[n][mode]["samples_per_s"]
                rel = _ratio(entry, n, "torch (native)", mode)
                spread = entry[n][mode]["iqr_s"] / entry[n][mode]["median_s"] * 100
                cells.append(f"{sps:,.0f} ±{spread:.0f}%" + (f" ({rel:.2f}x)" if rel else ""))
            lines.append(f"| {n} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def markdown(results) -> str:
    """The run as Markdown: machine, tables (training and inference), the promised ratios."""
    env = results["environment"]
    blas = (
        env["blas"]
        if isinstance(env["blas"], str)
        else ", ".join(
            f"{b['internal_api']} {b.get('version') or ''} ({b['num_threads']} threads)".replace("  ", " ") for b in env["blas"]
        )
    )
    versions = ", ".join(f"{k} {v}" for k, v in env["versions"].items())
    lines = [
        f"Machine: {env['platform']}, {env['cpu_count']} CPUs, {env['threads']} threads for BLAS and PyTorch"
        + (f", GPU {env['gpu']}" if env.get("gpu") else "")
        + ".",
        f"Libraries: {versions}. BLAS pools: {blas}.",
        f"float32 GEMM (NumPy's BLAS, 1024x1024): {results['gemm_gflops']:.1f} GFLOP/s.",
        "",
        "Samples per second (median of the timed blocks), the spread (interquartile range over median)",
        "and, in parentheses, the ratio to native PyTorch on the CPU in the same run.",
        "",
        "### Training step (forward, cost, backward, update)",
        table(results, "train"),
        "",
        "### Inference (forward only)",
        table(results, "infer"),
        "",
        "### The promised ratios (training step, backprop on NumPy)",
        "",
        *[f"- {line}" for line in check_targets(results)],
    ]
    if results["skipped"]:
        lines += ["", "Skipped: " + "; ".join(results["skipped"]) + "."]
    return "\n".join(lines) + "\n"


def plot(results, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    workloads = list(results["workloads"])
    fig, axes = plt.subplots(2, len(workloads), figsize=(4.2 * len(workloads), 7.5), squeeze=False)
    for col, wname in enumerate(workloads):
        wdata = results["workloads"][wname]
        batches = [int(b) for b in wdata["batches"]]
        names = []
        for entry in wdata["batches"].values():
            names += [n for n in entry if n not in names]
        for row, mode in enumerate(("train", "infer")):
            ax = axes[row][col]
            for n in names:
                xs = [b for b in batches if n in wdata["batches"][str(b)]]
                ys = [wdata["batches"][str(b)][n][mode]["samples_per_s"] for b in xs]
                style = "-o" if n.startswith("backprop") else "--s"
                ax.plot(xs, ys, style, label=n, markersize=4)
            ax.set_xscale("log", base=2)
            ax.set_yscale("log")
            ax.set_title(f"{wname}: {'training step' if mode == 'train' else 'inference'}", fontsize=10)
            ax.set_xlabel("batch size")
            ax.grid(True, which="both", alpha=0.3)
            if col == 0:
                ax.set_ylabel("samples / s")
    handles, labels = [], []
    for ax in axes.flat:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            if lab not in labels:
                handles.append(h)
                labels.append(lab)
    fig.legend(handles, labels, loc="lower center", ncol=min(4, len(labels)), fontsize=9)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    p.add_argument(
        "--backends",
        nargs="+",
        default=["numpy", "torch", "cupy", "torch:cuda", "array_api_strict"],
        help="backprop backends to run (missing ones are skipped with the reason)",
    )
    p.add_argument(
        "--peers",
        nargs="+",
        default=["numpy", "torch", "torch:cuda", "sklearn"],
        help="native contenders: numpy (hand-written), torch, torch:cuda, sklearn",
    )
    p.add_argument("--models", nargs="+", default=list(WORKLOADS), choices=list(WORKLOADS))
    p.add_argument("--batch-sizes", nargs="+", type=int, default=list(DEFAULT_BATCHES))
    p.add_argument("--repeats", type=int, default=9, help="timed blocks per contender (median reported)")
    p.add_argument("--min-block", type=float, default=0.05, help="seconds each timed block lasts at least")
    p.add_argument("--gap", type=float, default=0.2, help="seconds of idle between timed blocks (thread pools park)")
    p.add_argument("--threads", type=int, default=2, help="CPU threads for BLAS and PyTorch")
    p.add_argument("--quick", action="store_true", help="small sizes and few repetitions (a smoke run)")
    p.add_argument("--out", type=Path, default=Path("results/benchmarks"), help="where results.json and the plot go")
    args = p.parse_args(argv)
    if args.quick:
        args.batch_sizes = [32, 256]
        args.repeats = 3
        args.min_block = 0.01
        args.gap = 0.02
    return args


def main(argv=None):
    args = parse_args(argv)
    results = run(args)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(results, indent=1))
    plot(results, args.out / "throughput.png")
    (args.out / "report.md").write_text(markdown(results))
    print(table(results, "train"))
    print(table(results, "infer"))
    if results["skipped"]:
        print("\nskipped:\n  " + "\n  ".join(results["skipped"]))
    print("\ntargets (training step):\n  " + "\n  ".join(check_targets(results)))
    print(f"\nwrote {args.out / 'results.json'}, {args.out / 'report.md'} and {args.out / 'throughput.png'}")
    return results
