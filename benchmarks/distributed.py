"""Beyond one machine, measured: data-parallel steps on a LocalCluster, and training from a large file.

``python -m benchmarks.distributed`` measures

* the time of one training step on one process (``Optim.step``) and on a
  ``LocalCluster`` of 1 and 2 worker processes (``DataParallelTrainer``),
  for a small and a large network, hence the per-step overhead of the
  cluster and the samples per second;
* the pieces of a cost model: the round trip of an empty call to a worker,
  the time to send an array to a worker and back (bandwidth), the compute
  time per sample and the optimizer update on the driver;
* the peak resident memory of ``backprop train --data X.npy y.npy`` on a
  memory-mapped file of about 1 GB (written to a temporary directory and
  deleted afterwards).

It writes ``results.json`` (default: ``docs/distributed/``) and prints the
tables that ``docs/distributed.md`` reports, with the projection of the model
for 8, 64 and 512 workers. Nothing here decides a test.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import backprop as bp
from backprop import distributed, models

ROOT = Path(__file__).resolve().parents[1]

NETWORKS = {
    "small": ("digits MLP: Linear(64,100)-TanH-Linear(100,10)", (64,)),
    "large": ("MLP: Linear(784,1024)-ReLU-Linear(1024,1024)-ReLU-Linear(1024,10)", (784,)),
}


def network(name):
    if name == "small":
        return models.mlp(64, 10)
    return bp.Sequential(
        bp.Linear(784, 1024), bp.ReLU(), bp.Linear(1024, 1024), bp.ReLU(), bp.Linear(1024, 10)
    )


def data(name, rows, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(rows, *NETWORKS[name][1])).astype(np.float32)
    return X, rng.integers(0, 10, size=rows)


def single_step_s(name, batch, repeats):
    """Median seconds of one training step on this process."""
    bp.manual_seed(0)
    net = network(name)
    optim = bp.Optim(net, bp.CELogSoftmax(), eps=0.01)
    X, y = data(name, batch)
    X, y = bp.asarray(X), bp.asarray(y)
    for _ in range(3):
        optim.step(X, y)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        float(optim.step(X, y))
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def driver_s(name, repeats):
    """Median seconds of the driver's own work in a step: adding one gradient, and the update."""
    bp.manual_seed(0)
    net = network(name)
    slots = list(net.parameter_slots())
    grads = [bp.to_numpy(m.get_gradient(k)) + 1.0 for m, k in slots]
    add, update = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        total = [bp.asarray(g) * 0.5 for g in grads]
        t1 = time.perf_counter()
        net.zero_grad()
        for (m, k), g in zip(slots, total):
            m.accumulate_gradient(k, g)
        net.update_parameters(0.01)
        t2 = time.perf_counter()
        add.append(t1 - t0)
        update.append(t2 - t1)
    return statistics.median(add), statistics.median(update)


def cluster_step_s(client, workers, name, batch, steps):
    """Seconds per step of DataParallelTrainer (an epoch of ``steps`` batches, after a warm-up epoch)."""
    bp.manual_seed(0)
    net = network(name)
    X, y = data(name, batch * steps)
    trainer = distributed.DataParallelTrainer(
        net,
        bp.CELogSoftmax(),
        "sgd",
        client=client,
        n_shards=workers,
        eps=0.01,
        batch_size=batch,
        seed=0,
    )
    history = trainer.fit(X, y, 2)
    return history.time[-1] / steps


class Echo:
    """An actor that sends back what it receives: the round trip and the bandwidth of a call."""

    def echo(self, x):
        return x


