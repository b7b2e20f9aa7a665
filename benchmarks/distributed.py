"""Data-parallel training: the collective, step times, driver CPU, memory, and a projection.

``python -m benchmarks.distributed`` measures, with one BLAS thread per process:

1. the gloo all-reduce between 2 and 3 processes of this machine (latency
   and bandwidth, fitted over message sizes);
2. seconds and driver CPU seconds per step of ``DataParallelTrainer`` on 1,
   2 and 3 workers, next to one process, for the seed CNN and the 1.86M MLP
   (the global batch split over the workers);
3. (without ``--quick``) a memory-mapped ``.npy`` of ``--rss-gb`` GiB trained
   for one epoch on 2 workers: the driver's and each worker's peak resident
   memory and the epoch's time, next to one process streaming it;

then projects the throughput of 8, 64 and 512 workers at 10 and 100 Gb/s
from the measured latency and bandwidth (a ring all-reduce, see
``docs/distributed.md``), and checks that model against the measured steps.
Results go to ``docs/distributed/results.json``.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")  # the workers inherit it
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import numpy as np

import backprop as bp
from backprop import distributed, models
from backprop.optim import Callback

ROOT = Path(__file__).resolve().parents[1]

NETWORKS = {
    "seed_cnn": "models.cnn1d(256): Conv1D(3,1,32)-MaxPool1D-Linear(4064,100)-ReLU-Linear(100,10)",
    "mlp_1.86M": "MLP 784-1024-1024-10 (ReLU), 1,863,690 parameters",
}
FEATURES = {"seed_cnn": 256, "mlp_1.86M": 784}


def network(name):
    bp.manual_seed(0)
    if name == "seed_cnn":
        return models.cnn1d(256)
    return bp.Sequential(
        bp.Linear(784, 1024), bp.ReLU(), bp.Linear(1024, 1024), bp.ReLU(), bp.Linear(1024, 10)
    )


def parameters_of(net) -> int:
    return sum(int(np.prod(bp.to_numpy(p).shape)) for p in net.parameters())


def data(name, rows, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(rows, FEATURES[name])).astype(np.float32)
    return X, rng.integers(0, 10, size=rows)


# ------------------------------------------------------------------ the collective


def _member(rank, world, port_queue, sizes, repeats, out):
    from backprop.backends.collective import Group, open_store

    if rank == 0:
        store, port = open_store("127.0.0.1", world, 60)
        for _ in range(world - 1):
            port_queue.put(port)
    else:
        store, port = None, port_queue.get()
    group = Group("127.0.0.1", port, rank, world, store=store)
    timings = {}
    for size in sizes:
        buf = np.ones(max(1, size // 4), dtype=np.float32)
        for _ in range(3):
            group.allreduce_(buf)
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            group.allreduce_(buf)
            times.append(time.perf_counter() - t0)
        timings[size] = statistics.median(times)
    if rank == 0:
        out.put(timings)


def allreduce_timings(world, sizes, repeats):
    """Median seconds of a gloo all-reduce of each size (bytes) among ``world`` processes."""
    ctx = multiprocessing.get_context("spawn")
    ports, out = ctx.Queue(), ctx.Queue()
    procs = [
        ctx.Process(target=_member, args=(r, world, ports, sizes, repeats, out))
        for r in range(world)
    ]
    for p in procs:
        p.start()
    timings = out.get(timeout=600)
    for p in procs:
        p.join()
    return {int(k): v for k, v in timings.items()}


def fit_latency_bandwidth(timings, world):
    """(alpha, beta) of ``t = 2 (W-1) alpha + 2 (W-1)/W * bytes / beta``: alpha from the
    smallest message, beta from the largest less that latency (a least-squares fit over sizes
    is ruled by the large messages and can give a negative latency)."""
    small, large = min(timings), max(timings)
    alpha = timings[small] / (2 * (world - 1))
    beta = 2 * (world - 1) / world * large / max(timings[large] - timings[small], 1e-9)
    return float(alpha), float(beta)


# ------------------------------------------------------------------ steps


class _Clock(Callback):
    """Wall and process CPU seconds of each epoch, from the driver's side."""

    def __init__(self):
        self.wall, self.cpu = [], []

    def on_epoch_begin(self, trainer, epoch):
        self._t = (time.perf_counter(), time.process_time())

    def on_epoch_end(self, trainer, epoch, logs):
        self.wall.append(time.perf_counter() - self._t[0])
        self.cpu.append(time.process_time() - self._t[1])


