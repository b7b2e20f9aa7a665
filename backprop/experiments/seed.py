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
    Concat,
    Conv1D,
    Conv2D,
    Flatten,
    Linear,
    MaxPool1D,
    MaxPool2D,
    MSELoss,
    ReLU,
    Reshape,
    Sequentiel,
    Sigmoid,
    TanH,
    Transpose,
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
    extra: dict = field(default_factory=dict)

    def line(self) -> str:
        if self.extra:
            return f"{self.name}; Adam's final test accuracy {self.accuracy:.4f}"
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


def _classifier(name: str, net, *, epochs: int, eps: float, seed: int, verbose: bool) -> Result:
    X_tr, X_te, y_tr, y_te = load_digits(seed=seed)
    t0 = time.perf_counter()
    losses = SGD(net, CELogSoftmax(), X_tr, y_tr, batch_size=32, epochs=epochs, eps=eps, seed=seed, verbose=verbose)
    seconds = time.perf_counter() - t0
    return Result(name, accuracy(net.forward(X_te), y_te), seconds, epochs, losses)


def mlp_network(n_features: int = 64, n_classes: int = 10) -> Sequentiel:
    """Seed part 4: Linear(n_features, 100) -> TanH -> Linear(100, n_classes)."""
    return Sequentiel(Linear(n_features, 100), TanH(), Linear(100, n_classes))


def mlp(*, epochs: int = 40, seed: int = 0, verbose: bool = False) -> Result:
    """Seed part 4: Linear(64, 100) -> TanH -> Linear(100, 10) trained with CELogSoftmax."""
    manual_seed(seed)
    return _classifier(
        "multi-class MLP 64-100-10 (CELogSoftmax)", mlp_network(), epochs=epochs, eps=0.2, seed=seed, verbose=verbose
    )


def seed_cnn_network(n_features: int = 64, n_classes: int = 10) -> Sequentiel:
    """Seed part 6 on images read as sequences of ``n_features`` pixels with one channel.

    ``Conv1D(3,1,32) -> MaxPool1D(2,2) -> Flatten -> Linear(32 * (n_features - 2) // 2, 100) -> ReLU ->
    Linear(100, n_classes)``: 992 inputs to the first Linear on the 8x8 digits, 4064 on 16x16 images.
    """
    return Sequentiel(
        Reshape((n_features, 1)),
        Conv1D(3, 1, 32),
        MaxPool1D(2, 2),
        Flatten(),
        Linear((n_features - 2) // 2 * 32, 100),
        ReLU(),
        Linear(100, n_classes),
    )


def cnn(*, epochs: int = 30, seed: int = 0, verbose: bool = False) -> Result:
    """Seed part 6: Conv1D(3,1,32) -> MaxPool1D(2,2) -> Flatten -> Linear(992,100) -> ReLU -> Linear(100,10)."""
    manual_seed(seed)
    return _classifier(
        "seed CNN Conv1D(3,1,32)-MaxPool1D(2,2)", seed_cnn_network(), epochs=epochs, eps=0.1, seed=seed, verbose=verbose
    )


def cnn2d_network(image_shape: tuple = (8, 8), n_classes: int = 10) -> Sequentiel:
    """A 2-D convolution on ``(height, width)`` images (channels last):
    ``Conv2D(3,1,16) -> ReLU -> MaxPool2D(2) -> Flatten -> Linear -> ReLU -> Linear``."""
    h, w = image_shape
    return Sequentiel(
        Reshape((h, w, 1)),
        Conv2D(3, 1, 16),
        ReLU(),
        MaxPool2D(2),
        Flatten(),
        Linear((h - 2) // 2 * ((w - 2) // 2) * 16, 100),
        ReLU(),
        Linear(100, n_classes),
    )


def cnn2d(*, epochs: int = 30, seed: int = 0, verbose: bool = False) -> Result:
    """Seed part 7: "real" 2-D convolutions."""
    manual_seed(seed)
    return _classifier("CNN Conv2D(3,1,16)-MaxPool2D(2)", cnn2d_network(), epochs=epochs, eps=0.1, seed=seed, verbose=verbose)


def two_branch_network(channels: int = 16) -> Sequentiel:
    """Seed part 7: horizontal and vertical patterns, two Conv1D branches concatenated.

    The first branch reads each image row by row, the second column by column
    (the image transposed), so their 1-D kernels see horizontal and vertical
    strokes respectively.
    """

    def branch(*head):
        return Sequentiel(*head, Reshape((64, 1)), Conv1D(3, 1, channels), ReLU(), MaxPool1D(2), Flatten())

    return Sequentiel(
        Concat(branch(), branch(Reshape((8, 8)), Transpose((1, 0))), axis=1),
        Linear(2 * 31 * channels, 100),
        ReLU(),
        Linear(100, 10),
    )


def two_branch(*, epochs: int = 30, seed: int = 0, verbose: bool = False) -> Result:
    """Seed part 7: the horizontal + vertical two-branch network."""
    manual_seed(seed)
    return _classifier(
        "two-branch CNN (rows + columns)", two_branch_network(), epochs=epochs, eps=0.1, seed=seed, verbose=verbose
    )


def adam_vs_sgd(*, epochs: int = 30, seed: int = 0, verbose: bool = False) -> Result:
    """The seed CNN trained with Adam (lr 1e-3) next to plain SGD (lr 0.1), same seed and batches.

    Both runs record the test accuracy after every epoch (monitoring only:
    nothing is selected on it). The target is plain SGD's final accuracy; the
    speed-up is the number of epochs SGD needs to first reach it, over the
    number Adam needs.
    """
    X_tr, X_te, y_tr, y_te = load_digits(seed=seed)
    curves = {}
    for name, optimizer, eps in (("sgd", None, 0.1), ("adam", "adam", 1e-3)):
        manual_seed(seed)
        net = seed_cnn_network()
        history = SGD(
            net,
            CELogSoftmax(),
            X_tr,
            y_tr,
            batch_size=32,
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
        f"seed CNN, Adam vs SGD: SGD reaches {target:.4f} in {sgd_epochs} epochs, "
        f"Adam in {adam_epochs if adam_epochs else '>' + str(epochs)} (speed-up {speedup})"
    )
    result = Result(name, curves["adam"].metric[-1], sum(curves["adam"].time), epochs, list(curves["adam"]))
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


__all__ = ["BINARY_DIGIT", "EXPERIMENTS", "Result", "binary_classifier", "cnn", "cnn2d", "main", "mlp", "two_branch"]
