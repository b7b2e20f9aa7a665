"""The networks measured, each as backprop modules, native PyTorch, scikit-learn and bare NumPy.

Every contender builds the same architecture from the same initial weights
and performs the same full training step: forward, cost, backward, update
(plain SGD, learning rate ``LR``), or an inference pass.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

import backprop as bp

LR = 0.01


@dataclass(frozen=True)
class Workload:
    name: str
    description: str
    input_shape: tuple  # per sample
    n_classes: int | None  # None: the target is the input (autoencoder)
    sklearn: bool  # has an MLPClassifier counterpart


WORKLOADS = {
    "seed_mlp": Workload("seed_mlp", "Linear(256,100)-TanH-Linear(100,10), CELogSoftmax", (256,), 10, True),
    "digits_mlp": Workload("digits_mlp", "Linear(64,100)-TanH-Linear(100,10), CELogSoftmax", (64,), 10, True),
    "seed_cnn": Workload(
        "seed_cnn",
        "Conv1D(3,1,32)-MaxPool1D(2,2)-Flatten-Linear(4064,100)-ReLU-Linear(100,10), CELogSoftmax, L=256",
        (256, 1),
        10,
        False,
    ),
    "autoencoder": Workload("autoencoder", "256-100-10-100-256, TanH inside, Sigmoid out, BCELoss", (256,), None, False),
}


def make_data(w: Workload, batch: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    X = rng.random((batch, *w.input_shape)).astype(np.float32)
    y = rng.integers(0, w.n_classes, size=batch) if w.n_classes else X
    return X, y


# ----------------------------------------------------------------- backprop


def backprop_network(w: Workload) -> bp.Sequentiel:
    bp.manual_seed(0)
    if w.name == "seed_mlp":
        return bp.Sequentiel(bp.Linear(256, 100), bp.TanH(), bp.Linear(100, 10))
    if w.name == "digits_mlp":
        return bp.Sequentiel(bp.Linear(64, 100), bp.TanH(), bp.Linear(100, 10))
    if w.name == "seed_cnn":
        return bp.Sequentiel(
            bp.Conv1D(3, 1, 32), bp.MaxPool1D(2, 2), bp.Flatten(), bp.Linear(4064, 100), bp.ReLU(), bp.Linear(100, 10)
        )
    return bp.Sequentiel(
        bp.Linear(256, 100),
        bp.TanH(),
        bp.Linear(100, 10),
        bp.TanH(),
        bp.Linear(10, 100),
        bp.TanH(),
        bp.Linear(100, 256),
        bp.Sigmoid(),
    )


def backprop_loss(w: Workload):
    return bp.BCELoss() if w.n_classes is None else bp.CELogSoftmax()


def weights_of(net: bp.Sequentiel) -> list[np.ndarray]:
    """Host copies of the parameters in order (weight, bias per layer)."""
    return [np.asarray(bp.to_numpy(p), dtype=np.float32).copy() for p in net.parameters()]


# ------------------------------------------------------------- bare NumPy


class NumpyStep:
    """A hand-written NumPy training step, no modules: the floor a NumPy library can reach."""

    def __init__(self, w: Workload, weights: list[np.ndarray]):
        self.w = w
        self.p = [a.copy() for a in weights]

    def infer(self, X):
        return self._forward(X)[-1]

    def _forward(self, X):
        p, name = self.p, self.w.name
        if name in ("seed_mlp", "digits_mlp"):
            h = np.tanh(X @ p[0] + p[1])
            return [X, h, h @ p[2] + p[3]]
        if name == "seed_cnn":
            n = X.shape[0]
            win = np.lib.stride_tricks.sliding_window_view(X[:, :, 0], 3, axis=1)  # (n, 254, 3)
            cols = win.reshape(n * 254, 3)
            conv = (cols @ p[0].reshape(3, 32) + p[1]).reshape(n, 254, 32)
            pooled = np.maximum(conv[:, 0::2], conv[:, 1::2])  # (n, 127, 32)
            flat = pooled.reshape(n, 4064)
            z = flat @ p[2] + p[3]
            r = np.maximum(z, 0)
            return [cols, conv, pooled, flat, z, r, r @ p[4] + p[5]]
        h1 = np.tanh(X @ p[0] + p[1])
        h2 = np.tanh(h1 @ p[2] + p[3])
        h3 = np.tanh(h2 @ p[4] + p[5])
        z = h3 @ p[6] + p[7]
        out = 1 / (1 + np.exp(-z))
        return [X, h1, h2, h3, out]

    def step(self, X, y):
        p, name, n = self.p, self.w.name, X.shape[0]
        acts = self._forward(X)
        if name == "autoencoder":
            X, h1, h2, h3, out = acts
            o = np.clip(out, 1e-7, 1 - 1e-7)
            loss = -np.mean(np.sum(y * np.log(o) + (1 - y) * np.log(1 - o), axis=1))
            dz = (out - y) / n
            grads = []
            for i, (h_in, h_out) in enumerate(((h3, None), (h2, h3), (h1, h2), (X, h1))):
                k = 6 - 2 * i
                if h_out is not None:
                    dz = dz * (1 - h_out * h_out)
                grads.append((k, h_in.T @ dz, dz.sum(0)))
                if k:
                    dz = dz @ p[k].T
            for k, gw, gb in grads:
                p[k] -= LR * gw
                p[k + 1] -= LR * gb
            return loss
        logits = acts[-1]
        m = logits.max(1, keepdims=True)
        e = np.exp(logits - m)
        s = e.sum(1, keepdims=True)
        loss = np.mean(np.log(s[:, 0]) + m[:, 0] - logits[np.arange(n), y])
        d = e / s
        d[np.arange(n), y] -= 1
        d /= n
        if name in ("seed_mlp", "digits_mlp"):
            X, h, _ = acts
            gw2, gb2 = h.T @ d, d.sum(0)
            dh = (d @ p[2].T) * (1 - h * h)
            gw1, gb1 = X.T @ dh, dh.sum(0)
            for k, g in enumerate((gw1, gb1, gw2, gb2)):
                p[k] -= LR * g
            return loss
        cols, conv, pooled, flat, z, r, _ = acts
        gw3, gb3 = r.T @ d, d.sum(0)
        dz = (d @ p[4].T) * (z > 0)
        gw2, gb2 = flat.T @ dz, dz.sum(0)
        dpool = (dz @ p[2].T).reshape(n, 127, 32)
        first = conv[:, 0::2] >= conv[:, 1::2]
        dconv = np.empty_like(conv)
        dconv[:, 0::2] = dpool * first
        dconv[:, 1::2] = dpool * ~first
        dmat = dconv.reshape(n * 254, 32)
        gw1, gb1 = (cols.T @ dmat).reshape(3, 1, 32), dmat.sum(0)
        for k, g in enumerate((gw1, gb1, gw2, gb2, gw3, gb3)):
            p[k] -= LR * g
        return loss


# ---------------------------------------------------------------- PyTorch


def torch_network(w: Workload, weights: list[np.ndarray], device):
    import torch

    nn = torch.nn
    if w.name in ("seed_mlp", "digits_mlp"):
        net = nn.Sequential(nn.Linear(w.input_shape[0], 100), nn.Tanh(), nn.Linear(100, 10))
    elif w.name == "seed_cnn":
        net = nn.Sequential(
            nn.Conv1d(1, 32, 3), nn.MaxPool1d(2, 2), nn.Flatten(), nn.Linear(4064, 100), nn.ReLU(), nn.Linear(100, 10)
        )
    else:
        net = nn.Sequential(
            nn.Linear(256, 100),
            nn.Tanh(),
            nn.Linear(100, 10),
            nn.Tanh(),
            nn.Linear(10, 100),
            nn.Tanh(),
            nn.Linear(100, 256),
            nn.Sigmoid(),
        )
    with torch.no_grad():
        for param, value in zip(net.parameters(), weights):
            v = torch.from_numpy(value)
            if param.ndim == 2:
                v = v.T  # backprop stores (in, out); torch (out, in)
            elif param.ndim == 3:
                v = v.permute(2, 1, 0)  # (k, c_in, c_out) -> (c_out, c_in, k)
            param.copy_(v.contiguous())
    return net.to(device)


class TorchStep:
    def __init__(self, w: Workload, weights, device="cpu"):
        import torch

        self.torch, self.w = torch, w
        self.net = torch_network(w, weights, device)
        self.opt = torch.optim.SGD(self.net.parameters(), lr=LR)
        self.device = device

    def prepare(self, X, y):
        t = self.torch
        X = t.from_numpy(X)
        if self.w.name == "seed_cnn":
            X = X.permute(0, 2, 1).contiguous()  # channels first
        y = t.from_numpy(y) if self.w.n_classes else X
        return X.to(self.device), y.to(self.device)

    def step(self, X, y):
        F = self.torch.nn.functional
        self.opt.zero_grad(set_to_none=True)
        out = self.net(X)
        loss = F.binary_cross_entropy(out, y) * out.shape[1] if self.w.n_classes is None else F.cross_entropy(out, y)
        loss.backward()
        self.opt.step()
        return loss.detach()

    def infer(self, X):
        with self.torch.no_grad():
            return self.net(X)

    def sync(self):
        if str(self.device).startswith("cuda"):
            self.torch.cuda.synchronize()


# ----------------------------------------------------------- scikit-learn


class SklearnStep:
    """MLPClassifier with plain SGD on one batch per call (partial_fit)."""

    def __init__(self, w: Workload, batch: int):
        import warnings

        from sklearn.neural_network import MLPClassifier

        warnings.filterwarnings("ignore", category=UserWarning)
        self.clf = MLPClassifier(
            hidden_layer_sizes=(100,),
            activation="tanh",
            solver="sgd",
            learning_rate_init=LR,
            momentum=0.0,
            batch_size=batch,
            alpha=0.0,
            nesterovs_momentum=False,
        )
        self.classes = np.arange(w.n_classes)

    def step(self, X, y):
        self.clf.partial_fit(X, y, classes=self.classes)

    def infer(self, X):
        return self.clf.predict_proba(X)
