"""The networks measured, as users build them, and their native twins.

backprop builds each network with :mod:`backprop.models` (what the CLI and the
experiments train). The twins compute the same function from the same
initial weights and perform the same full training step (forward, cost,
backward, plain-SGD update with learning rate ``LR``) or an inference pass:

- native PyTorch (``torch.nn`` and ``torch.optim.SGD``);
- a hand-written ``jax.jit`` step (``jax.value_and_grad`` of the cost, the
  whole step compiled by XLA);
- a hand-written NumPy step, no modules at all;
- scikit-learn's ``MLPClassifier`` (``partial_fit``), for the MLPs.

Every contender gets a fresh batch at every call: it cycles through
``N_BATCHES`` distinct batches, so no cache keyed by the input object can hit
from one step to the next (as in a training loop, where each batch is a new
array).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

import backprop as bp
from backprop import models

LR = 0.01
N_BATCHES = 4  # distinct batches each contender cycles through


@dataclass(frozen=True)
class Workload:
    name: str
    description: str
    build: Callable  # the backprop network, from backprop.models
    n_features: int  # input (N, n_features)
    n_classes: int | None  # None: the target is the input (autoencoder)
    sklearn: bool  # has an MLPClassifier counterpart
    floor: bool = True  # has a hand-written NumPy step
    batch_sizes: tuple | None = None  # its own batch sizes in a full run (None: the run's)
    quick_batch: int | None = None  # its batch size in a --quick run (None: the run's)
    data: Callable | None = None  # host images (n, n_features) and labels; None: uniform noise


def lenet5():
    """LeNet-5 on 28x28 images, channels last: the first network users train on real images."""
    return bp.Sequentiel(
        bp.Reshape((28, 28, 1)),
        bp.Conv2D(5, 1, 6), bp.ReLU(), bp.MaxPool2D(2),
        bp.Conv2D(5, 6, 16), bp.ReLU(), bp.MaxPool2D(2),
        bp.Flatten(),
        bp.Linear(256, 120), bp.ReLU(), bp.Linear(120, 84), bp.ReLU(), bp.Linear(84, 10),
    )  # fmt: skip


_DIGITS_28 = []


def digits_28x28():
    """scikit-learn's 8x8 digits (1797, bundled: no download) upsampled to 28x28, as floats in
    [0, 1], with their labels.

    No installed package ships 28x28 digits, so each 8x8 image is resized
    bilinearly to 20x20 and centred in a 28x28 frame of zeros (MNIST's
    layout: 20x20 digits in a 28x28 field). The images are smoother than
    MNIST's and the same network learns them as easily; for timing only the
    shape matters.
    """
    if not _DIGITS_28:
        from sklearn.datasets import load_digits

        data = load_digits()
        src = np.linspace(0, 7, 20)
        lo = np.minimum(np.floor(src).astype(int), 6)
        frac = (src - lo).astype(np.float32)
        img = data.images.astype(np.float32) / 16.0  # (n, 8, 8)
        rows = img[:, lo, :] * (1 - frac)[None, :, None] + img[:, lo + 1, :] * frac[None, :, None]
        up = rows[:, :, lo] * (1 - frac) + rows[:, :, lo + 1] * frac  # (n, 20, 20)
        frame = np.zeros((len(up), 28, 28), dtype=np.float32)
        frame[:, 4:24, 4:24] = up
        _DIGITS_28.append((frame.reshape(len(up), 784), data.target.astype(np.int64)))
    return _DIGITS_28[0]


WORKLOADS = {
    "seed_mlp": Workload(
        "seed_mlp",
        "models.mlp(256): Linear(256,100)-TanH-Linear(100,10), CELogSoftmax",
        lambda: models.mlp(256),
        256,
        10,
        True,
    ),
    "digits_mlp": Workload(
        "digits_mlp",
        "models.mlp(64): Linear(64,100)-TanH-Linear(100,10), CELogSoftmax",
        lambda: models.mlp(64),
        64,
        10,
        True,
    ),
    "seed_cnn": Workload(
        "seed_cnn",
        "models.cnn1d(256): Reshape((256,1))-Conv1D(3,1,32)-MaxPool1D(2,2)-Flatten-"
        "Linear(4064,100)-ReLU-Linear(100,10), CELogSoftmax",
        lambda: models.cnn1d(256),
        256,
        10,
        False,
    ),
    "autoencoder": Workload(
        "autoencoder",
        "models.autoencoder((256,100,10)): 256-100-10-100-256, TanH inside, Sigmoid out, BCELoss",
        lambda: models.autoencoder((256, 100, 10)),
        256,
        None,
        False,
    ),
    "lenet5": Workload(
        "lenet5",
        "LeNet-5 on 28x28 digits (scikit-learn's 8x8 digits upsampled): Reshape((28,28,1))-"
        "Conv2D(5,1,6)-ReLU-MaxPool2D(2)-Conv2D(5,6,16)-ReLU-MaxPool2D(2)-Flatten-"
        "Linear(256,120)-ReLU-Linear(120,84)-ReLU-Linear(84,10), CELogSoftmax",
        lenet5,
        784,
        10,
        False,
        floor=False,
        batch_sizes=(50, 256),
        quick_batch=50,
        data=digits_28x28,
    ),
}


def make_batches(w: Workload, batch: int, count: int = N_BATCHES, seed: int = 0):
    """``count`` distinct host batches ``(X, y)``: X uniform in [0, 1), y labels (or X itself);
    rows of the workload's own data when it has some."""
    rng = np.random.default_rng(seed)
    if w.data is not None:
        images, labels = w.data()
        picks = [
            rng.choice(len(images), size=batch, replace=batch > len(images)) for _ in range(count)
        ]
        return [(np.ascontiguousarray(images[i]), labels[i]) for i in picks]
    out = []
    for _ in range(count):
        X = rng.random((batch, w.n_features), dtype=np.float32)
        y = rng.integers(0, w.n_classes, size=batch) if w.n_classes else X
        out.append((X, y))
    return out


