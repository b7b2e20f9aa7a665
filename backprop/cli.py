"""The backprop command (also: python -m backprop).

  backprop                        the main job: the assignment's networks on the bundled digits
  backprop train                  train one network (the assignment's CNN on the digits by default)
  backprop evaluate MODEL.npz     accuracy and confusion matrix of a saved classifier
  backprop experiment autoencoder --out DIR    the autoencoder study
  backprop export MODEL.npz OUT.onnx   a saved network as an ONNX model
  backprop info                   version, backends, devices, BLAS threads

Every error is one line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, NoReturn

from . import __version__
from ._install import install_hint
from .backends import BACKENDS, DTYPES, BackendUnavailableError, use_backend

if TYPE_CHECKING:
    from ._typing import Array, FilePath
    from .containers import Sequentiel
    from .module import Loss

MODELS = ("mlp", "cnn", "cnn2d", "two_branch", "autoencoder")
OPTIMIZERS = ("sgd", "momentum", "nesterov", "adam")


class UsageError(Exception):
    """A bad value on the command line (reported on one line, exit status 2)."""


class _Parser(argparse.ArgumentParser):
    """argparse, with errors on one line instead of the whole usage text."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


# ----------------------------------------------------------------- helpers


def _positive(kind):
    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected a positive {kind.__name__}, got {text!r}"
            ) from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"expected a positive {kind.__name__}, got {text!r}")
        return value

    return parse


def _backend_context(args):
    return use_backend(args.backend, device=args.device, dtype=args.dtype)


def load_data(
    args: argparse.Namespace,
) -> tuple[tuple[Array, Array, Array, Array], tuple[int, int] | None]:
    """``((X_train, X_test, y_train, y_test), image_shape)`` from ``--data`` or the digits."""
    from .data import load_digits, read_data, train_test_split

    if not args.data:
        if args.dataset != "digits":
            raise UsageError(
                f"unknown dataset {args.dataset!r}; "
                "the bundled one is 'digits' (or pass --data FILE)"
            )
        return load_digits(seed=args.seed), (8, 8)
    if _npy_files(args.data):  # what `train --data X.npy y.npy` streams, here in memory
        from . import asarray

        X, labels = _open_npy(args)
        X, y = asarray(X[...]), asarray(labels[...])
    elif len(args.data) == 1 and _starts_with(args.data[0], b"\x93NUMPY"):
        raise UsageError(
            f"--data {args.data[0]}: a .npy file holds the samples only; give their labels "
            f"file too: --data {args.data[0]} LABELS.npy (integer labels, one per row)"
        )
    else:
        X, y = read_data(*args.data)  # the format is read from the content
    if X.shape[0] < 2:
        raise UsageError(
            f"{args.data[0]} holds {X.shape[0]} sample(s); training and testing need at least 2"
        )
    side = int(round(X.shape[1] ** 0.5))
    return train_test_split(X, y, seed=args.seed), (side, side) if side * side == X.shape[
        1
    ] else None


def build_model(
    name: str, n_features: int, n_classes: int, image_shape: tuple[int, int] | None
) -> Sequentiel:
    """The network for ``--model``, sized for the data (the assignment's networks, see
    :mod:`backprop.models`)."""
    from . import models

    if name == "mlp":
        return models.mlp(n_features, n_classes)
    if name == "cnn":
        if n_features < 4:
            raise UsageError(f"the CNN needs at least 4 input values, got {n_features}")
        return models.cnn1d(n_features, n_classes)
    if name in ("cnn2d", "two_branch"):
        if image_shape is None:
            raise UsageError(
                f"{name} needs square images; {n_features} values per sample is not a square"
            )
        if name == "two_branch":
            return models.two_branch(image_shape[0], n_classes)
        return models.cnn2d(image_shape, n_classes)
    return models.autoencoder((n_features, 100, 10))


# ---------------------------------------------------------------- commands


def cmd_main(args: argparse.Namespace) -> int:
    from .experiments.assignment import main

    with _backend_context(args):
        main(verbose=False)
    return 0


