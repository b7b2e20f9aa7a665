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
from backprop.optim import validate_targets

from . import late, memory, roofline
from .workloads import (
    LR,
    WORKLOADS,
    JaxStep,
    NumpyStep,
    SklearnStep,
    TorchStep,
    backprop_loss,
    backprop_network,
    cycler,
    make_batches,
    weights_of,
)

DEFAULT_BATCHES = (32, 256, 2048)
TORCH = "torch (native)"
JAX = "jax (jit, hand-written)"
NUMPY_FLOOR = "numpy (hand-written)"


@dataclass
class Contender:
    """One way of running a workload: a training step and an inference pass, each on the next batch."""

    name: str
    kind: str  # "backprop", "peer", "floor" or "reference"
    train: object
    infer: object  # None: not measured
    sync: object = lambda *results: None  # waits for queued work (GPU, JAX's asynchronous dispatch)
    memory: str = "rss"  # how its peak memory is measured: "tracemalloc" or "rss"
    times: dict = field(default_factory=lambda: {"train": [], "infer": []})
    peak_bytes: int | None = None


def _backprop_contender(w, batches, backend_name, device=None, label=None, compile=False):
    label = label or backend_name
    name = f"backprop[{label}]"
    try:
        backend = bp.backends.make_backend(backend_name, device, "float32")
    except (BackendUnavailableError, ValueError, ImportError) as exc:
        return None, f"{name}: {exc}"
    with bp.use_backend(backend):
        net = backprop_network(w)
        loss = backprop_loss(w)
        optim = bp.Optim(net, loss, eps=LR, compile=compile)
        data = [(bp.asarray(X), bp.asarray(y)) for X, y in batches]
    for x, y in data:  # as the Trainer does: every target checked once, before the steps
        validate_targets(net, loss, x, y)
    nxt = cycler(data)

    def train():
        x, y = nxt()
        return optim.step(x, y)

    def infer():
        return net.forward(nxt()[0])

    def sync(*results):
        backend.synchronize(*results, *net.parameters())

    kind = "reference" if backend_name == "array_api_strict" else "backprop"
    numpy_based = backend_name in ("numpy", "array_api_strict")
    c = Contender(
        name, kind, train, None if compile else infer, sync, "tracemalloc" if numpy_based else "rss"
    )
    return c, None


def _backprop_contenders(w, batch, batches, backends, smallest):
    for name in backends:
        if name == "torch:cuda":
            yield _backprop_contender(w, batches, "torch", "cuda", "torch:cuda")
        elif name == "array_api_strict":
            if batch == smallest:  # the conformance reference runs at the smallest size only
                yield _backprop_contender(w, batches, name)
        elif name == "jax":
            yield _backprop_contender(w, batches, "jax")
            yield _backprop_contender(w, batches, "jax", label="jax, compiled", compile=True)
        else:
            yield _backprop_contender(w, batches, name)


def _stepping(name, kind, obj, batches, sync=None, memory="rss"):
    """A contender whose step and inference run ``obj`` on the next of its own ``batches``.

    The cycler is made here, one per call: a closure over a loop variable
    would hand every contender the batches of the last one.
    """
    nxt = cycler(batches)
    train = lambda: obj.step(*nxt())  # noqa: E731
    infer = lambda: obj.infer(nxt()[0])  # noqa: E731
    return Contender(name, kind, train, infer, sync or (lambda *results: None), memory)


def _peer_contenders(w, batch, batches, peers, weights, skipped):
    if "numpy" in peers and not w.floor:
        _skip(skipped, f"{NUMPY_FLOOR}: no hand-written step for {w.name}")
    if "numpy" in peers and w.floor:
        floor = NumpyStep(w, weights)
        yield _stepping(NUMPY_FLOOR, "floor", floor, batches, memory="tracemalloc")
    devices = [d for d, key in (("cpu", "torch"), ("cuda", "torch:cuda")) if key in peers]
    if devices:
        try:
            import torch
        except ImportError:
            _skip(skipped, f"{TORCH}: PyTorch is not installed")
            devices = []
        for device in devices:
            label = TORCH if device == "cpu" else "torch:cuda (native)"
            if device == "cuda" and not torch.cuda.is_available():
                _skip(skipped, f"{label}: no CUDA device")
                continue
            t = TorchStep(w, weights, device)
            yield _stepping(label, "peer", t, [t.prepare(X, y) for X, y in batches], t.sync)
    if "jax" in peers:
        try:
            j = JaxStep(w, weights)
        except ImportError:
            _skip(
                skipped,
                f"{JAX}: JAX is not installed (pip install 'backprop-nn[jax]', from a checkout pip install -e '.[jax]')",
            )
        else:
            yield _stepping(JAX, "peer", j, [j.prepare(X, y) for X, y in batches], j.sync)
    if "sklearn" in peers and w.sklearn:
        try:
            s = SklearnStep(w, batch)
        except ImportError:
            _skip(skipped, "sklearn: scikit-learn is not installed")
        else:
            s.step(*batches[0])
            yield _stepping("sklearn MLPClassifier", "peer", s, batches, memory="tracemalloc")