def one_process(name, batch, steps):
    """Seconds and CPU seconds per step of ``bp.SGD`` in this process (an epoch after a warm-up)."""
    net = network(name)
    X, y = data(name, batch * steps)
    clock = _Clock()
    bp.SGD(net, bp.CELogSoftmax(), X, y, batch_size=batch, epochs=2, eps=0.01, seed=0,
           callbacks=[clock], compile=False)  # fmt: skip
    return clock.wall[-1] / steps, clock.cpu[-1] / steps


def cluster(client, workers, name, batch, steps, epochs=3):
    """Seconds and driver CPU seconds per step of ``DataParallelTrainer`` (after a warm-up)."""
    net = network(name)
    X, y = data(name, batch * steps)
    clock = _Clock()
    trainer = distributed.DataParallelTrainer(
        net, bp.CELogSoftmax(), "sgd", client=client, n_shards=workers, eps=0.01,
        batch_size=batch, seed=0, callbacks=[clock],
    )  # fmt: skip
    trainer.fit(X, y, epochs)
    return (
        min(clock.wall[1:]) / steps,
        statistics.median(clock.cpu[1:]) / steps,
        max(trainer.replica_cpu_s) / steps,
    )


def measure_steps(names, batch, steps, worker_counts):
    results = {}
    for name in names:
        net = network(name)
        entry = {"parameters": parameters_of(net), "batch": batch, "steps_per_epoch": steps}
        entry["one_process"] = dict(zip(("step_s", "cpu_s"), one_process(name, batch, steps)))
        print(f"{name}: one process {entry['one_process']}", flush=True)
        # per-worker compute at the per-worker batch, for the model: CPU seconds (the machine is
        # shared: wall time there counts other jobs' time slices)
        entry["compute_s"] = {}
        for w in worker_counts:
            entry["compute_s"][w] = one_process(name, max(1, batch // w), steps)[1]
        for w in worker_counts:
            with distributed.local_cluster(w) as client:
                step, cpu, replica = cluster(client, w, name, batch, steps)
            entry[f"workers_{w}"] = {"step_s": step, "driver_cpu_s": cpu, "replica_cpu_s": replica}
            print(f"{name}: {w} worker(s) {step * 1e3:.1f} ms/step, driver CPU "
                  f"{cpu * 1e3:.2f} ms/step, replica CPU {replica * 1e3:.1f} ms/step",
                  flush=True)  # fmt: skip
        results[name] = entry
    return results


# ------------------------------------------------------------------ memory


_PEAK = """
import os, sys, time, json
os.environ.setdefault("OMP_NUM_THREADS", "1")
import backprop as bp
from backprop import distributed, models, streaming
x_path, y_path, mode = sys.argv[1:4]
bp.manual_seed(0)
net = models.mlp(784, 10)
t0 = time.perf_counter()
workers = []
if mode == "stream":
    streaming.fit(net, bp.CELogSoftmax(), x_path, y_path, epochs=1, batch_size=256, eps=0.05,
                  seed=0)
else:
    with distributed.local_cluster(2) as client:
        distributed.fit(net, bp.CELogSoftmax(), x_path, y_path, client=client, epochs=1,
                        batch_size=256, eps=0.05, seed=0)
        def hwm():
            with open("/proc/self/status") as f:
                return int(next(l.split()[1] for l in f if l.startswith("VmHWM")))
        workers = list(client.run(hwm).values())
seconds = time.perf_counter() - t0
with open("/proc/self/status") as f:
    peak = int(next(l.split()[1] for l in f if l.startswith("VmHWM")))
print(json.dumps({"seconds": seconds, "driver_kb": peak, "workers_kb": workers}))
"""


def memory(gigabytes):
    features = 784
    rows = int(gigabytes * 2**30 / (features * 4))
    with tempfile.TemporaryDirectory(prefix="backprop-dp-") as folder:
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
        out = {"file_bytes": os.path.getsize(x_path), "rows": rows}
        for mode in ("stream", "workers"):
            run = subprocess.run([sys.executable, "-c", _PEAK, x_path, y_path, mode],
                                 capture_output=True, text=True, cwd=ROOT)  # fmt: skip
            if run.returncode != 0:
                raise RuntimeError(run.stderr[-3000:])
            out[mode] = json.loads(run.stdout.strip().splitlines()[-1])
            print(f"memory-mapped file, {mode}: {out[mode]}", flush=True)
        return out


# ------------------------------------------------------------------ the model


def step_model(compute_s, params, world, alpha, beta, itemsize=4):
    """Seconds per step: compute at the per-worker batch, then a ring all-reduce of the
    gradient (2 (W-1) messages of latency ``alpha``, 2 (W-1)/W of its bytes at ``beta``)."""
    G = params * itemsize
    if world == 1:
        return compute_s
    return compute_s + 2 * (world - 1) * alpha + 2 * (world - 1) / world * G / beta


#: added to the measured (loopback) latency of a message between two machines: a switch hop
#: and the network stacks of both ends (an assumption, not measured here)
NETWORK_LATENCY_S = 10e-6


def projections(results, alpha, beta_loopback):
    """Throughput and efficiency at W workers with a per-worker batch of 256 (as DDP scales)."""
    out = []
    for name, entry in results["steps"].items():
        compute = entry["compute_s"]["1"] if "1" in entry["compute_s"] else entry["compute_s"][1]
        b = entry["batch"]
        for link, beta in (("10 Gb/s", 10e9 / 8), ("100 Gb/s", 100e9 / 8)):
            row = {"network": name, "link": link, "per_worker_batch": b}
            for w in (8, 64, 512):
                t = step_model(
                    compute,
                    entry["parameters"],
                    w,
                    alpha + NETWORK_LATENCY_S,
                    min(beta, beta_loopback),
                )
                row[f"W={w}"] = {"samples_per_s": w * b / t, "efficiency": compute / t}
            out.append(row)
    return out


def check_model(results, alpha, beta):
    """Predicted against measured seconds per step at 1-3 workers on this machine."""
    rows = []
    for name, entry in results["steps"].items():
        for key, value in entry.items():
            if not key.startswith("workers_"):
                continue
            w = int(key.split("_")[1])
            compute = (
                entry["compute_s"][str(w)]
                if str(w) in entry["compute_s"]
                else (entry["compute_s"][w])
            )
            predicted = step_model(compute, entry["parameters"], w, alpha, beta)
            rows.append({"network": name, "workers": w, "predicted_s": predicted,
                         "measured_s": value["step_s"]})  # fmt: skip
    return rows


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m benchmarks.distributed",
                                description=__doc__.split("\n")[0])  # fmt: skip
    p.add_argument("--out", default=str(ROOT / "docs" / "distributed"))
    p.add_argument("--quick", action="store_true", help="fewer steps, no large file")
    p.add_argument("--rss-gb", type=float, default=0.6, help="memory-mapped file size (0: skip)")
    p.add_argument("--report", action="store_true", help="recompute the model from results.json")
    args = p.parse_args(argv)
    path = Path(args.out) / "results.json"
    if args.report:
        results = json.loads(path.read_text())
    else:
        results = {"load_average_at_start": os.getloadavg()}
        sizes = [8, 1024, 65536, 1 << 20, 8 << 20]
        results["allreduce"] = {}
        for world in (2, 3):
            timings = allreduce_timings(world, sizes, 5 if args.quick else 20)
            alpha, beta = fit_latency_bandwidth(timings, world)
            results["allreduce"][str(world)] = {
                "seconds": {str(k): v for k, v in timings.items()}, "alpha_s": alpha,
                "beta_Bps": beta,
            }  # fmt: skip
            print(f"gloo all-reduce, {world} processes: latency {alpha * 1e6:.1f} us, bandwidth "
                  f"{beta / 1e9:.2f} GB/s; 7.45 MB: {timings[8 << 20] * 1e3:.1f} ms",
                  flush=True)  # fmt: skip
        steps = 4 if args.quick else 12
        results["steps"] = measure_steps(list(NETWORKS), 256, steps, (1, 2, 3))
        if args.rss_gb > 0 and not args.quick:
            results["memory"] = memory(args.rss_gb)
        results["machine"] = {
            "platform": platform.platform(), "python": platform.python_version(),
            "cpus": os.cpu_count(), "load_average_at_end": os.getloadavg(),
        }  # fmt: skip
    results["steps"] = {n: {**e, "compute_s": {str(k): v for k, v in e["compute_s"].items()}}
                        for n, e in results["steps"].items()}  # fmt: skip
    two = results["allreduce"]["2"]
    alpha, beta = two["alpha_s"], two["beta_Bps"]
    results["projection"] = projections(results, alpha, beta)
    results["model_check"] = check_model(results, alpha, beta)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=1))
    for row in results["model_check"]:
        print(
            f"model check {row['network']} W={row['workers']}: predicted "
            f"{row['predicted_s'] * 1e3:.1f} ms, measured {row['measured_s'] * 1e3:.1f} ms"
        )
    for row in results["projection"]:
        cells = ", ".join(f"{k}: {v['samples_per_s']:.0f}/s ({v['efficiency']:.0%})"
                          for k, v in row.items() if k.startswith("W="))  # fmt: skip
        print(f"projection {row['network']} at {row['link']}: {cells}")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