def _check_output(path, option: str) -> None:
    """Refuse, before any work, an output path that cannot be written."""
    directory = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise UsageError(f"{option} {path}: it is a directory; give a file name")
    if not os.path.isdir(directory):
        raise UsageError(f"{option} {path}: the directory {directory} does not exist")
    if not os.access(directory, os.W_OK):
        raise UsageError(f"{option} {path}: the directory {directory} is not writable")


def _check_distinct(args) -> None:
    """Refuse two outputs, or an output and an input, that are one file: one would overwrite
    the other (the trained network lost under its plot, the data under the checkpoint)."""
    named = [
        (option, path)
        for option, path in (
            ("--save", args.save), ("--plot", args.plot), ("--checkpoint", args.checkpoint),
            *(("--data", p) for p in (getattr(args, "data", None) or ())),
        )
        if path
    ]  # fmt: skip
    for i, (option, path) in enumerate(named):
        for other, other_path in named[:i]:
            if _same_file(path, other_path) and not (option == other == "--data"):
                raise UsageError(
                    f"{other} {other_path} and {option} {path} name the same file; "
                    "give each its own"
                )


def _same_file(a, b) -> bool:
    if os.path.realpath(a) == os.path.realpath(b):
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _check_plot(path) -> None:
    _check_output(path, "--plot")
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise UsageError(f"--plot needs matplotlib: {install_hint('examples')}") from None
    suffix = os.path.splitext(path)[1].lstrip(".").lower()
    formats = Figure().canvas.get_supported_filetypes()
    if suffix and suffix not in formats:
        raise UsageError(
            f"--plot {path}: unknown image format {suffix!r}; "
            f"use one of {', '.join(sorted(formats))}"
        )


def _check_labels(xp, y, what: str) -> int:
    """The number of classes of a classifier's training labels; refuses a single class."""
    present = xp.unique_values(y)
    if present.shape[0] < 2:
        only = f" (label {int(present[0])})" if present.shape[0] else ""
        raise UsageError(f"the {what} holds a single class{only}: a classifier needs at least two")
    return int(xp.max(y)) + 1


def _finite(xp, X, what: str) -> None:
    if not bool(xp.all(xp.isfinite(X))):
        raise UsageError(f"the {what} holds NaN or infinite values; clean the data first")


def _starts_with(path, magic: bytes) -> bool:
    if not os.path.isfile(path):
        return False  # a FIFO or a device is never opened here: the reader refuses it
    try:
        with open(path, "rb") as f:
            return f.read(len(magic)) == magic
    except OSError:
        return False


def _is_csv(path) -> bool:
    """Whether the first line of a text file (gzip or not) holds a comma."""
    import gzip

    if not os.path.isfile(path):
        return False  # the reader refuses what is not a regular file
    try:
        opener = gzip.open if _starts_with(path, b"\x1f\x8b") else open
        with opener(path, "rb") as f:
            for line in f:
                if line.strip():
                    return b"," in line
    except (OSError, EOFError):
        return False  # the reader reports the problem
    return False


def default_model(data: Sequence[str] | None) -> str:
    """``--model``'s default: the CNN for images (the bundled digits, a USPS text file, MNIST
    IDX files), the MLP for tabular data (a CSV file, .npy samples)."""
    if not data:
        return "cnn"
    if _npy_files(data) or (len(data) == 1 and _is_csv(data[0])):
        return "mlp"
    return "cnn"