def calls(client, sizes, fan_out, repeats):
    """Median seconds of calls to worker actors.

    ``{"payload": {bytes: s}}``: one call carrying ``bytes`` (float32) there
    and back; ``{"fan_out": {n: s}}``: ``n`` empty calls at once, spread over
    the workers (the driver's cost per call is the slope).
    """
    workers = list(client.scheduler_info()["workers"])
    actors = [client.submit(Echo, workers=[w], actor=True).result() for w in workers]
    out = {"payload": {}, "fan_out": {}}

    def timed(fn):
        for _ in range(3):
            fn()
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        return statistics.median(times)

    for nbytes in sizes:
        payload = np.ones(max(nbytes // 4, 1), dtype=np.float32) if nbytes else None
        out["payload"][nbytes] = timed(lambda payload=payload: actors[0].echo(payload).result())
    for n in fan_out:

        def spread(n=n):
            pending = [actors[i % len(actors)].echo(None) for i in range(n)]
            return [f.result() for f in pending]

        out["fan_out"][n] = timed(spread)
    return out


def measure_steps(batches, steps, repeats):
    results = {"networks": {}, "calls": {}, "n_parameters": {}}
    for name in NETWORKS:
        results["n_parameters"][name] = network(name).n_parameters()
        results["networks"][name] = {
            str(b): {"single_s": single_step_s(name, b, repeats)} for b in batches
        }
        add, update = driver_s(name, repeats)
        results["networks"][name]["add_gradient_s"] = add
        results["networks"][name]["update_s"] = update
    for workers in (1, 2):
        with distributed.local_cluster(workers) as client:
            if workers == 2:
                measured = calls(client, [0, 1 << 20, 8 << 20], [1, 8, 32], repeats)
                results["calls"] = {
                    k: {str(n): t for n, t in v.items()} for k, v in measured.items()
                }
            for name in NETWORKS:
                for b in batches:
                    seconds = cluster_step_s(client, workers, name, b, steps)
                    results["networks"][name][str(b)][f"workers_{workers}_s"] = seconds
    return results


# ------------------------------------------------------------------ the model


def model_inputs(results):
    """The model's numbers, from the measurements: per sample compute, round trip, bandwidth, per call."""
    payload = {int(k): v for k, v in results["calls"]["payload"].items()}
    fan = {int(k): v for k, v in results["calls"]["fan_out"].items()}
    rt, big = payload[0], max(payload)
    bandwidth = 2 * big / (payload[big] - rt)  # a call carries the array there and back
    per_call = (fan[max(fan)] - fan[min(fan)]) / (max(fan) - min(fan))
    out = {
        "round_trip_s": rt,
        "per_call_s": per_call,
        "bandwidth_Bps": bandwidth,
        "bookkeeping_s": 0.0,
    }
    out["networks"] = {}
    for name, entry in results["networks"].items():
        sizes = sorted(int(b) for b in entry if b.isdigit())
        lo, hi = sizes[0], sizes[-1]
        per_sample = (entry[str(hi)]["single_s"] - entry[str(lo)]["single_s"]) / (hi - lo)
        out["networks"][name] = {
            "compute_per_sample_s": per_sample,
            "gradient_bytes": 4 * results["n_parameters"][name],
            "add_gradient_s": entry["add_gradient_s"],
            "update_s": entry["update_s"],
        }
    # what the pieces leave out of a measured step (the trainer's own work: taking the rows,
    # converting arrays): the small network's 1-worker steps, where transfers are negligible
    small = results["networks"]["small"]
    gaps = [
        small[b]["workers_1_s"] - step_time(out, "small", int(b), 1) for b in small if b.isdigit()
    ]
    out["bookkeeping_s"] = statistics.median(gaps)
    return out


def step_time(inputs, name, per_worker_batch, workers, bandwidth=None):
    """Seconds of one step of ``workers`` workers, each on ``per_worker_batch`` rows.

    ``t(W) = c b + t_rt + t_0 + t_update + W (t_call + 2 G / bw + t_add)``: every
    step the driver makes W calls, sends the parameters to each worker and
    receives each gradient (2 W G bytes through one process), adds the W
    gradients, then updates once.
    """
    net = inputs["networks"][name]
    bw = bandwidth or inputs["bandwidth_Bps"]
    per_worker = inputs["per_call_s"] + 2 * net["gradient_bytes"] / bw + net["add_gradient_s"]
    fixed = (
        net["compute_per_sample_s"] * per_worker_batch + inputs["round_trip_s"] + net["update_s"]
    )
    return fixed + inputs["bookkeeping_s"] + workers * per_worker


def projection(inputs, name, per_worker_batch, workers, bandwidth=None):
    """Samples per second of ``workers`` workers through the driver (per-worker batch fixed)."""
    return (
        workers * per_worker_batch / step_time(inputs, name, per_worker_batch, workers, bandwidth)
    )


def crossover(inputs, name, per_worker_batch, bandwidth=None):
    """The worker count from which the driver's share of a step exceeds a worker's compute."""
    net = inputs["networks"][name]
    bw = bandwidth or inputs["bandwidth_Bps"]
    per_worker = inputs["per_call_s"] + 2 * net["gradient_bytes"] / bw + net["add_gradient_s"]
    return net["compute_per_sample_s"] * per_worker_batch / per_worker


# ------------------------------------------------------------------ memory


def peak_rss_of_training(gigabytes, epochs=1):
    """Peak RSS of ``backprop train --data X.npy y.npy`` on a file of ``gigabytes``, in a temporary directory."""
    features = 784
    rows = int(gigabytes * 2**30 / (features * 4))
    with tempfile.TemporaryDirectory(prefix="backprop-rss-") as folder:
        x_path, y_path = os.path.join(folder, "X.npy"), os.path.join(folder, "y.npy")
        X = np.lib.format.open_memmap(x_path, mode="w+", dtype=np.float32, shape=(rows, features))
        labels = np.empty(rows, dtype=np.int64)
        rng = np.random.default_rng(0)
        W = rng.normal(size=(features, 10)).astype(np.float32)
        for a in range(0, rows, 32768):
            block = rng.normal(size=(min(32768, rows - a), features)).astype(np.float32)
            X[a : a + len(block)] = block
            labels[a : a + len(block)] = np.argmax(block @ W, axis=1)
        X.flush()
        del X
        np.save(y_path, labels)
        size = os.path.getsize(x_path)
        command = [
            sys.executable,
            "-c",
            _PEAK_OF_TRAIN,
            "train",
            "--data",
            x_path,
            y_path,
            "--model",
            "mlp",
        ]
        command += ["--epochs", str(epochs), "--batch-size", "256", "--quiet"]
        t0 = time.perf_counter()
        out = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
        seconds = time.perf_counter() - t0
        if out.returncode != 0:
            raise RuntimeError(f"backprop train failed:\n{out.stdout}\n{out.stderr}")
        peak_kb = int(out.stderr.split("peak_rss_kb")[-1].split()[0])
        return {
            "file_bytes": size,
            "rows": rows,
            "features": features,
            "epochs": epochs,
            "peak_rss_bytes": peak_kb * 1024,
            "seconds": seconds,
            "output": out.stdout.strip().splitlines()[-1],
        }


# The peak is read by the process itself (VmHWM), not from the rusage of the child: a child's
# ru_maxrss counts the memory of the parent at the fork, before the exec (here, the pages of the
# file just written)
_PEAK_OF_TRAIN = """
import sys
from backprop.cli import main
code = main(sys.argv[1:])
with open("/proc/self/status") as f:
    peak = next(line.split()[1] for line in f if line.startswith("VmHWM"))
print("peak_rss_kb", peak, file=sys.stderr)
sys.exit(code)
"""


# ------------------------------------------------------------------ report


def report(results):
    lines = []
    for name, (description, _) in NETWORKS.items():
        entry = results["networks"][name]
        lines.append(f"\n{name}: {description}, {results['n_parameters'][name]:,} parameters")
        lines.append(
            "  batch   one process      1 worker          2 workers        overhead (1 worker)"
        )
        for b in sorted((k for k in entry if k.isdigit()), key=int):
            row = entry[b]
            cells = []
            for key in ("single_s", "workers_1_s", "workers_2_s"):
                cells.append(f"{row[key] * 1e3:7.2f} ms {int(b) / row[key]:7.0f}/s")
            over = (row["workers_1_s"] - row["single_s"]) * 1e3
            lines.append(f"  {b:>5}   " + "  ".join(cells) + f"   {over:6.2f} ms")
    inputs = results["model"]
    lines.append(
        f"\nround trip {inputs['round_trip_s'] * 1e3:.2f} ms, driver per call {inputs['per_call_s'] * 1e3:.3f} ms, "
        f"bandwidth {inputs['bandwidth_Bps'] / 1e9:.2f} GB/s"
    )
    for name, net in inputs["networks"].items():
        lines.append(
            f"{name}: compute {net['compute_per_sample_s'] * 1e6:.2f} us/sample, gradient "
            f"{net['gradient_bytes'] / 1e6:.2f} MB, add {net['add_gradient_s'] * 1e3:.3f} ms, "
            f"update {net['update_s'] * 1e3:.2f} ms"
        )
    lines.append(f"bookkeeping per step {inputs['bookkeeping_s'] * 1e3:.2f} ms")
    lines.append("\nmodel against measurement (ms per step; W workers share the global batch)")
    for name, entry in results["networks"].items():
        for b in sorted((k for k in entry if k.isdigit()), key=int):
            cells = []
            for w in (1, 2):
                model = step_time(inputs, name, int(b) / w, w) * 1e3
                cells.append(
                    f"W={w}: model {model:6.2f} measured {entry[b][f'workers_{w}_s'] * 1e3:6.2f}"
                )
            lines.append(f"  {name} batch {b:>3}: " + "; ".join(cells))
    for key, rows in results["projection"].items():
        lines.append(f"\nprojection {key}")
        for row in rows:
            lines.append("  " + ", ".join(f"{k}={v}" for k, v in row.items()))
    if "rss" in results:
        r = results["rss"]
        lines.append(
            f"\nbackprop train --data on {r['file_bytes'] / 2**30:.2f} GiB ({r['rows']} x {r['features']} "
            f"float32): peak RSS {r['peak_rss_bytes'] / 2**20:.0f} MiB, {r['seconds']:.0f} s; {r['output']}"
        )
    return "\n".join(lines)


def _rate(samples_per_s) -> str:
    return f"{samples_per_s / 1e3:.1f}k/s" if samples_per_s >= 1e3 else f"{samples_per_s:.0f}/s"


def _ms(seconds) -> str:
    return f"{seconds * 1e3:.2f} ms" if seconds < 0.1 else f"{seconds * 1e3:.0f} ms"


def markdown(results) -> str:
    """The tables of docs/distributed.md, from ``results``."""
    lines = [
        "| network | batch | one process | 1 worker | 2 workers | overhead of the cluster (1 worker) |"
    ]
    lines.append("| --- | --- | --- | --- | --- | --- |")
    for name, (description, _) in NETWORKS.items():
        entry = results["networks"][name]
        for i, b in enumerate(sorted((k for k in entry if k.isdigit()), key=int)):
            row = entry[b]
            label = (
                f"{name}: {description}, {results['n_parameters'][name]:,} parameters"
                if i == 0
                else ""
            )
            cells = [
                f"{_ms(row[k])} ({_rate(int(b) / row[k])})"
                for k in ("single_s", "workers_1_s", "workers_2_s")
            ]
            over = _ms(row["workers_1_s"] - row["single_s"])
            lines.append(f"| {label} | {b} | " + " | ".join(cells) + f" | {over} |")
    m = results["model"]
    small, large = m["networks"]["small"], m["networks"]["large"]
    lines += [
        "",
        "| piece | symbol | measured |",
        "| --- | --- | --- |",
        f"| round trip of an empty call to a worker actor | t_rt | {_ms(m['round_trip_s'])} |",
        f"| driver time per extra call (slope of 1, 8, 32 calls at once) | t_call | {_ms(m['per_call_s'])} |",
        f"| bandwidth of a call carrying 8 MB there and back | bw | {m['bandwidth_Bps'] / 1e9:.2f} GB/s (loopback) |",
        "| compute per sample (one process, slope over batch sizes) | c | "
        f"small {small['compute_per_sample_s'] * 1e6:.2f} µs, large {large['compute_per_sample_s'] * 1e6:.1f} µs |",
        f"| gradient size (float32) | G | small {small['gradient_bytes'] / 1e3:.0f} kB, "
        f"large {large['gradient_bytes'] / 1e6:.2f} MB |",
        f"| adding one gradient on the driver | t_add | small {_ms(small['add_gradient_s'])}, "
        f"large {_ms(large['add_gradient_s'])} |",
        f"| the update on the driver | t_up | small {_ms(small['update_s'])}, large {_ms(large['update_s'])} |",
        "| the trainer's own work per step (residual of the small network, 1 worker) | t_0 | "
        f"{_ms(m['bookkeeping_s'])} |",
        "",
        "| network | batch | W | model | measured |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name, entry in results["networks"].items():
        for b in sorted((k for k in entry if k.isdigit()), key=int):
            for w in (1, 2):
                model = step_time(m, name, int(b) / w, w)
                lines.append(
                    f"| {name} | {b} | {w} | {_ms(model)} | {_ms(entry[b][f'workers_{w}_s'])} |"
                )
    for key, rows in results["projection"].items():
        header = "| network | b | W = 1 | W = 8 | W = 64 | W = 512 | driver-bound from W = |"
        lines += ["", f"projection, {key}:", "", header]
        lines.append("| --- | --- | --- | --- | --- | --- | --- |")
        for row in rows:
            cells = [_rate(row[f"W={w}"]) for w in (1, 8, 64, 512)]
            head = f"| {row['network']} | {row['per_worker_batch']} | "
            lines.append(head + " | ".join(cells) + f" | {row['reducer_bound_from_W']} |")
    return "\n".join(lines)


def add_model(results):
    """The model's inputs and its projection for 8, 64 and 512 workers, into ``results``."""
    results["model"] = model_inputs(results)
    results["projection"] = {}
    for label, bandwidth in (
        ("loopback (measured)", None),
        ("10 GbE link (1.25 GB/s, nominal)", 1.25e9),
    ):
        rows = []
        for name in NETWORKS:
            for b in (32, 256):
                row = {"network": name, "per_worker_batch": b}
                for w in (1, 8, 64, 512):
                    row[f"W={w}"] = round(projection(results["model"], name, b, w, bandwidth))
                row["reducer_bound_from_W"] = round(
                    crossover(results["model"], name, b, bandwidth), 2
                )
                rows.append(row)
        results["projection"][label] = rows


def main(argv=None):
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.distributed", description=__doc__.split("\n")[0]
    )
    p.add_argument(
        "--out", default=str(ROOT / "docs" / "distributed"), help="directory for results.json"
    )
    p.add_argument("--quick", action="store_true", help="fewer steps and repeats, no large file")
    p.add_argument(
        "--rss-gb", type=float, default=1.1, help="size of the memory-mapped file (0: skip)"
    )
    p.add_argument(
        "--rss-only", action="store_true", help="measure the memory only (updates results.json)"
    )
    p.add_argument(
        "--report", action="store_true", help="recompute the model and tables from results.json"
    )
    args = p.parse_args(argv)
    if args.report:
        results = json.loads((Path(args.out) / "results.json").read_text())
        add_model(results)
        (Path(args.out) / "results.json").write_text(json.dumps(results, indent=1))
        print(report(results))
        print("\n" + markdown(results))
        return
    if args.rss_only:
        path = Path(args.out) / "results.json"
        results = json.loads(path.read_text()) if path.exists() else {}
        results["rss"] = peak_rss_of_training(args.rss_gb)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(results, indent=1))
        r = results["rss"]
        print(
            f"peak RSS {r['peak_rss_bytes'] / 2**20:.0f} MiB on {r['file_bytes'] / 2**30:.2f} GiB; {r['output']}"
        )
        return
    try:  # one BLAS thread, as in the workers of a LocalCluster (Dask sets OMP_NUM_THREADS=1 there)
        from threadpoolctl import threadpool_limits

        threadpool_limits(1)
    except ImportError:
        print("threadpoolctl is not installed: the driver uses every BLAS thread", file=sys.stderr)
    batches = (32, 512) if args.quick else (32, 128, 512)
    steps, repeats = (4, 5) if args.quick else (20, 30)
    results = measure_steps(batches, steps, repeats)
    add_model(results)
    if args.rss_gb > 0 and not args.quick:
        results["rss"] = peak_rss_of_training(args.rss_gb)
    results["machine"] = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "load_average_at_end": os.getloadavg(),
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=1))
    print(report(results))
    print(f"\nwrote {out / 'results.json'}")


if __name__ == "__main__":
    main()
