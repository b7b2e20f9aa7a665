"""The assignment's networks trained on scikit-learn's 8x8 digits: the library's main job.

Each function builds its network with a fixed seed, trains it with
mini-batch gradient descent and returns a small result record; :func:`main`
runs them all and prints the test accuracies.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from .. import SGD, CELogSoftmax, MSELoss, accuracy, get_backend, load_digits, manual_seed, models

#: the digit the binary classifier tells apart from the nine others
BINARY_DIGIT = 3


@dataclass
class Result:
    name: str
    accuracy: float
    seconds: float
    epochs: int
    losses: list = field(default_factory=list)
    extra: dict = field(default_factory=dict)

    def line(self) -> str:
        if self.extra:
            return f"{self.name}; Adam's final test accuracy {self.accuracy:.4f}"
        return (
            f"{self.name:<44s} test accuracy {self.accuracy:.4f}   "
            f"({self.epochs} epochs, {self.seconds:.1f} s, final cost {self.losses[-1]:.4f})"
        )


def binary_classifier(*, epochs: int = 40, seed: int = 0, verbose: bool = False) -> Result:
    """Part 2: Linear -> TanH -> Linear -> Sigmoid with MSELoss, one digit against the rest."""
    manual_seed(seed)
    X_tr, X_te, y_tr, y_te = load_digits(seed=seed)
    xp = get_backend().xp
    target_tr = xp.astype(xp.expand_dims(y_tr == BINARY_DIGIT, axis=1), get_backend().dtype)
    net = models.binary_classifier()
    t0 = time.perf_counter()
    losses = SGD(
        net,
        MSELoss(),
        X_tr,
        target_tr,
        batch_size=32,
        epochs=epochs,
        eps=0.5,
        seed=seed,
        verbose=verbose,
    )
    seconds = time.perf_counter() - t0
    predicted = net.forward(X_te)[:, 0] > 0.5
    acc = int(xp.sum(xp.astype(predicted == (y_te == BINARY_DIGIT), xp.int32))) / predicted.shape[0]
    return Result(
        f"binary: digit {BINARY_DIGIT} vs rest (tanh/sigmoid, MSE)", acc, seconds, epochs, losses
    )


def _train(net, X, y, **options):
    """:func:`SGD` with the cross-entropy on raw scores, batches of 32: every digit classifier's
    training."""
    return SGD(net, CELogSoftmax(), X, y, batch_size=32, **options)


# the digit classifiers: network in models -> (what the report calls it, learning rate)
_CLASSIFIERS = {
    "mlp": ("multi-class MLP 64-100-10 (CELogSoftmax)", 0.2),
    "cnn1d": ("1-D CNN Conv1D(3,1,32)-MaxPool1D(2,2)", 0.1),
    "cnn2d": ("CNN Conv2D(3,1,16)-MaxPool2D(2)", 0.1),
    "two_branch": ("two-branch CNN (rows + columns)", 0.1),
}


def _classifier(network: str, *, epochs: int, seed: int, verbose: bool) -> Result:
    """Seed the library, build ``models.<network>()``, train it with CELogSoftmax, test it."""
    name, eps = _CLASSIFIERS[network]
    manual_seed(seed)
    net = getattr(models, network)()
    X_tr, X_te, y_tr, y_te = load_digits(seed=seed)
    t0 = time.perf_counter()
    losses = _train(net, X_tr, y_tr, epochs=epochs, eps=eps, seed=seed, verbose=verbose)
    seconds = time.perf_counter() - t0
    return Result(name, accuracy(net.forward(X_te), y_te), seconds, epochs, losses)


def mlp(*, epochs: int = 40, seed: int = 0, verbose: bool = False) -> Result:
    """Part 4: Linear(64, 100) -> TanH -> Linear(100, 10) trained with CELogSoftmax."""
    return _classifier("mlp", epochs=epochs, seed=seed, verbose=verbose)


def cnn(*, epochs: int = 30, seed: int = 0, verbose: bool = False) -> Result:
    """Part 6: Conv1D(3,1,32) -> MaxPool1D(2,2) -> Flatten -> Linear(992,100) -> ReLU ->
    Linear(100,10)."""
    return _classifier("cnn1d", epochs=epochs, seed=seed, verbose=verbose)


def cnn2d(*, epochs: int = 30, seed: int = 0, verbose: bool = False) -> Result:
    """Part 7: "real" 2-D convolutions."""
    return _classifier("cnn2d", epochs=epochs, seed=seed, verbose=verbose)


def two_branch(*, epochs: int = 30, seed: int = 0, verbose: bool = False) -> Result:
    """Part 7: the horizontal + vertical two-branch network."""
    return _classifier("two_branch", epochs=epochs, seed=seed, verbose=verbose)


def adam_vs_sgd(*, epochs: int = 30, seed: int = 0, verbose: bool = False) -> Result:
    """The 1-D CNN trained with Adam (lr 1e-3) next to plain SGD (lr 0.1), same seed and batches.

    Both runs record the test accuracy after every epoch (monitoring only:
    nothing is selected on it). The target is plain SGD's final accuracy; the
    speed-up is the number of epochs SGD needs to first reach it, over the
    number Adam needs.
    """
    X_tr, X_te, y_tr, y_te = load_digits(seed=seed)
    curves = {}
    for name, optimizer, eps in (("sgd", None, 0.1), ("adam", "adam", 1e-3)):
        manual_seed(seed)
        net = models.cnn1d()
        history = _train(
            net,
            X_tr,
            y_tr,
            epochs=epochs,
            eps=eps,
            seed=seed,
            optimizer=optimizer,
            validation=(X_te, y_te),
            metric=accuracy,
            restore_best=False,
            verbose=verbose,
        )
        curves[name] = history
    target = curves["sgd"].metric[-1]
    sgd_epochs = next(i + 1 for i, a in enumerate(curves["sgd"].metric) if a >= target)
    reached = [i + 1 for i, a in enumerate(curves["adam"].metric) if a >= target]
    adam_epochs = reached[0] if reached else None
    speedup = f"{sgd_epochs / adam_epochs:.1f}x" if adam_epochs else "not reached"
    name = (
        f"1-D CNN, Adam vs SGD: SGD's final test accuracy, {target:.4f}, is first reached at "
        f"epoch {sgd_epochs} by SGD and "
        + (f"at epoch {adam_epochs} by Adam" if adam_epochs else f"not in {epochs} by Adam")
        + f" (speed-up {speedup})"
    )
    result = Result(
        name, curves["adam"].metric[-1], sum(curves["adam"].time), epochs, list(curves["adam"])
    )
    result.extra = {
        "sgd_accuracy": curves["sgd"].metric,
        "adam_accuracy": curves["adam"].metric,
        "target": target,
        "sgd_epochs": sgd_epochs,
        "adam_epochs": adam_epochs,
    }
    return result


EXPERIMENTS = {
    "binary": binary_classifier,
    "mlp": mlp,
    "cnn": cnn,
    "cnn2d": cnn2d,
    "two_branch": two_branch,
    "adam_vs_sgd": adam_vs_sgd,
}


def main(names: Iterable[str] | None = None, *, verbose: bool = False) -> list[Result]:
    backend = get_backend()
    print(
        f"backprop main job on {backend.describe()}: the assignment's networks on scikit-learn's "
        "digits (1347 train / 450 test, stratified)"
    )
    results = []
    for name in names or EXPERIMENTS:
        result = EXPERIMENTS[name](verbose=verbose)
        print(result.line(), flush=True)
        results.append(result)
    return results


__all__ = [
    "BINARY_DIGIT",
    "EXPERIMENTS",
    "Result",
    "binary_classifier",
    "cnn",
    "cnn2d",
    "main",
    "mlp",
    "two_branch",
]