def cmd_train(args: argparse.Namespace) -> int:
    from . import SGD, BCELoss, CELogSoftmax, accuracy, manual_seed

    args.seed = 0 if args.seed is None else args.seed
    if args.model is None:
        args.model = default_model(args.data)
    # every output is checked before the (long) training, not after it
    if args.save:
        _check_output(args.save, "--save")
    if args.plot:
        _check_plot(args.plot)
    if args.resume and not args.checkpoint:
        raise UsageError("--resume needs --checkpoint PATH (the run to continue)")
    if args.checkpoint:
        _check_output(args.checkpoint, "--checkpoint")
    _check_distinct(args)
    verbose = not args.quiet and (args.verbose or not sys.stdout.isatty())
    progress = not args.quiet and not verbose and sys.stderr.isatty()
    clustered = args.workers is not None or args.scheduler is not None
    if args.workers is not None and args.scheduler is not None:
        raise UsageError("--workers starts a local cluster, --scheduler joins one: give one")
    if args.data and _npy_files(args.data):
        with _backend_context(args) as backend:
            return _train_npy(args, backend, verbose, progress)
    with _backend_context(args) as backend:
        (X_tr, X_te, y_tr, y_te), image_shape = load_data(args)
        xp = backend.xp
        source = args.data[0] if args.data else args.dataset
        _finite(xp, X_tr, f"training data ({source})")
        _finite(xp, X_te, f"test data ({source})")
        autoencoder = args.model == "autoencoder"
        n_classes = (
            int(xp.max(y_tr)) + 1
            if autoencoder
            else _check_labels(xp, y_tr, f"training data ({source})")
        )
        manual_seed(args.seed)
        net = build_model(args.model, X_tr.shape[1], n_classes, image_shape)
        loss = BCELoss() if autoencoder else CELogSoftmax()
        Y_tr, Y_te = (X_tr, X_te) if autoencoder else (y_tr, y_te)
        lr = _learning_rate(args)
        if not args.quiet:
            where = _where(args, backend)
            print(
                f"training {args.model} on {source} "
                f"({X_tr.shape[0]} train / {X_te.shape[0]} test, {X_tr.shape[1]} values each) "
                f"with {args.optimizer} (lr {lr}) on {where}",
                flush=True,
            )
        t0 = time.perf_counter()
        options = _fit_options(args, lr, (X_te, Y_te), autoencoder, progress, verbose)
        if clustered:
            with _cluster(args) as client:
                from . import distributed

                history = distributed.fit(net, loss, X_tr, Y_tr, client=client, **options)
        else:
            history = SGD(net, loss, X_tr, Y_tr, **options)
        seconds = time.perf_counter() - t0
        net.eval()
        if autoencoder:
            summary = f"test BCE {history.val_loss[-1]:.4f}"
        else:
            summary = f"test accuracy {accuracy(net.forward(X_te), y_te):.4f}"
        metadata = {
            "task": "autoencoder" if autoencoder else "classification",
            "data": [os.path.abspath(p) for p in args.data] if args.data else args.dataset,
            "split_seed": args.seed,
            "test_size": 0.25,
            "input_shape": list(X_tr.shape[1:]),
            "classes": None if autoencoder else n_classes,
            "model": args.model,
        }
        _report(args, net, loss, history, seconds, summary, f"{args.model} on {source}", metadata)
    return 0


def _learning_rate(args) -> float:
    """``--lr``, or the default of ``--optimizer`` (1e-2 for Adam, 0.1 otherwise)."""
    return args.lr if args.lr is not None else (1e-2 if args.optimizer == "adam" else 0.1)


def _fit_options(args, lr, validation, autoencoder, progress, verbose) -> dict:
    """The arguments of SGD (or of its streaming and data-parallel forms) the options ask for."""
    from . import accuracy

    return {
        "batch_size": args.batch_size,
        "epochs": args.epochs,
        "eps": lr,
        "seed": args.seed,
        "optimizer": args.optimizer,
        "validation": validation,
        "metric": None if autoencoder else accuracy,
        "restore_best": False,
        "progress": progress,
        "verbose": verbose,
        "checkpoint": args.checkpoint,
        "resume": args.resume,
    }


