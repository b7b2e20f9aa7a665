"""Late in training: the time of an epoch late in a long Adam run against one early in it.

A run that slows down as it goes (subnormal numbers filling an optimizer's
buffers, caches growing, ...) shows it here and nowhere else: the step
benchmarks time a few hundred steps from a fresh start.

The network is a ReLU MLP, 64-128-64-10, trained with Adam (learning rate
0.01, batches of 32) on the bundled 8x8 digits (1347 training images) for
150 epochs; ReLU units that die and gradients that shrink as the fit
converges are what drive Adam's second moments towards zero. Every contender
trains the same network from the same weights on the same shuffles, one
epoch each in turn (so that the machine's drift hits them alike); reported
are the median epoch times of epochs 6-20 and 121-150, their ratio, and the
share of subnormal float32 numbers in Adam's buffers (both moments) at the end.
"""

from __future__ import annotations

import statistics
import time

import numpy as np

import backprop as bp
from backprop.backends import BackendUnavailableError

NAME = "adam_late"
DESCRIPTION = (
    "ReLU MLP 64-128-64-10 on the bundled 8x8 digits, Adam (lr 0.01), batch 32: "
    "median epoch time of epochs 121-150 over epochs 6-20"
)
LR = 0.01
BATCH = 32
FULL = {"epochs": 150, "early": (5, 20), "late": (120, 150)}
QUICK = {"epochs": 8, "early": (1, 3), "late": (5, 8)}
TINY = np.finfo(np.float32).smallest_normal


def _network():
    return bp.Sequentiel(
        bp.Linear(64, 128), bp.ReLU(), bp.Linear(128, 64), bp.ReLU(), bp.Linear(64, 10)
    )


def _data():
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    X, _, y, _ = train_test_split(
        (d.data / 16.0).astype(np.float32), d.target, test_size=0.25, random_state=0,
        stratify=d.target,
    )  # fmt: skip
    return X, y.astype(np.int64)


def _subnormal_share(arrays) -> float:
    total = sub = 0
    for a in arrays:
        a = np.asarray(a)
        total += a.size
        sub += int(np.count_nonzero((a != 0) & (np.abs(a) < TINY)))
    return sub / max(total, 1)


class _Backprop:
    def __init__(self, backend, weights, compile=False):
        self.backend = bp.backends.make_backend(backend, None, "float32")
        with bp.use_backend(self.backend):
            self.net = _network()
            for (m, key), w in zip(self.net.parameter_slots(), weights):
                m.set_parameter(key, bp.asarray(w))
            self.optim = bp.Optim(
                self.net, bp.CELogSoftmax(), optimizer=bp.Adam(LR), compile=compile
            )

    def epoch(self, batches):
        b = self.backend
        with bp.use_backend(b), bp.Loss.targets_checked():
            cost = None
            for X, y in batches:
                cost = self.optim.step(bp.asarray(X), bp.asarray(y))
            b.synchronize(cost, *self.net.parameters())

    def buffers(self):
        state = self.optim.optimizer._state.values()
        return [bp.to_numpy(a) for _, buffers in state for a in buffers.values()]


class _Torch:
    def __init__(self, weights):
        import torch

        self.torch = torch
        nn = torch.nn
        self.net = nn.Sequential(
            nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 64), nn.ReLU(), nn.Linear(64, 10)
        )
        with torch.no_grad():
            for p, w in zip(self.net.parameters(), weights):
                p.copy_(torch.from_numpy(w.T.copy() if w.ndim == 2 else w))
        self.opt = torch.optim.Adam(self.net.parameters(), lr=LR)

    def epoch(self, batches):
        t = self.torch
        for X, y in batches:
            self.opt.zero_grad(set_to_none=True)
            loss = t.nn.functional.cross_entropy(self.net(t.from_numpy(X)), t.from_numpy(y))
            loss.backward()
            self.opt.step()

    def buffers(self):
        return [s[k].numpy() for s in self.opt.state.values() for k in ("exp_avg", "exp_avg_sq")]


def contenders(backends, peers, skipped):
    bp.manual_seed(0)
    with bp.use_backend("numpy", dtype="float32"):
        weights = [bp.to_numpy(p).copy() for p in _network().parameters()]
    out = {}
    for name in backends:
        if name not in ("numpy", "torch", "jax"):
            continue
        label = "backprop[jax, compiled]" if name == "jax" else f"backprop[{name}]"
        try:
            out[label] = _Backprop(name, weights, compile=name == "jax")
        except (BackendUnavailableError, ImportError, ValueError) as exc:
            skipped.append(f"{NAME} {label}: {exc}")
    if "torch" in peers:
        try:
            out["torch (native)"] = _Torch(weights)
        except ImportError:
            skipped.append(f"{NAME} torch (native): PyTorch is not installed")
    return out


def run(backends, peers, quick, skipped, gap=0.0):
    """``{description, epochs, early, late, contenders: {name: {...}}}``; one epoch of each
    contender in turn."""
    plan = QUICK if quick else FULL
    X, y = _data()
    cs = contenders(backends, peers, skipped)
    rng = np.random.default_rng(0)
    times = {name: [] for name in cs}
    for _ in range(plan["epochs"]):
        order = rng.permutation(len(X))
        batches = [
            (np.ascontiguousarray(X[order[i : i + BATCH]]), y[order[i : i + BATCH]])
            for i in range(0, len(X), BATCH)
        ]
        for name, c in cs.items():
            if gap:
                time.sleep(gap)
            t0 = time.perf_counter()
            c.epoch(batches)
            times[name].append(time.perf_counter() - t0)
    (e0, e1), (l0, l1) = plan["early"], plan["late"]
    result = {
        "description": DESCRIPTION,
        "epochs": plan["epochs"],
        "early": [e0, e1],
        "late": [l0, l1],
        "contenders": {},
    }
    for name, c in cs.items():
        early = statistics.median(times[name][e0:e1])
        late = statistics.median(times[name][l0:l1])
        result["contenders"][name] = {
            "epoch_s": times[name],
            "early_s": early,
            "late_s": late,
            "ratio": late / early,
            "subnormal_share": _subnormal_share(c.buffers()),
        }
    return result


def table(result) -> str:
    (e0, e1), (l0, l1) = result["early"], result["late"]
    lines = [
        f"\n{NAME}: {result['description']} ({result['epochs']} epochs)",
        f"| contender | epochs {e0 + 1}-{e1}: ms per epoch | epochs {l0 + 1}-{l1}: ms per epoch | "
        "late / early | subnormal share of Adam's buffers at the end |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name, e in result["contenders"].items():
        lines.append(
            f"| {name} | {e['early_s'] * 1e3:.1f} | {e['late_s'] * 1e3:.1f} | "
            f"{e['ratio']:.2f} | {e['subnormal_share']:.1%} |"
        )
    return "\n".join(lines)


def goals(result) -> list[str]:
    lines = []
    for name, e in result["contenders"].items():
        if name.startswith("backprop"):
            met = "met" if e["ratio"] <= 1.1 else "NOT MET"
            lines.append(
                f"{NAME}: {name} late / early epoch time = {e['ratio']:.2f} (goal <= 1.1) {met}"
            )
    return lines
