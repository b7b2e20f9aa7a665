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


class external_cluster:
    """A scheduler and ``workers`` worker processes started apart from this process (``dask
    scheduler``, ``dask worker``), so this process's CPU time is the driver's alone (a
    ``LocalCluster`` runs its scheduler inside the client's process)."""

    def __init__(self, workers):
        self.workers = workers

    def __enter__(self):
        import distributed as dd

        self.folder = tempfile.TemporaryDirectory(prefix="backprop-sched-")
        path = os.path.join(self.folder.name, "scheduler.json")
        env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
        quiet = {"env": env, "stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
        scheduler = [sys.executable, "-m", "distributed.cli.dask_scheduler"]
        worker = [sys.executable, "-m", "distributed.cli.dask_worker"]
        self.procs = [
            subprocess.Popen(
                [*scheduler, "--scheduler-file", path, "--port", "0", "--no-dashboard"], **quiet
            )
        ]
        while not os.path.exists(path):
            time.sleep(0.1)
        time.sleep(0.5)
        options = ["--nworkers", str(self.workers), "--nthreads", "1", "--no-dashboard"]
        self.procs.append(subprocess.Popen([*worker, "--scheduler-file", path, *options], **quiet))
        self.client = dd.Client(scheduler_file=path)
        self.client.wait_for_workers(self.workers, timeout=120)
        return self.client

    def __exit__(self, *exc):
        self.client.close()
        for p in reversed(self.procs):
            p.terminate()
        for p in self.procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
        self.folder.cleanup()


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
            with external_cluster(w) as client:
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
    h = streaming.fit(net, bp.CELogSoftmax(), x_path, y_path, epochs=1, batch_size=256,
                      eps=0.05, seed=0)
else:
    with distributed.local_cluster(2) as client:
        h = distributed.fit(net, bp.CELogSoftmax(), x_path, y_path, client=client, epochs=1,
                            batch_size=256, eps=0.05, seed=0)
        def hwm():
            with open("/proc/self/status") as f:
                return int(next(l.split()[1] for l in f if l.startswith("VmHWM")))
        workers = list(client.run(hwm).values())
seconds = time.perf_counter() - t0
with open("/proc/self/status") as f:
    peak = int(next(l.split()[1] for l in f if l.startswith("VmHWM")))
print(json.dumps({"seconds": seconds, "epoch_s": h.time[0], "cost": h[0], "driver_kb": peak,
                  "workers_kb": workers}))
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
    """Throughput and efficiency at W workers with a per-worker batch of 256 (as DDP scales):
    the gloo bandwidth measured here caps the link's (``capped``), or the link's is reached."""
    out = []
    for name, entry in results["steps"].items():
        compute = entry["compute_s"]["1"]
        b = entry["batch"]
        for link, beta in (("10 Gb/s", 10e9 / 8), ("100 Gb/s", 100e9 / 8)):
            for capped in (True, False):
                bandwidth = min(beta, beta_loopback) if capped else beta
                row = {"network": name, "link": link, "per_worker_batch": b, "capped": capped,
                       "bandwidth_Bps": bandwidth}  # fmt: skip
                for w in (8, 64, 512):
                    t = step_model(
                        compute, entry["parameters"], w, alpha + NETWORK_LATENCY_S, bandwidth
                    )
                    row[f"W={w}"] = {"samples_per_s": w * b / t, "efficiency": compute / t}
                out.append(row)
    return out


def _ms(seconds):
    return f"{seconds * 1e3:.1f} ms" if seconds >= 1e-3 else f"{seconds * 1e6:.0f} µs"


def markdown(results):
    """The measured part of docs/distributed.md (between its ``measured`` markers)."""
    m = results["machine"]
    steps = results["steps"]
    busy = max(results["load_average_at_start"][0], m["load_average_at_end"][0]) > m["cpus"]
    lines = [
        f"Measured by `python -m benchmarks.distributed` on {m['cpus']} CPU cores"
        + (" **shared with other jobs**" if busy else "")
        + " (load average "
        f"{results['load_average_at_start'][0]:.1f} at the start, "
        f"{m['load_average_at_end'][0]:.1f} at the end"
        + (": more runnable processes than cores" if busy else "")
        + "), Python "
        + m["python"]
        + ", NumPy, float32, one BLAS thread per process. "
        "Wall times on such a machine count other jobs' time slices; CPU times do not. The "
        "numbers are in [`distributed/results.json`](distributed/results.json); rerun the "
        "script on a quiet machine for wall times to compare with other machines.",
        "",
        "### The collective",
        "",
        "Median seconds of a gloo all-reduce (float32 buffers) between processes of this "
        "machine, and the latency and bandwidth of the ring model fitted to them "
        "(`t = 2 (W-1) α + 2 (W-1)/W · bytes / β`; α from the 8-byte message, β from the 8 MiB "
        "one):",
        "",
        "| processes | 8 B | 1 KiB | 64 KiB | 1 MiB | 8 MiB | α | β |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for world, entry in results["allreduce"].items():
        timings = sorted(entry["seconds"].items(), key=lambda kv: int(kv[0]))
        cells = " | ".join(_ms(v) for _, v in timings)
        lines.append(
            f"| {world} | {cells} | {entry['alpha_s'] * 1e6:.1f} µs | "
            f"{entry['beta_Bps'] / 1e9:.2f} GB/s |"
        )
    lines += [
        "",
        "### Steps on 1, 2 and 3 workers",
        "",
        "The global batch of 256 rows split over the workers, "
        f"{next(iter(steps.values()))['steps_per_epoch']} steps per epoch, the best epoch after "
        "a warm-up. The workers are separate processes (`dask scheduler`, `dask worker "
        "--nthreads 1`), so the driver's CPU time is the client's alone. *Replica CPU* is the "
        "CPU time of the busiest replica's thread per step (its forward, backward, buffers and "
        "update; gloo's own threads are not counted).",
        "",
        "| network | | one process | 1 worker | 2 workers | 3 workers |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for name, e in steps.items():
        one = e["one_process"]
        w = [e[f"workers_{k}"] for k in (1, 2, 3)]
        label = f"{name} ({e['parameters']:,} parameters)"
        lines.append(f"| {label} | step (wall) | {_ms(one['step_s'])} | "
                     + " | ".join(_ms(x["step_s"]) for x in w) + " |")  # fmt: skip
        lines.append(f"| | driver CPU per step | {_ms(one['cpu_s'])} (all the work) | "
                     + " | ".join(_ms(x["driver_cpu_s"]) for x in w) + " |")  # fmt: skip
        lines.append("| | replica CPU per step | | "
                     + " | ".join(_ms(x["replica_cpu_s"]) for x in w) + " |")  # fmt: skip
    big = steps["mlp_1.86M"]
    one, three = big["workers_1"]["driver_cpu_s"], big["workers_3"]["driver_cpu_s"]
    per_epoch = (three - one) * big["steps_per_epoch"] / 2
    lines += [
        "",
        f"The driver's CPU time per step on the 1.86M network is {_ms(one)} with one worker and "
        f"{_ms(three)} with 3 ({three / one:.2f}×). No gradient and no parameter passes "
        "through it during an epoch; what grows with the workers is per epoch, not per step: "
        f"about {_ms(per_epoch)} of driver CPU per replica per epoch (its call and its result), "
        f"spread here over {big['steps_per_epoch']} steps, over hundreds in a real epoch. In a "
        "`LocalCluster` the scheduler runs inside the driver's process, and its own work (the "
        "workers' heartbeats) then counts in the driver's CPU time as well.",
    ]
    mem = results.get("memory")
    if mem:
        s, w = mem["stream"], mem["workers"]
        lines += [
            "",
            "### A memory-mapped file on 2 workers",
            "",
            f"A {mem['file_bytes'] / 2**30:.2f} GiB `.npy` ({mem['rows']:,} rows of 784 float32 "
            "values, integer labels in a second file), one epoch of the CLI's MLP in batches "
            "of 256, peak resident memory (VmHWM) of each process:",
            "",
            "| | epoch | driver peak | each worker's peak |",
            "| --- | --- | --- | --- |",
            f"| one process, `streaming.fit` | {s['epoch_s']:.1f} s | {s['driver_kb'] / 1024:.0f}"
            " MiB | |",
            f"| 2 workers, `distributed.fit` on the path | {w['epoch_s']:.1f} s | "
            f"{w['driver_kb'] / 1024:.0f} MiB (scheduler included) | "
            + ", ".join(f"{k / 1024:.0f} MiB" for k in w["workers_kb"])
            + " |",
            "",
            f"The 2-worker epoch takes {w['epoch_s'] / s['epoch_s']:.1f}× the one-process epoch "
            "on 2 shared cores (two workers, their gloo threads, the scheduler and the driver "
            "share them). A worker's peak includes PyTorch, imported for the collective.",
        ]
    lines += [
        "",
        "### A model, checked on 1-3 workers",
        "",
        "With W workers each computing a per-worker batch b, a step takes the compute of b rows "
        "(here the CPU time of one process on b rows) plus a ring all-reduce of the gradient "
        "(G bytes):",
        "",
        "    t(W) = compute(b) + 2 (W-1) α + 2 (W-1)/W · G / β,    throughput = W b / t(W),"
        "    efficiency = compute(b) / t(W)",
        "",
        "Against the measured steps (the global batch of 256 split: b = 256 / W; α and β of 2 "
        "processes):",
        "",
        "| network | W | predicted | measured (wall) | replica CPU |",
        "| --- | --- | --- | --- | --- |",
    ]
    for row in results["model_check"]:
        e = steps[row["network"]][f"workers_{row['workers']}"]
        lines.append(f"| {row['network']} | {row['workers']} | {_ms(row['predicted_s'])} | "
                     f"{_ms(row['measured_s'])} | {_ms(e['replica_cpu_s'])} |")  # fmt: skip
    lines += [
        "",
        "The measured wall times are above the prediction because the machine's two "
        "cores run the workers, their gloo threads, the scheduler and the driver together (one "
        "process alone takes "
        f"{_ms(big['one_process']['step_s'])} of wall time for {_ms(big['one_process']['cpu_s'])}"
        " of CPU on the same step), and 3 workers cannot each have a core of 2. The replicas' "
        "CPU per step is above the one-process compute by the copies into and out of the flat "
        "buffer and the selection of the batch's rows; the model leaves them out, so the "
        "projections below are optimistic by that much.",
        "",
        "### Projection to 8, 64 and 512 workers",
        "",
        "Assumptions: one worker per machine (or per core with its own link), per-worker batch "
        "256 (the batch grows with W, as DDP scales), compute per step = the one-process CPU "
        "time measured here on 256 rows; gradients in float32 in one buffer, all-reduced after "
        "the backward pass (no overlap); a ring all-reduce whose per-message latency is the "
        f"measured loopback α plus {NETWORK_LATENCY_S * 1e6:.0f} µs for the network, and whose "
        "bandwidth is the link's, capped by the gloo bandwidth measured here on loopback "
        "(the reduction and copies cost CPU too), or, in the uncapped rows, the link's own.",
        "",
        "| network | link | β used | W = 8 | W = 64 | W = 512 |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for row in results["projection"]:
        cells = " | ".join(
            f"{v['samples_per_s'] / 1e3:.0f}k/s ({v['efficiency']:.0%})"
            for k, v in row.items() if k.startswith("W=")
        )  # fmt: skip
        link = 10e9 / 8 if row["link"] == "10 Gb/s" else 100e9 / 8
        capped = row["bandwidth_Bps"] < link
        used = f"{row['bandwidth_Bps'] / 1e9:.2f} GB/s" + (" (capped)" if capped else "")
        lines.append(f"| {row['network']} | {row['link']} | {used} | {cells} |")
    eff = next(r for r in results["projection"] if r["network"] == "mlp_1.86M"
               and r["link"] == "10 Gb/s" and r["capped"])["W=64"]["efficiency"]  # fmt: skip
    lines += [
        "",
        f"At 64 workers and 10 Gb/s the 1.86M network is projected at {eff:.0%} efficiency "
        "with the bandwidth capped by the loopback measurement: the all-reduce of its 7.45 MB "
        "gradient takes longer than the computation of 256 rows. Overlapping the all-reduce "
        "with the backward pass (buckets sent as each layer's gradients are ready), or larger "
        "per-worker batches, would raise it; neither is done here. "
        "The latency term 2 (W-1) α dominates from a few hundred workers: at 512 workers a "
        "hierarchical or tree all-reduce (NCCL's, or gloo's halving-doubling) and larger "
        "per-worker batches are what keep the efficiency up.",
    ]
    return "\n".join(lines) + "\n"


def write_docs(results, path=ROOT / "docs" / "distributed.md"):
    text = Path(path).read_text()
    begin, end = "<!-- measured:begin -->\n", "<!-- measured:end -->"
    a, b = text.index(begin) + len(begin), text.index(end)
    Path(path).write_text(text[:a] + markdown(results) + text[b:])


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
    p.add_argument(
        "--rss-only", type=float, default=0, metavar="GB",
        help="only the peak memory of `backprop train --data` streaming a file of GB GiB",
    )  # fmt: skip
    args = p.parse_args(argv)
    path = Path(args.out) / "results.json"
    if args.rss_only:
        r = peak_rss_of_training(args.rss_only)
        print(f"peak RSS {r['peak_rss_bytes'] / 2**20:.0f} MiB on {r['file_bytes'] / 2**30:.2f} "
              f"GiB; {r['output']}")  # fmt: skip
        return
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
        steps = 4 if args.quick else 24
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
    if not args.quick and args.out == str(ROOT / "docs" / "distributed"):
        write_docs(results)
        print("rewrote the measured section of docs/distributed.md")
    for row in results["model_check"]:
        print(
            f"model check {row['network']} W={row['workers']}: predicted "
            f"{row['predicted_s'] * 1e3:.1f} ms, measured {row['measured_s'] * 1e3:.1f} ms"
        )
    for row in results["projection"]:
        if not row["capped"]:
            continue
        cells = ", ".join(f"{k}: {v['samples_per_s']:.0f}/s ({v['efficiency']:.0%})"
                          for k, v in row.items() if k.startswith("W="))  # fmt: skip
        print(f"projection {row['network']} at {row['link']}: {cells}")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