def _count(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _report(args, net, loss, history, seconds, summary, title, metadata=None) -> None:
    """The result line, then the network (``--save``) and the curves (``--plot``) written."""
    from . import save

    resumed = history.resumed_after
    print(
        f"{args.model}: {summary}  (final training cost {history[-1]:.4f}, "
        f"{_count(len(history), 'epoch')}"
        + (f", {resumed} before the resume" if resumed else "")
        + f", {seconds:.1f} s)"
    )
    if args.save:
        save(net, args.save, metadata=metadata)
        if not args.quiet:
            print(f"saved the network to {args.save}")
    if args.plot:
        plot_history(history, args.plot, title, loss=loss)
        if not args.quiet:
            print(f"saved the training curves to {args.plot}")


def _where(args, backend) -> str:
    if args.workers is not None:
        return f"{backend.describe()}, a local Dask cluster of {args.workers} worker processes"
    if args.scheduler is not None:
        return f"{backend.describe()}, the Dask cluster at {args.scheduler}"
    return backend.describe()


def _cluster(args):
    """A Dask client: a new local cluster (--workers) or the one at --scheduler."""
    from . import distributed

    if args.workers is not None:
        return distributed.local_cluster(args.workers)
    import distributed as dask_distributed  # installed: backprop.distributed imported it

    try:
        return dask_distributed.Client(args.scheduler, timeout=30)
    except (OSError, TimeoutError) as exc:
        message = f"--scheduler {args.scheduler}: cannot reach the scheduler ({exc})"
        raise UsageError(message) from None


def _npy_files(paths) -> bool:
    """Whether ``--data`` names two ``.npy`` files (read from their first bytes)."""
    if len(paths) != 2:
        return False
    from .io.readers import open_regular

    for path in paths:
        try:  # a FIFO or a device is refused here, never waited on
            with open_regular(path) as f:
                if f.read(6) != b"\x93NUMPY":
                    return False
        except (OSError, ValueError):
            return False
    return True


def _open_npy(args):
    """The samples and labels of ``--data X.npy y.npy``, memory-mapped and checked."""
    from .io.ondisk import open_npy

    X, labels = open_npy(args.data[0]), open_npy(args.data[1])
    if X.ndim != 2 or X.dtype.kind != "f":
        raise UsageError(
            f"{args.data[0]}: expected floating samples of shape (n, values), got {X.dtype} of "
            f"shape {X.shape}; save them as float32, scaled as the network should see them"
        )
    if labels.ndim != 1 or labels.shape[0] != X.shape[0] or labels.dtype.kind not in "iu":
        raise UsageError(
            f"{args.data[1]}: expected {X.shape[0]} integer labels, one per row of {args.data[0]}, "
            f"got {labels.dtype} of shape {labels.shape}"
        )
    return X, labels


def _train_npy(args, backend, verbose, progress) -> int:
    """``train --data X.npy y.npy``: memory-mapped files, read chunk by chunk (streaming)."""
    from . import BCELoss, CELogSoftmax, accuracy, asarray, manual_seed, streaming
    from .backends import namespace_of
    from .io.readers import stratified_split

    X, labels = _open_npy(args)
    if X.shape[0] < 2:
        message = f"{args.data[0]} holds {X.shape[0]} sample(s); training and testing need 2"
        raise UsageError(message)
    xp = backend.xp
    y = asarray(labels[...], backend=backend)  # one label per row: small next to X
    autoencoder = args.model == "autoencoder"
    what = f"labels ({args.data[1]})"
    n_classes = int(xp.max(y)) + 1 if autoencoder else _check_labels(xp, y, what)
    train_rows, test_rows = (
        namespace_of(r).sort(r) for r in stratified_split(labels[...], 0.25, args.seed)
    )
    side = int(round(X.shape[1] ** 0.5))
    manual_seed(args.seed)
    image_shape = (side, side) if side * side == X.shape[1] else None
    net = build_model(args.model, X.shape[1], n_classes, image_shape)
    loss = BCELoss() if autoencoder else CELogSoftmax()
    target = X if autoencoder else labels
    train = (streaming.RowChunks(X, rows=train_rows), streaming.RowChunks(target, rows=train_rows))
    test = (streaming.RowChunks(X, rows=test_rows), streaming.RowChunks(target, rows=test_rows))
    lr = _learning_rate(args)
    if not args.quiet:
        print(
            f"training {args.model} on {args.data[0]} memory-mapped ({train[0].n} train / "
            f"{test[0].n} test, {X.shape[1]} values each, {_count(len(train[0]), 'chunk')}) "
            f"with {args.optimizer} (lr {lr}) on {backend.describe()}",
            flush=True,
        )
    t0 = time.perf_counter()
    options = _fit_options(args, lr, test, autoencoder, progress, verbose)
    if args.workers is not None or args.scheduler is not None:
        # each worker reads its own rows of the files; the driver reads the test rows
        with _cluster(args) as client:
            from . import distributed

            history = distributed.fit(net, loss, *train, client=client, **options)
    else:
        history = streaming.fit(net, loss, *train, **options)
    seconds = time.perf_counter() - t0
    if autoencoder:
        summary = f"test BCE {history.val_loss[-1]:.4f}"
    else:
        summary = f"test accuracy {streaming.evaluate(net, loss, *test, metric=accuracy)[1]:.4f}"
    metadata = {
        "task": "autoencoder" if autoencoder else "classification",
        "data": [os.path.abspath(p) for p in args.data],
        "split_seed": args.seed,
        "test_size": 0.25,
        "input_shape": list(X.shape[1:]),
        "classes": None if autoencoder else n_classes,
        "model": args.model,
    }
    title = f"{args.model} on {args.data[0]}"
    _report(args, net, loss, history, seconds, summary, title, metadata)
    return 0


def plot_history(
    history: Sequence[float],
    path: FilePath,
    title: str | None,
    loss: Loss | type | str | None = None,
) -> None:
    """Save the curves of ``history`` (what SGD returned) to ``path``; ``loss`` names the cost
    axis."""
    from .plotting import save, training_curves

    save(training_curves(history, title=title, loss=loss), path)


def cmd_evaluate(args: argparse.Namespace) -> int:
    from . import accuracy, load, one_hot, to_numpy
    from .data import predict_classes

    with _backend_context(args) as backend:
        net = load(args.path).eval()
        meta = net.metadata
        if meta.get("task") == "autoencoder":
            raise UsageError(
                f"{args.path} is an autoencoder (recorded when it was saved); evaluate scores "
                "classifiers"
            )
        recorded = meta.get("split_seed")
        if args.seed is None:
            args.seed = recorded if isinstance(recorded, int) else 0
        elif recorded is not None and args.seed != recorded:
            print(
                f"warning: {args.path} was trained on the split of seed {recorded}; the split of "
                f"--seed {args.seed} puts rows it was trained on among the test rows, so this "
                "score is optimistic",
                file=sys.stderr,
            )
        (_, X_te, _, y_te), _ = load_data(args)
        shape = meta.get("input_shape")
        if shape is not None and list(X_te.shape[1:]) != list(shape):
            raise UsageError(
                f"{args.path} was trained on samples of shape {tuple(shape)}; this data has "
                f"{tuple(X_te.shape[1:])}"
            )
        xp = backend.xp
        try:
            scores = net.forward(X_te)
        except (TypeError, ValueError) as exc:
            raise UsageError(
                f"{args.path} does not take this data ({tuple(X_te.shape)}): {exc}"
            ) from None
        n_classes = int(xp.max(y_te)) + 1
        if tuple(scores.shape) == tuple(X_te.shape):
            raise UsageError(
                f"{args.path} reconstructs its input (output of shape {tuple(scores.shape)}, "
                "the data's): "
                "an autoencoder, not a classifier; evaluate scores classifiers"
            )
        if scores.ndim != 2 or scores.shape[1] < n_classes:
            raise UsageError(
                f"{args.path} does not look like a classifier for {n_classes} classes "
                f"(output shape {tuple(scores.shape)})"
            )
        c = scores.shape[1]
        pred = predict_classes(scores)
        # rows: true class, columns: predicted class; counted in the backend's float dtype
        # (exact up to 2**24 samples a cell in float32; JAX may have no float64)
        matrix = to_numpy(xp.matmul(xp.matrix_transpose(one_hot(y_te, c)), one_hot(pred, c)))
        print(f"{args.path}: test accuracy {accuracy(scores, y_te):.4f} on {X_te.shape[0]} samples")
        width = max(4, len(str(int(matrix.max()))) + 1)
        print("confusion matrix (rows: true class, columns: predicted)")
        print(" " * 4 + "".join(f"{k:>{width}}" for k in range(c)))
        for r in range(c):
            print(f"{r:>3} " + "".join(f"{int(v):>{width}}" for v in matrix[r]))
    return 0


def cmd_experiment(args: argparse.Namespace) -> int:
    from .experiments import autoencoder

    out = os.path.abspath(args.out)
    if os.path.exists(out) and not os.path.isdir(out):
        raise UsageError(
            f"--out {args.out}: it is a file; the study needs a directory (new or existing)"
        )
    existing = out
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        raise UsageError(
            f"--out {args.out}: {existing} is a file, so the directory cannot be created"
        )
    if not os.access(existing, os.W_OK):
        raise UsageError(f"--out {args.out}: {existing} is not writable")
    with _backend_context(args):
        argv = ["--out", str(args.out), "--seed", str(0 if args.seed is None else args.seed)] + (
            ["--quick"] if args.quick else []
        )
        if args.quiet or not sys.stderr.isatty():
            argv.append("--no-progress")
        autoencoder.main(argv)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from . import load
    from .onnx import OPSET, export_onnx

    shape = None
    if args.input_shape:
        try:
            shape = tuple(int(s) for s in args.input_shape.split(","))
        except ValueError:
            message = f"--input-shape takes sizes separated by commas, got {args.input_shape!r}"
            raise UsageError(message) from None
    _check_output(args.output, "export: output")
    if _same_file(args.model, args.output):
        raise UsageError(f"{args.model} is both the model and the --output: give another output")
    net = load(args.model, backend="numpy").eval()  # the file is written from host copies anyway
    model = export_onnx(net, args.output, shape)

    def shape_of(value) -> str:
        dims = value.type.tensor_type.shape.dim
        return "(" + ", ".join(str(d.dim_param or d.dim_value) for d in dims) + ")"

    graph = model.graph
    print(
        f"exported {args.model} to {args.output}: input {shape_of(graph.input[0])} -> output "
        f"{shape_of(graph.output[0])}, {len(graph.node)} nodes, ONNX opset {OPSET}"
    )
    return 0


#: the most values one sample may have for ``info`` to run the network on it (256 MiB in float32)
_MAX_SAMPLE_VALUES = 1 << 26


def _input_shape(recorded) -> tuple | None:
    """A file's recorded ``input_shape``, when it is a shape ``info`` can run (a file's metadata
    is not trusted: sizes are checked before anything is allocated)."""
    if not isinstance(recorded, list) or not 1 <= len(recorded) <= 8:
        return None
    if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in recorded):
        return None
    total = 1
    for v in recorded:
        total *= v
    return tuple(recorded) if total <= _MAX_SAMPLE_VALUES else None