def _skip(skipped, reason):
    if reason not in skipped:
        skipped.append(reason)


def batch_sizes_for(w, args):
    """The batch sizes of workload ``w`` in this run: ``--batch-sizes`` when given, else the
    workload's own (full or quick) or the run's."""
    if args.batch_sizes_given:
        return list(args.batch_sizes)
    own = (
        (w.quick_batch,) if args.quick and w.quick_batch else None if args.quick else w.batch_sizes
    )
    return list(own or args.batch_sizes)


def contenders_for(w, batch, args, skipped):
    batches = make_batches(w, batch)
    out = []
    smallest = min(batch_sizes_for(w, args))
    for c, reason in _backprop_contenders(w, batch, batches, args.backends, smallest):
        if c is not None:
            out.append(c)
        else:
            _skip(skipped, reason)
    weights = weights_of(backprop_network(w))
    for c in _peer_contenders(w, batch, batches, args.peers, weights, skipped):
        out.append(c)
    return out


def _block(fn, sync, inner):
    result = None
    sync()
    t0 = time.perf_counter()
    for _ in range(inner):
        result = fn()
    sync(result)
    return (time.perf_counter() - t0) / inner


def measure(contenders, mode, repeats, min_block, gap):
    """Median seconds per call of each contender; repetitions interleaved across contenders.

    ``gap`` seconds of sleep come before every timed block: the thread pools
    of one library (OpenBLAS, OpenMP, XLA) spin for a while after their last
    call and would otherwise take the cores from the next contender.
    """
    active = [c for c in contenders if getattr(c, mode) is not None]
    inner = {}
    for c in active:
        fn = getattr(c, mode)
        for _ in range(3):  # warm-up: caches, allocator, compilation
            c.sync(fn())
        one = _block(fn, c.sync, 1)
        inner[c.name] = max(1, min(1000, int(min_block / max(one, 1e-7))))
    for r in range(repeats):
        order = active[r % len(active) :] + active[: r % len(active)]
        for c in order:
            time.sleep(gap)
            c.times[mode].append(_block(getattr(c, mode), c.sync, inner[c.name]))


