"""The seed's networks trained on scikit-learn's 8x8 digits: the library's main job.

Each function builds its network with a fixed seed, trains it with
mini-batch gradient descent and returns a small result record; :func:`main`
runs them all and prints the test accuracies.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from .. import (
    SGD,
    CELogSoftmax,
    Linear,
    MSELoss,
    Sequentiel,
    Sigmoid,
    TanH,
    accuracy,
    get_backend,
    load_digits,
    manual_seed,
)

#: the digit the binary classifier tells apart from the nine others
BINARY_DIGIT = 3


@dataclass
class Result:
    name: str
    accuracy: float
    seconds: float
    epochs: int
    losses: list = field(default_factory=list)

    def line(self) -> str:
        return (
            f"{self.name:<44s} test accuracy {self.accuracy:.4f}   "
            f"({self.epochs} epochs, {self.seconds:.1f} s, final cost {self.losses[-1]:.4f})"
        )


def binary_classifier(*, epochs: int = 40, seed: int = 0, verbose: bool = False) -> Result:
    """Seed part 2: Linear -> TanH -> Linear -> Sigmoid with MSELoss, one digit against the rest."""
    manual_seed(seed)
    X_tr, X_te, y_tr, y_te = load_digits(seed=seed)
    xp = get_backend().xp
    target_tr = xp.astype(xp.expand_dims(y_tr == BINARY_DIGIT, axis=1), get_backend().dtype)
    net = Sequentiel(Linear(64, 32), TanH(), Linear(32, 1), Sigmoid())
    t0 = time.perf_counter()
    losses = SGD(net, MSELoss(), X_tr, target_tr, batch_size=32, epochs=epochs, eps=0.5, seed=seed, verbose=verbose)
    seconds = time.perf_counter() - t0
    predicted = net.forward(X_te)[:, 0] > 0.5
    acc = float(xp.mean(xp.astype(predicted == (y_te == BINARY_DIGIT), xp.float64)))
    return Result(f"binary: digit {BINARY_DIGIT} vs rest (tanh/sigmoid, MSE)", acc, seconds, epochs, losses)


def mlp(*, epochs: int = 40, seed: int = 0, verbose: bool = False) -> Result:
    """Seed part 4: Linear(64, 100) -> TanH -> Linear(100, 10) trained with CELogSoftmax."""
    manual_seed(seed)
    X_tr, X_te, y_tr, y_te = load_digits(seed=seed)
    net = Sequentiel(Linear(64, 100), TanH(), Linear(100, 10))
    t0 = time.perf_counter()
    losses = SGD(net, CELogSoftmax(), X_tr, y_tr, batch_size=32, epochs=epochs, eps=0.2, seed=seed, verbose=verbose)
    seconds = time.perf_counter() - t0
    return Result("multi-class MLP 64-100-10 (CELogSoftmax)", accuracy(net.forward(X_te), y_te), seconds, epochs, losses)


EXPERIMENTS = {"binary": binary_classifier, "mlp": mlp}


def main(names=None, *, verbose: bool = False) -> list[Result]:
    backend = get_backend()
    print(
        f"backprop main job on {backend.describe()}: the seed's networks on scikit-learn's digits "
        "(1347 train / 450 test, stratified)"
    )
    results = []
    for name in names or EXPERIMENTS:
        result = EXPERIMENTS[name](verbose=verbose)
        print(result.line(), flush=True)
        results.append(result)
    return results


__all__ = ["BINARY_DIGIT", "EXPERIMENTS", "Result", "binary_classifier", "main", "mlp"]