def _printable(value) -> str:
    """``value`` as text with control characters (terminal escape sequences from a file)
    shown escaped, never sent to the terminal."""
    text = str(value)
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def cmd_info(args: argparse.Namespace) -> int:
    from .backends import available_backends, backend_class, device_label

    if getattr(args, "model", None):
        from . import load
        from .onnx import infer_input_shape  # the first layer that fixes it (onnx not needed)

        net = load(args.model)
        meta = net.metadata
        shape = _input_shape(meta.get("input_shape")) or infer_input_shape(net)
        if shape is None:
            print(repr(net))
            print(
                f"{net.n_parameters():,d} parameters (no recorded input shape: layer shapes "
                "unknown)"
            )
        else:
            print(net.summary(tuple(shape)))
        for key, value in meta.items():
            print(f"{_printable(key)}: {_printable(value)}")
        return 0

    print(f"backprop {__version__}")
    print(f"python {sys.version.split()[0]}")
    for name, reason in available_backends().items():
        if reason is None:
            devices = [device_label(d) for d in backend_class(name).devices()]
            print(
                f"  {name:17s} usable   devices: {', '.join(devices)}   dtypes: {', '.join(DTYPES)}"
            )
        else:
            print(f"  {name:17s} unusable ({reason})")
    from .backends.threads import thread_report

    for line in thread_report():
        print(f"  {line}")
    return 0