def cycler(items):
    """A function returning the next item at each call, round and round."""
    it = itertools.cycle(items)
    return lambda: next(it)


# ----------------------------------------------------------------- backprop


def backprop_network(w: Workload) -> bp.Sequentiel:
    bp.manual_seed(0)
    return w.build()


def backprop_loss(w: Workload):
    return bp.BCELoss() if w.n_classes is None else bp.CELogSoftmax()


def weights_of(net: bp.Sequentiel) -> list[np.ndarray]:
    """Host copies of the parameters in order (weight, bias per layer)."""
    return [np.asarray(bp.to_numpy(p), dtype=np.float32).copy() for p in net.parameters()]


# ------------------------------------------------------------- bare NumPy

L_CONV = 254  # positions after Conv1D(k=3) on 256 inputs
L_POOL = 127  # after MaxPool1D(2, 2)


class NumpyStep:
    """A hand-written NumPy training step, no modules: the floor a NumPy library can reach."""

    def __init__(self, w: Workload, weights: list[np.ndarray]):
        self.w = w
        self.p = [a.copy() for a in weights]

    def infer(self, X):
        return self.chain_forward(X)[-1]

    def chain_forward(self, X):
        p, name = self.p, self.w.name
        if name in ("seed_mlp", "digits_mlp"):
            h = np.tanh(X @ p[0] + p[1])
            return [X, h, h @ p[2] + p[3]]
        if name == "seed_cnn":
            n = X.shape[0]
            win = np.lib.stride_tricks.sliding_window_view(X, 3, axis=1)  # (n, 254, 3)
            cols = win.reshape(n * L_CONV, 3)
            conv = (cols @ p[0].reshape(3, 32) + p[1]).reshape(n, L_CONV, 32)
            pooled = np.maximum(conv[:, 0::2], conv[:, 1::2])  # (n, 127, 32)
            flat = pooled.reshape(n, L_POOL * 32)
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
        acts = self.chain_forward(X)
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
        dpool = (dz @ p[2].T).reshape(n, L_POOL, 32)
        first = conv[:, 0::2] >= conv[:, 1::2]
        dconv = np.empty_like(conv)
        dconv[:, 0::2] = dpool * first
        dconv[:, 1::2] = dpool * ~first
        dmat = dconv.reshape(n * L_CONV, 32)
        gw1, gb1 = (cols.T @ dmat).reshape(3, 1, 32), dmat.sum(0)
        for k, g in enumerate((gw1, gb1, gw2, gb2, gw3, gb3)):
            p[k] -= LR * g
        return loss


# ---------------------------------------------------------------- PyTorch