def environment(threads):
    info = {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "threads": threads,
        "versions": {"backprop": bp.__version__, "numpy": np.__version__},
        "env": {
            k: v
            for k, v in os.environ.items()
            if k.startswith(("OPENBLAS", "OMP_", "MKL", "XLA", "JAX"))
        },
    }
    for mod in (
        "torch",
        "jax",
        "jaxlib",
        "sklearn",
        "array_api_compat",
        "array_api_strict",
        "cupy",
    ):
        with contextlib.suppress(Exception):  # not installed, or no GPU for cupy
            info["versions"][mod] = __import__(mod).__version__
    try:
        from threadpoolctl import threadpool_info

        info["blas"] = [
            {k: d.get(k) for k in ("internal_api", "version", "num_threads", "architecture")}
            for d in threadpool_info()
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
    if not samples:
        return None
    med = statistics.median(samples)
    q = np.percentile(samples, [25, 75]) if len(samples) > 1 else (med, med)
    return {
        "median_s": med,
        "iqr_s": float(q[1] - q[0]),
        "samples_per_s": batch / med,
        "raw_s": list(samples),
    }


def _run_workload(w, args, results, rss):
    """Every batch size of workload ``w``: train and infer timings, peak memory, shares."""
    model = roofline.step_model(backprop_network(w), w.n_features)
    results["workloads"][w.name] = {"description": w.description, "model": model, "batches": {}}
    for batch in batch_sizes_for(w, args):
        cs = contenders_for(w, batch, args, results["skipped"])
        for mode in ("train", "infer"):
            measure(cs, mode, args.repeats, args.min_block, args.gap)
        for c in cs:
            if c.memory == "tracemalloc" or rss:
                c.peak_bytes = memory.peak(c.train, c.memory, c.sync)
        work = roofline.for_batch(model, batch)
        entry = {}
        for c in cs:
            train = summarise(c.times["train"], batch)
            entry[c.name] = {
                "kind": c.kind,
                "train": train,
                "infer": summarise(c.times["infer"], batch),
                "memory": {"method": c.memory, "peak_bytes": c.peak_bytes},
                "shares": roofline.shares(
                    work, train["median_s"], results["gemm_gflops"], results["bandwidth_gbs"]
                ),
            }
        results["workloads"][w.name]["batches"][str(batch)] = {"work": work, "contenders": entry}
        print(
            f"  {w.name:12s} batch {batch:5d}: "
            + ", ".join(f"{n} {e['train']['samples_per_s']:,.0f}/s" for n, e in entry.items()),
            flush=True,
        )


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
    rss = memory.rss_available()
    results = {
        "environment": environment(threads),
        "gemm_gflops": roofline.gemm_rate(),
        "bandwidth_gbs": roofline.bandwidth(),
        "settings": {k: v for k, v in vars(args).items() if k != "out"},
        "workloads": {},
        "skipped": [],
    }
    print(
        f"float32 GEMM (NumPy BLAS, {threads} threads): {results['gemm_gflops']:.1f} GFLOP/s; "
        f"memory bandwidth (copy): {results['bandwidth_gbs']:.1f} GB/s",
        flush=True,
    )
    with bp.Loss.targets_checked():  # targets are validated once per contender, as the Trainer does
        for wname in args.models:
            if wname != late.NAME:
                _run_workload(WORKLOADS[wname], args, results, rss)
    if late.NAME in args.models:
        results["long_training"] = late.run(
            args.backends, args.peers, args.quick, results["skipped"], gap=args.gap
        )
        print(late.table(results["long_training"]), flush=True)
    # the machine's rates again at the end: the roofline uses the best of both measurements
    rates = {"gemm_gflops": roofline.gemm_rate(), "bandwidth_gbs": roofline.bandwidth()}
    results["rates_measured"] = {k: [results[k], v] for k, v in rates.items()}
    for key, value in rates.items():
        results[key] = max(results[key], value)
    for wdata in results["workloads"].values():
        for bdata in wdata["batches"].values():
            for e in bdata["contenders"].values():
                e["shares"] = roofline.shares(
                    bdata["work"],
                    e["train"]["median_s"],
                    results["gemm_gflops"],
                    results["bandwidth_gbs"],
                )
    if limiter is not None:
        limiter.restore_original_limits()
    return results


# --------------------------------------------------------------- reporting


def _sps(entry, name, mode="train"):
    e = entry.get(name)
    return e[mode]["samples_per_s"] if e is not None and e[mode] is not None else None


def _ratio(entry, a, b, mode="train"):
    x, y = _sps(entry, a, mode), _sps(entry, b, mode)
    return x / y if x is not None and y is not None else None


def best_backprop(entry, mode="train"):
    """The fastest backprop contender on the CPU, as ``(name, samples/s)``."""
    cands = [
        (n, _sps(entry, n, mode))
        for n, e in entry.items()
        if e["kind"] == "backprop" and "cuda" not in n and "cupy" not in n and _sps(entry, n, mode)
    ]
    return max(cands, key=lambda c: c[1]) if cands else (None, None)


TARGETS = [  # (workload, batch, key, minimum) for training steps: the ratios the library has promised
    ("seed_mlp", 32, "numpy_vs_torch", 2.0),
    ("digits_mlp", 32, "numpy_vs_torch", 2.0),
    ("seed_mlp", 256, "numpy_vs_torch", 1.5),
    ("digits_mlp", 256, "numpy_vs_torch", 1.5),
    ("seed_cnn", 256, "numpy_vs_torch", 1.0),
]


def _met(value, minimum, most=False):
    if value is None:
        return "not measured"
    return "met" if (value <= minimum if most else value >= minimum) else "NOT MET"


def check_targets(results):
    """The promised ratios of backprop on NumPy against native PyTorch and the hand-written NumPy step."""
    lines = []
    for wname, wdata in results["workloads"].items():
        for batch, bdata in wdata["batches"].items():
            entry = bdata["contenders"]
            for tw, tb, _, minimum in TARGETS:
                r = _ratio(entry, "backprop[numpy]", TORCH)
                if tw == wname and str(tb) == batch and r is not None:
                    lines.append(
                        f"{wname} batch {batch}: backprop[numpy] / torch = {r:.2f}x "
                        f"(target >= {minimum}) {_met(r, minimum)}"
                    )
            r = _ratio(entry, "backprop[numpy]", NUMPY_FLOOR)
            if r is not None:
                lines.append(
                    f"{wname} batch {batch}: backprop[numpy] / hand-written NumPy = {r:.2f}x (target >= 0.8) {_met(r, 0.8)}"
                )
    return lines


def check_goals(results):
    """The goals of the performance work, each with the measured figure."""
    lines = _jax_goals(results) + _torch_goals(results)
    if "long_training" in results:
        lines += late.goals(results["long_training"])
    return lines + _memory_goals(results)


def _jax_goals(results):
    """Best backprop against the hand-written JAX step; the GEMM shares."""
    lines = []
    for wname, wdata in results["workloads"].items():
        for batch, bdata in wdata["batches"].items():
            entry = bdata["contenders"]
            name, sps = best_backprop(entry)
            jax = _sps(entry, JAX)
            if name and jax:
                r = sps / jax
                lines.append(
                    f"{wname} batch {batch}: best backprop ({name}) / JAX jit step = {r:.2f}x "
                    f"(goal >= 1.0) {_met(r, 1.0)}"
                )
    for wname, batch, minimum in (("seed_cnn", "256", 0.35), ("seed_mlp", "256", 0.45)):
        bdata = results["workloads"].get(wname, {}).get("batches", {}).get(batch)
        if bdata is None:
            continue
        name, _ = best_backprop(bdata["contenders"])
        if name:
            share = bdata["contenders"][name]["shares"]["gemm"]
            lines.append(
                f"{wname} batch {batch}: {name} reaches {share:.0%} of the GEMM roofline "
                f"(goal >= {minimum:.0%}) {_met(share, minimum)}"
            )
    return lines


def _torch_goals(results):
    """Best backprop against native PyTorch: the dense networks at batch 256, LeNet-5."""
    lines = []
    for wname in ("seed_mlp", "autoencoder"):
        bdata = results["workloads"].get(wname, {}).get("batches", {}).get("256")
        if bdata is None:
            continue
        name, sps = best_backprop(bdata["contenders"])
        torch = _sps(bdata["contenders"], TORCH)
        if name and torch:
            lines.append(
                f"{wname} batch 256: best backprop ({name}) / torch = {sps / torch:.2f}x "
                f"(goal >= 1.5) {_met(sps / torch, 1.5)}"
            )
    for batch, bdata in results["workloads"].get("lenet5", {}).get("batches", {}).items():
        entry = bdata["contenders"]
        name, sps = best_backprop(entry)
        torch = _sps(entry, TORCH)
        if name and torch:
            lines.append(
                f"lenet5 batch {batch}: best backprop ({name}) / torch = {sps / torch:.2f}x "
                f"(goal >= 1.0) {_met(sps / torch, 1.0)}"
            )
        r = _ratio(entry, "backprop[numpy]", TORCH)
        if r is not None:
            lines.append(
                f"lenet5 batch {batch}: backprop[numpy] / torch = {r:.2f}x (goal >= 0.8) "
                f"{_met(r, 0.8)}"
            )
    return lines


def _memory_goals(results):
    """The CNN step's peak memory against its live set, at batch 2048."""
    lines = []
    bdata = results["workloads"].get("seed_cnn", {}).get("batches", {}).get("2048")
    if bdata is not None:
        live = bdata["work"]["live_bytes"]
        for n, e in bdata["contenders"].items():
            if e["kind"] == "backprop" and e["memory"]["peak_bytes"]:
                r = e["memory"]["peak_bytes"] / live
                lines.append(
                    f"seed_cnn batch 2048: {n} step peak {e['memory']['peak_bytes'] / 2**20:.0f} MiB "
                    f"({e['memory']['method']}) = {r:.2f}x the live set of {live / 2**20:.0f} MiB "
                    f"(goal <= 1.2x) {_met(r, 1.2, most=True)}"
                )
    return lines


def _names(wdata):
    names = []
    for bdata in wdata["batches"].values():
        names += [n for n in bdata["contenders"] if n not in names]
    return names


def table(results, mode="train"):
    lines = []
    for wname, wdata in results["workloads"].items():
        batches = list(wdata["batches"])
        lines.append(f"\n{wname} ({mode}): {wdata['description']}")
        lines.append(
            "| contender | "
            + " | ".join(f"batch {b}: samples/s (x torch, x jax)" for b in batches)
            + " |"
        )
        lines.append("| --- |" + " --- |" * len(batches))
        for n in _names(wdata):
            cells = []
            for b in batches:
                entry = wdata["batches"][b]["contenders"]
                s = entry.get(n, {}).get(mode)
                if not s:
                    cells.append("-")
                    continue
                spread = s["iqr_s"] / s["median_s"] * 100
                rel = [_ratio(entry, n, ref, mode) for ref in (TORCH, JAX)]
                shown = ", ".join(f"{r:.2f}x" if r else "-" for r in rel)
                cells.append(f"{s['samples_per_s']:,.0f} ±{spread:.0f}% ({shown})")
            lines.append(f"| {n} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def roofline_table(results):
    lines = []
    for wname, wdata in results["workloads"].items():
        batches = list(wdata["batches"])
        lines.append(f"\n{wname}: share of the GEMM bound / of the roofline (training step)")
        head = []
        for b in batches:
            work = wdata["batches"][b]["work"]
            t_f = work["flops"] / (results["gemm_gflops"] * 1e9)
            t_b = work["bytes"] / (results["bandwidth_gbs"] * 1e9)
            bound = "compute" if t_f >= t_b else "memory"
            head.append(
                f"batch {b}: {work['flops'] / int(b) / 1e6:.3f} MFLOP and {work['bytes'] / int(b) / 1e3:.1f} kB "
                f"a sample, {bound}-bound, roofline {int(b) / max(t_f, t_b):,.0f} samples/s"
            )
        lines.append("; ".join(head) + ".")
        lines.append("")
        lines.append(
            "| contender | " + " | ".join(f"batch {b}: GEMM / roofline" for b in batches) + " |"
        )
        lines.append("| --- |" + " --- |" * len(batches))
        for n in _names(wdata):
            cells = []
            for b in batches:
                e = wdata["batches"][b]["contenders"].get(n)
                cells.append(
                    f"{e['shares']['gemm']:.0%} / {e['shares']['roofline']:.0%}" if e else "-"
                )
            lines.append(f"| {n} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def memory_table(results):
    lines = []
    for wname, wdata in results["workloads"].items():
        batches = list(wdata["batches"])
        lives = [wdata["batches"][b]["work"]["live_bytes"] for b in batches]
        lines.append(
            f"\n{wname}: peak memory of one training step, MiB (x the live set: "
            + ", ".join(f"{v / 2**20:.1f} MiB at batch {b}" for b, v in zip(batches, lives))
            + ")"
        )
        lines.append("| contender | method | " + " | ".join(f"batch {b}" for b in batches) + " |")
        lines.append("| --- | --- |" + " --- |" * len(batches))
        for n in _names(wdata):
            cells, method = [], "-"
            for b, live in zip(batches, lives):
                e = wdata["batches"][b]["contenders"].get(n)
                if not e or e["memory"]["peak_bytes"] is None:
                    cells.append("-")
                    continue
                method = e["memory"]["method"]
                v = e["memory"]["peak_bytes"]
                cells.append(f"{v / 2**20:.1f} ({v / live:.2f}x)")
            lines.append(f"| {n} | {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def markdown(results) -> str:
    """The run as Markdown: machine, tables (training, inference, roofline, memory), goals and ratios."""
    env = results["environment"]
    blas = (
        env["blas"]
        if isinstance(env["blas"], str)
        else ", ".join(
            f"{b['internal_api']} {b.get('version') or ''} ({b['num_threads']} threads)".replace(
                "  ", " "
            )
            for b in env["blas"]
        )
    )
    versions = ", ".join(f"{k} {v}" for k, v in env["versions"].items())
    s = results["settings"]
    lines = [
        f"Machine: {env['platform']}, {env['cpu_count']} CPUs, {env['threads']} threads for BLAS and PyTorch"
        + (f", GPU {env['gpu']}" if env.get("gpu") else "")
        + ".",
        f"Libraries: {versions}. BLAS pools: {blas}.",
        f"Measured in the run (best of its start and its end): float32 GEMM (NumPy's BLAS, "
        f"1024x1024) {results['gemm_gflops']:.1f} GFLOP/s; memory bandwidth (64 MiB copy) "
        f"{results['bandwidth_gbs']:.1f} GB/s.",
        f"Settings: {s['repeats']} timed blocks of at least {s['min_block']} s per contender, "
        f"{s['gap']} s pause before each block.",
        "",
        "Samples per second (median of the timed blocks), the spread (interquartile range over median)",
        "and, in parentheses, the ratios to native PyTorch and to the hand-written JAX jit step in the same run.",
        "",
        "### Training step (forward, cost, backward, update)",
        table(results, "train"),
        "",
        "### Inference (forward only)",
        table(results, "infer"),
        "",
        "### Share of the hardware (training step)",
        roofline_table(results),
        "",
        "### Peak memory (training step)",
        memory_table(results),
        "",
        *(
            ["### Late in training (Adam)", late.table(results["long_training"]), ""]
            if "long_training" in results
            else []
        ),
        "### Goals (training step)",
        "",
        *[f"- {line}" for line in check_goals(results)],
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
    fig, axes = plt.subplots(2, len(workloads), figsize=(4.2 * len(workloads), 7.8), squeeze=False)
    for col, wname in enumerate(workloads):
        wdata = results["workloads"][wname]
        batches = [int(b) for b in wdata["batches"]]
        for row, mode in enumerate(("train", "infer")):
            ax = axes[row][col]
            for n in _names(wdata):
                xs = [b for b in batches if _sps(wdata["batches"][str(b)]["contenders"], n, mode)]
                ys = [_sps(wdata["batches"][str(b)]["contenders"], n, mode) for b in xs]
                if xs:
                    ax.plot(
                        xs, ys, "-o" if n.startswith("backprop") else "--s", label=n, markersize=4
                    )
            ax.set_xscale("log", base=2)
            ax.set_yscale("log")
            ax.set_title(
                f"{wname}: {'training step' if mode == 'train' else 'inference'}", fontsize=10
            )
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
    fig.tight_layout(rect=(0, 0.09, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    p.add_argument(
        "--backends",
        nargs="+",
        default=["numpy", "torch", "jax", "cupy", "torch:cuda", "array_api_strict"],
        help="backprop backends to run (missing ones are skipped with the reason); jax runs eager and compiled",
    )
    p.add_argument(
        "--peers",
        nargs="+",
        default=["numpy", "torch", "jax", "torch:cuda", "sklearn"],
        help="native contenders: numpy (hand-written), torch, jax (jit, hand-written), torch:cuda, sklearn",
    )
    models = [*WORKLOADS, late.NAME]
    p.add_argument(
        "--models",
        nargs="+",
        default=models,
        choices=models,
        help=f"workloads ({late.NAME}: epoch times late and early in a long Adam run)",
    )
    p.add_argument("--batch-sizes", nargs="+", type=int, default=None)
    p.add_argument(
        "--repeats", type=int, default=None, help="timed blocks per contender (median reported)"
    )
    p.add_argument(
        "--min-block", type=float, default=None, help="seconds each timed block lasts at least"
    )
    p.add_argument(
        "--gap",
        type=float,
        default=0.2,
        help="seconds of idle before each timed block (thread pools park)",
    )
    p.add_argument("--threads", type=int, default=2, help="CPU threads for BLAS and PyTorch")
    p.add_argument(
        "--quick",
        action="store_true",
        help="one batch size, few blocks (a smoke run; same pause between blocks)",
    )
    p.add_argument(
        "--out",
        type=Path,
        default=Path("results/benchmarks"),
        help="where results.json and the plot go",
    )
    args = p.parse_args(argv)
    args.batch_sizes_given = args.batch_sizes is not None
    quick = {"batch_sizes": [256], "repeats": 2, "min_block": 0.02}
    full = {"batch_sizes": list(DEFAULT_BATCHES), "repeats": 9, "min_block": 0.05}
    for key, value in (quick if args.quick else full).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    return args


def main(argv=None):
    args = parse_args(argv)
    t0 = time.perf_counter()
    results = run(args)
    results["wall_s"] = time.perf_counter() - t0
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(results, indent=1))
    plot(results, args.out / "throughput.png")
    (args.out / "report.md").write_text(markdown(results))
    print(table(results, "train"))
    print(table(results, "infer"))
    print(roofline_table(results))
    print(memory_table(results))
    if "long_training" in results:
        print(late.table(results["long_training"]))
    if results["skipped"]:
        print("\nskipped:\n  " + "\n  ".join(results["skipped"]))
    print("\ngoals (training step):\n  " + "\n  ".join(check_goals(results)))
    print("\ntargets (training step):\n  " + "\n  ".join(check_targets(results)))
    print(
        f"\nwrote {args.out / 'results.json'}, {args.out / 'report.md'} and {args.out / 'throughput.png'}"
    )
    print(f"wall time {results['wall_s']:.0f} s")
    return results