# ------------------------------------------------------------------ parser


def _common(p, *, data=True, sub=True):
    # in sub-commands the shared options default to "not given", so that
    # `backprop --backend torch train` and `backprop train --backend torch` agree
    def default(value):
        return {"default": argparse.SUPPRESS} if sub else {"default": value}

    p.add_argument(
        "--backend",
        choices=BACKENDS,
        help="array library (default: $BACKPROP_BACKEND, else numpy)",
        **default(None),
    )
    p.add_argument(
        "--device",
        help="device of the backend, e.g. cpu, cuda, cuda:1, device1 for array_api_strict "
        "(default: $BACKPROP_DEVICE, else the library's default)",
        **default(None),
    )
    p.add_argument(
        "--dtype",
        choices=DTYPES,
        help="floating dtype (default: $BACKPROP_DTYPE, else float32)",
        **default(None),
    )
    p.add_argument(
        "--seed",
        type=int,
        help="random seed of the weights, the shuffles and the train/test split (default: 0; "
        "for evaluate, the split the model was trained with)",
        **default(None),
    )
    p.add_argument(
        "--quiet",
        action="store_true",
        help="print only the final summary (default: off)",
        **default(False),
    )
    p.add_argument(
        "--verbose",
        action="store_true",
        help="one line per epoch: cost, validation metric, time (default: on when the output "
        "is not a terminal, e.g. a log file or CI)",
        **default(False),
    )
    if data:
        p.add_argument(
            "--dataset",
            default="digits",
            help="the bundled data set: digits, scikit-learn's 8x8 (default: digits)",
        )
        p.add_argument(
            "--data",
            nargs="+",
            metavar="FILE",
            help="your own data instead of --dataset, the format read from the content: one text "
            "file with a sample per line, its label first then its values, separated by spaces "
            "(the USPS layout) or commas (CSV, an optional first line of column names); or MNIST "
            "IDX images and labels files (gzip or not); or samples X.npy (n, values) and integer "
            "labels y.npy (n,) (default: none)",
        )


def parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="backprop", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--version", action="version", version=f"backprop {__version__}")
    _common(p, data=False, sub=False)
    sub = p.add_subparsers(
        dest="command",
        title="commands",
        metavar="COMMAND",
        help="what to do (default: the main job)",
    )

    t = sub.add_parser(
        "train",
        help="train a network (the assignment's CNN on the digits by default)",
        description="Train a network and print its test score; save it, plot its curves. "
        "--data X.npy y.npy (samples (n, values) and integer labels (n,), values used as they "
        "are) trains from memory-mapped files read chunk by chunk, whatever their size.",
    )
    t.add_argument(
        "--model",
        choices=MODELS,
        default=None,
        help="the network to train (default: cnn for images: the digits, USPS text, MNIST IDX; "
        "mlp for tabular data: CSV, .npy)",
    )
    t.add_argument(
        "--epochs",
        type=_positive(int),
        default=30,
        help="passes over the training data (default: 30)",
    )
    t.add_argument(
        "--batch-size", type=_positive(int), default=32, help="rows per gradient step (default: 32)"
    )
    t.add_argument(
        "--lr",
        type=_positive(float),
        default=None,
        help="learning rate (default: 0.1, 0.01 for adam)",
    )
    t.add_argument(
        "--optimizer", choices=OPTIMIZERS, default="sgd", help="update rule (default: sgd)"
    )
    t.add_argument(
        "--save",
        metavar="PATH",
        help="save the trained network to PATH (.npz) (default: not saved)",
    )
    t.add_argument(
        "--plot",
        metavar="PATH",
        help="save the training curves to PATH (.png, .pdf, .svg) (default: no plot)",
    )
    t.add_argument(
        "--checkpoint",
        metavar="PATH",
        help="write the whole run (model, optimizer, epoch, random state) to PATH after every "
        "epoch, atomically (default: no checkpoint)",
    )
    t.add_argument(
        "--resume",
        action="store_true",
        help="continue the run saved at --checkpoint if it exists; it ends as if never "
        "interrupted (default: start afresh)",
    )
    t.add_argument(
        "--workers",
        type=_positive(int),
        metavar="N",
        help="train data-parallel on a local Dask cluster of N worker processes "
        "(needs the distributed extra: pip install 'backprop-nn[distributed]') "
        "(default: one process, no cluster)",
    )
    t.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="train data-parallel on the Dask cluster whose scheduler is at ADDRESS, "
        "e.g. tcp://10.0.0.1:8786 (default: none)",
    )
    _common(t)

    e = sub.add_parser(
        "evaluate",
        help="accuracy and confusion matrix of a saved classifier",
        description="Score a saved classifier on the test split of the data.",
    )
    e.add_argument("path", help="a file written by backprop train --save (or backprop.save)")
    _common(e)

    x = sub.add_parser(
        "experiment", help="run a study", description="Run a study and write its report."
    )
    x.add_argument("name", choices=["autoencoder"], help="the study: autoencoder")
    x.add_argument(
        "--out", required=True, help="directory for the report, results and figures (required)"
    )
    x.add_argument(
        "--quick", action="store_true", help="a reduced run, in seconds (default: the full study)"
    )
    _common(x, data=False)

    o = sub.add_parser(
        "export",
        help="a saved network as an ONNX model (needs the onnx extra: "
        "pip install 'backprop-nn[onnx]')",
    )
    o.add_argument("model", help="a file written by backprop train --save (or backprop.save)")
    o.add_argument("output", help="the .onnx file to write")
    o.add_argument(
        "--input-shape",
        help="shape of one sample without the batch axis, e.g. 64,1 "
        "(default: taken from the first layer; needed when the network starts with a convolution)",
    )

    i = sub.add_parser(
        "info",
        help="version, backends, devices and threads; or a saved model's layers",
        description="What this machine offers, or with MODEL what a saved network is.",
    )
    i.add_argument(
        "model",
        nargs="?",
        help="a file written by backprop train --save: its layers, output shapes, parameters "
        "and what it was trained on (default: describe the machine)",
    )
    return p


COMMANDS = {
    None: cmd_main,
    "train": cmd_train,
    "evaluate": cmd_evaluate,
    "experiment": cmd_experiment,
    "info": cmd_info,
    "export": cmd_export,
}


def main(argv: Sequence[str] | None = None) -> int:
    p = parser()
    args = p.parse_args(argv)
    if getattr(args, "data", None) and len(args.data) > 2:
        p.error(
            "--data takes one text file (USPS layout or CSV), or two files: MNIST IDX images "
            "and labels, or X.npy and y.npy"
        )
    try:
        return COMMANDS[args.command](args)
    except UsageError as exc:
        return _fail(exc)
    except (
        ValueError,
        TypeError,
        OSError,
        BackendUnavailableError,
        ImportError,
        FloatingPointError,
    ) as exc:
        # a bad file, bad data, a diverged training, a missing library: one line, not a traceback
        return _fail(exc)
    except KeyboardInterrupt:
        print("backprop: interrupted", file=sys.stderr)
        return 130


def _fail(exc) -> int:
    message = " ".join(str(exc).split()) or type(exc).__name__
    print(f"backprop: error: {message}", file=sys.stderr)
    return 2