def torch_network(w: Workload, weights: list[np.ndarray], device):
    """``torch.nn`` twin taking the same ``(N, n_features)`` input (the CNN reshapes it first, as backprop's)."""
    import torch

    nn = torch.nn
    if w.name in ("seed_mlp", "digits_mlp"):
        net = nn.Sequential(nn.Linear(w.n_features, 100), nn.Tanh(), nn.Linear(100, 10))
    elif w.name == "lenet5":
        net = nn.Sequential(
            nn.Unflatten(1, (1, 28, 28)),
            nn.Conv2d(1, 6, 5), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(256, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, 10),
        )  # fmt: skip
    elif w.name == "seed_cnn":
        net = nn.Sequential(
            nn.Unflatten(1, (1, w.n_features)),  # channels first: (N, 1, L)
            nn.Conv1d(1, 32, 3),
            nn.MaxPool1d(2, 2),
            nn.Flatten(),
            nn.Linear(32 * L_POOL, 100),
            nn.ReLU(),
            nn.Linear(100, 10),
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
        for i, (param, value) in enumerate(zip(net.parameters(), weights)):
            v = torch.from_numpy(value)
            if w.name == "seed_cnn" and i == 2:
                # backprop flattens channels last (position, channel), torch channels first
                v = v.reshape(L_POOL, 32, -1).permute(1, 0, 2).reshape(32 * L_POOL, -1)
            if w.name == "lenet5" and i == 4:  # (h, w, c) flattening -> (c, h, w)
                v = v.reshape(4, 4, 16, -1).permute(2, 0, 1, 3).reshape(256, -1)
            if param.ndim == 4:
                v = v.permute(3, 2, 0, 1)  # (kh, kw, c_in, c_out) -> (c_out, c_in, kh, kw)
            elif param.ndim == 2:
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
        X = t.from_numpy(X).to(self.device)
        y = t.from_numpy(y).to(self.device) if self.w.n_classes else X
        return X, y

    def step(self, X, y):
        F = self.torch.nn.functional
        self.opt.zero_grad(set_to_none=True)
        out = self.net(X)
        bce = self.w.n_classes is None
        loss = F.binary_cross_entropy(out, y) * out.shape[1] if bce else F.cross_entropy(out, y)
        loss.backward()
        self.opt.step()
        return loss.detach()

    def infer(self, X):
        with self.torch.no_grad():
            return self.net(X)

    def sync(self, *_):
        if str(self.device).startswith("cuda"):
            self.torch.cuda.synchronize()


# -------------------------------------------------------------------- JAX


def _jax_functions(w: Workload):
    """``(forward, cost)`` of the workload in ``jax.numpy``; ``params`` is the list of backprop's weights."""
    import jax
    import jax.numpy as jnp

    def cross_entropy(z, y):
        return jnp.mean(
            jax.nn.logsumexp(z, axis=1) - jnp.take_along_axis(z, y[:, None], axis=1)[:, 0]
        )

    if w.name in ("seed_mlp", "digits_mlp"):

        def forward(p, x):
            return jnp.tanh(x @ p[0] + p[1]) @ p[2] + p[3]

        return forward, lambda p, x, y: cross_entropy(forward(p, x), y)
    if w.name == "lenet5":

        def conv_relu_pool(h, k, b):
            z = jax.lax.conv_general_dilated(
                h, k, (1, 1), "VALID", dimension_numbers=("NHWC", "HWIO", "NHWC")
            )
            r = jax.nn.relu(z + b)
            n, hh, ww, c = r.shape
            return jnp.max(r.reshape(n, hh // 2, 2, ww // 2, 2, c), axis=(2, 4))

        def forward(p, x):
            h = conv_relu_pool(x.reshape(x.shape[0], 28, 28, 1), p[0], p[1])
            h = conv_relu_pool(h, p[2], p[3]).reshape(x.shape[0], 256)
            h = jax.nn.relu(h @ p[4] + p[5])
            h = jax.nn.relu(h @ p[6] + p[7])
            return h @ p[8] + p[9]

        return forward, lambda p, x, y: cross_entropy(forward(p, x), y)
    if w.name == "seed_cnn":

        def forward(p, x):
            n = x.shape[0]
            conv = jax.lax.conv_general_dilated(
                x[:, :, None], p[0], (1,), "VALID", dimension_numbers=("NWC", "WIO", "NWC")
            )
            pooled = jnp.max((conv + p[1]).reshape(n, L_POOL, 2, 32), axis=2)
            r = jax.nn.relu(pooled.reshape(n, L_POOL * 32) @ p[2] + p[3])
            return r @ p[4] + p[5]

        return forward, lambda p, x, y: cross_entropy(forward(p, x), y)

    def forward(p, x):
        h = x
        for i in range(0, 6, 2):
            h = jnp.tanh(h @ p[i] + p[i + 1])
        return jax.nn.sigmoid(h @ p[6] + p[7])

    def bce(p, x, y):
        o = forward(p, x)
        terms = y * jnp.maximum(jnp.log(o), -100.0) + (1 - y) * jnp.maximum(jnp.log1p(-o), -100.0)
        return -jnp.mean(jnp.sum(terms, axis=1))

    return forward, bce


class JaxStep:
    """A hand-written ``jax.jit`` training step: the cost's ``value_and_grad`` and the SGD update, one XLA program.

    The parameters are donated to the step (updated in place where XLA can).
    """

    def __init__(self, w: Workload, weights):
        import jax
        import jax.numpy as jnp

        self.jax, self.w = jax, w
        forward, cost = _jax_functions(w)

        def step(params, x, y):
            value, grads = jax.value_and_grad(cost)(params, x, y)
            return [p - LR * g for p, g in zip(params, grads)], value

        self._step = jax.jit(step, donate_argnums=0)
        self._infer = jax.jit(forward)
        self.params = [jnp.asarray(a) for a in weights]

    def prepare(self, X, y):
        jnp = self.jax.numpy
        X = jnp.asarray(X)
        return X, (jnp.asarray(y.astype(np.int32)) if self.w.n_classes else X)

    def step(self, X, y):
        self.params, value = self._step(self.params, X, y)
        return value

    def infer(self, X):
        return self._infer(self.params, X)

    def sync(self, *results):
        self.jax.block_until_ready((self.params, results))


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
