"""ONNX export, run by ONNX Runtime: every layer, the assignment's networks, one file for all
backends."""

import pathlib
import re

import numpy as np
import pytest

from backprop._install import install_hint

pytest.importorskip("onnx", reason=f"onnx is not installed ({install_hint('onnx')})")
ort = pytest.importorskip(
    "onnxruntime", reason=f"onnxruntime is not installed ({install_hint('onnx')})"
)

import onnx  # noqa: E402

import backprop as bp  # noqa: E402
from backprop import (  # noqa: E402
    AvgPool1D,
    AvgPool2D,
    Concat,
    Conv1D,
    Conv2D,
    Dropout,
    Flatten,
    Linear,
    LogSoftmax,
    MaxPool1D,
    MaxPool2D,
    ReLU,
    Reshape,
    Sequentiel,
    Sigmoid,
    Softmax,
    TanH,
    TiedLinear,
    Transpose,
)
from backprop.models import cnn1d as seed_cnn_network  # noqa: E402
from backprop.models import cnn2d as cnn2d_network  # noqa: E402
from backprop.models import mlp as mlp_network  # noqa: E402
from backprop.models import two_branch as two_branch_network  # noqa: E402
from backprop.onnx import export_onnx, infer_input_shape  # noqa: E402

BATCHES = (1, 7, 32)
ATOL = 1e-5


@pytest.fixture(autouse=True)
def numpy_float32():
    with bp.use_backend("numpy", dtype="float32"):
        bp.manual_seed(0)
        yield


def run_onnx(path, X):
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(["output"], {"input": X})[0]


def roundtrip(net, sample_shape, path, batches=BATCHES, scale=1.0) -> float:
    """Export ``net``, check the file, compare ONNX Runtime with ``net.forward``; the max error."""
    net.eval()
    export_onnx(net, path, sample_shape)
    model = onnx.load(str(path))
    onnx.checker.check_model(model, full_check=True)
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "N"  # dynamic batch
    worst = 0.0
    for n in batches:
        X = (np.random.default_rng(n).normal(size=(n, *sample_shape)) * scale).astype(np.float32)
        got = run_onnx(path, X)
        expected = bp.to_numpy(net.forward(bp.asarray(X)))
        assert got.shape == expected.shape
        worst = max(worst, float(np.max(np.abs(got - expected))))
    assert worst <= ATOL, worst
    return worst


def _tied(bias=True):
    lin = Linear(5, 3)
    return Sequentiel(lin, TanH(), TiedLinear(lin, bias=bias))


def _trained_norm(net, sample):
    """``net`` after one training-mode forward: running statistics other than zeros and ones."""
    net.forward(bp.asarray(np.random.default_rng(3).normal(size=(6, *sample)) * 2 + 1))
    return net


# (id, factory, sample shape): every layer, alone or with what it needs around it
LAYERS = [
    ("Linear", lambda: Linear(5, 3), (5,)),
    ("Linear-nobias", lambda: Linear(5, 3, bias=False), (5,)),
    ("TiedLinear", _tied, (5,)),
    ("TiedLinear-nobias", lambda: _tied(bias=False), (5,)),
    ("TiedLinear-alone", lambda: TiedLinear(Linear(3, 5)), (5,)),
    ("TanH", TanH, (4, 3)),
    ("Sigmoid", Sigmoid, (4, 3)),
    ("ReLU", ReLU, (4, 3)),
    ("Softmax", Softmax, (6,)),
    ("Softmax-3d", Softmax, (3, 6)),
    ("LogSoftmax", LogSoftmax, (6,)),
    ("LogSoftmax-3d", LogSoftmax, (3, 6)),
    ("Dropout", lambda: Dropout(0.5), (4, 3)),
    ("Conv1D", lambda: Conv1D(3, 2, 4), (10, 2)),
    ("Conv1D-stride2-nobias", lambda: Conv1D(3, 2, 4, stride=2, bias=False), (10, 2)),
    ("Conv1D-stride>k", lambda: Conv1D(2, 1, 3, stride=3), (11, 1)),
    ("Conv2D", lambda: Conv2D(3, 2, 4), (7, 6, 2)),
    ("Conv2D-rect-stride", lambda: Conv2D((2, 3), 2, 3, stride=(2, 1)), (7, 6, 2)),
    ("MaxPool1D", lambda: MaxPool1D(2), (9, 3)),
    ("MaxPool1D-overlap", lambda: MaxPool1D(3, stride=2), (10, 3)),
    ("MaxPool1D-stride>k", lambda: MaxPool1D(2, stride=3), (10, 3)),
    ("AvgPool1D", lambda: AvgPool1D(2), (9, 3)),
    ("AvgPool1D-overlap", lambda: AvgPool1D(3, stride=2), (10, 3)),
    ("MaxPool2D", lambda: MaxPool2D(2), (7, 5, 2)),
    ("MaxPool2D-rect-stride", lambda: MaxPool2D((2, 3), stride=(1, 2)), (7, 8, 2)),
    ("AvgPool2D", lambda: AvgPool2D(2), (7, 5, 2)),
    ("AvgPool2D-overlap", lambda: AvgPool2D(3, stride=2), (8, 9, 2)),
    ("Conv1D-same-even", lambda: Conv1D(4, 2, 3, padding="same"), (9, 2)),
    ("Conv2D-padded", lambda: Conv2D((3, 2), 2, 3, stride=2, padding=(1, 2)), (7, 6, 2)),
    ("MaxPool1D-padded", lambda: MaxPool1D(3, stride=2, padding=1), (10, 3)),
    ("AvgPool2D-padded", lambda: AvgPool2D(3, stride=2, padding=1), (8, 9, 2)),
    ("ConvTranspose1D", lambda: bp.ConvTranspose1D(3, 2, 4, 2, 1, 1), (5, 2)),
    ("ConvTranspose2D", lambda: bp.ConvTranspose2D((3, 2), 2, 3, (2, 1), (1, 0)), (4, 5, 2)),
    ("Upsample", lambda: bp.Upsample(2), (5, 3)),
    ("Upsample-2d", lambda: bp.Upsample((2, 3)), (3, 4, 2)),
    ("Flatten", Flatten, (3, 4, 2)),
    ("Reshape", lambda: Reshape((4, 6)), (24,)),
    ("Reshape-3d", lambda: Reshape((2, 12)), (4, 6)),
    ("Transpose", lambda: Transpose((1, 0)), (3, 5)),
    ("Transpose-3d", lambda: Transpose((2, 0, 1)), (2, 3, 4)),
    ("Concat", lambda: Concat(Linear(5, 3), Sequentiel(Linear(5, 2), ReLU()), axis=1), (5,)),
    ("Identity", bp.Identity, (4, 3)),
    ("Identity-after-conv", lambda: Sequentiel(Conv1D(3, 2, 4), bp.Identity()), (10, 2)),
    ("Sum", lambda: bp.Sum(Linear(5, 3), Sequentiel(Linear(5, 3), ReLU())), (5,)),
    ("Sum-of-convs", lambda: bp.Sum(Conv1D(3, 2, 4), Conv1D(3, 2, 4)), (10, 2)),
    ("Residual", lambda: bp.Residual(Sequentiel(Linear(5, 5), TanH())), (5,)),
    ("Residual-conv", lambda: bp.Residual(Sequentiel(Conv1D(1, 3, 3), ReLU())), (8, 3)),
    ("Select", lambda: bp.Select(1, -1), (4, 3)),
    ("Select-last-axis", lambda: bp.Select(-1, 1), (4, 3)),
    ("Concat-neg-axis", lambda: Concat(Conv1D(3, 2, 4), Conv1D(3, 2, 1), axis=-1), (10, 2)),
    ("Concat-length-axis", lambda: Concat(Conv1D(3, 4, 4), MaxPool1D(3, 1), axis=1), (10, 4)),
    (
        "Concat-of-convs-then-linear",
        lambda: Sequentiel(
            Concat(Conv1D(3, 2, 4), Conv1D(3, 2, 2), axis=2), Flatten(), Linear(48, 3)
        ),
        (10, 2),
    ),
    (
        "Sequentiel-nested",
        lambda: Sequentiel(Sequentiel(Linear(5, 4), TanH()), Sequentiel(Sequentiel(Linear(4, 2)))),
        (5,),
    ),
    ("Sequentiel-empty", Sequentiel, (3,)),
    # layout changes between channels-last (the library) and channels-first (ONNX's convolutions)
    ("conv-relu-softmax", lambda: Sequentiel(Conv1D(3, 2, 4), ReLU(), Softmax()), (10, 2)),
    (
        "conv-transpose-conv",
        lambda: Sequentiel(Conv1D(3, 2, 4), Transpose((1, 0)), Conv1D(2, 8, 3)),
        (10, 2),
    ),
    (
        "conv2d-dropout-pool-tanh",
        lambda: Sequentiel(Conv2D(3, 1, 3), Dropout(0.3), AvgPool2D(2), TanH()),
        (8, 8, 1),
    ),
    ("pool-then-linear", lambda: Sequentiel(MaxPool1D(2), Flatten(), Linear(12, 2)), (8, 3)),
    ("BatchNorm1D", lambda: _trained_norm(bp.BatchNorm1D(3), (3,)), (3,)),
    (
        "conv-BatchNorm1D-relu",
        lambda: _trained_norm(Sequentiel(Conv1D(3, 2, 3), bp.BatchNorm1D(3), ReLU()), (8, 2)),
        (8, 2),
    ),
    ("BatchNorm2D", lambda: _trained_norm(bp.BatchNorm2D(2), (4, 3, 2)), (4, 3, 2)),
    ("LayerNorm", lambda: bp.LayerNorm(4), (3, 4)),
    ("conv-LayerNorm", lambda: Sequentiel(Conv1D(3, 2, 3), bp.LayerNorm((6, 3))), (8, 2)),
]


@pytest.mark.parametrize("name, factory, shape", LAYERS, ids=[c[0] for c in LAYERS])
def test_layer_roundtrip(name, factory, shape, tmp_path):
    roundtrip(factory(), shape, tmp_path / "layer.onnx")


def _exported_by_its_family_tests(cls) -> bool:
    """Whether the tests of the layer's own file (``tests/test_<file>.py``) name it and run
    ONNX Runtime: a family of layers brings its export cases with it."""
    path = pathlib.Path(__file__).parent / f"test_{cls.__module__.rsplit('.', 1)[-1]}.py"
    if not path.exists():
        return False
    text = path.read_text()
    return "InferenceSession" in text and re.search(rf"\b{cls.__name__}\b", text) is not None


def test_every_layer_of_the_library_is_covered():
    """A new layer in backprop's public names must get an export rule and a case: above, or in
    the tests of its own file."""
    covered = {type(m) for _, factory, _ in LAYERS for m in factory().modules()}
    public = {
        obj
        for name in bp.__all__
        if isinstance(obj := getattr(bp, name), type)
        and issubclass(obj, bp.Module)
        and obj not in (bp.Module, bp.Container)  # the bases: nothing to export
    }
    assert {c for c in public - covered if not _exported_by_its_family_tests(c)} == set()


NETWORKS = {
    "mlp": lambda: mlp_network(),
    "cnn": lambda: seed_cnn_network(),
    "two-branch": lambda: two_branch_network(),
    "cnn2d": lambda: cnn2d_network(),
    "autoencoder": lambda: bp.build_autoencoder((64, 100, 10)).network,
    "autoencoder-tied": lambda: bp.build_autoencoder((64, 100, 10), tied=True).network,
    "cnn-from-readme": lambda: Sequentiel(
        Reshape((64, 1)),
        Conv1D(3, 1, 32),
        MaxPool1D(2, 2),
        Flatten(),
        Linear(992, 100),
        ReLU(),
        Linear(100, 10),
    ),
    "mlp-dropout-logsoftmax": lambda: Sequentiel(
        Linear(64, 100), TanH(), Dropout(0.2), Linear(100, 10), LogSoftmax()
    ),
}


@pytest.mark.parametrize("name", list(NETWORKS))
def test_network_roundtrip(name, tmp_path):
    net = NETWORKS[name]()
    # digits are 0..16 in scikit-learn's data; scaled inputs exercise saturation too
    roundtrip(net, (64,), tmp_path / f"{name}.onnx", scale=3.0)


def test_trained_cnn_roundtrip(tmp_path):
    X_tr, X_te, y_tr, _ = bp.load_digits(seed=0)
    net = seed_cnn_network()
    bp.SGD(net, bp.CELogSoftmax(), X_tr[:256], y_tr[:256], epochs=2, eps=0.1, seed=0)
    path = tmp_path / "trained.onnx"
    roundtrip(net, (64,), path)
    X = bp.to_numpy(X_te[:50]).astype(np.float32)
    got = run_onnx(path, X)
    np.testing.assert_array_equal(
        got.argmax(axis=1), bp.to_numpy(net.forward(X_te[:50])).argmax(axis=1)
    )
    np.testing.assert_allclose(got, bp.to_numpy(net.forward(X_te[:50])), atol=ATOL, rtol=0)


def test_float64_network_is_written_as_float32(tmp_path):
    with bp.use_backend("numpy", dtype="float64"):
        net = mlp_network()
    model = export_onnx(net, tmp_path / "mlp.onnx")
    assert {t.data_type for t in model.graph.initializer} == {onnx.TensorProto.FLOAT}
    X = np.random.default_rng(0).normal(size=(5, 64))
    got = run_onnx(tmp_path / "mlp.onnx", X.astype(np.float32))
    np.testing.assert_allclose(
        got, bp.to_numpy(net.forward(bp.asarray(X, dtype="float64"))), atol=ATOL, rtol=0
    )


def test_tied_weight_is_stored_once(tmp_path):
    model = export_onnx(bp.build_autoencoder((64, 100, 10), tied=True).network, None)
    names = [t.name for t in model.graph.initializer]
    assert len(names) == len(set(names)) == 6  # two weights, four biases
    assert (
        sum(n.op_type == "Gemm" and n.attribute[0].i == 1 for n in model.graph.node) == 2
    )  # transB


def test_dropout_in_training_mode_exports_as_identity_and_keeps_the_mode(tmp_path):
    net = Sequentiel(Linear(4, 4), Dropout(0.5))
    model = export_onnx(net, tmp_path / "d.onnx")
    assert net.training and [n.op_type for n in model.graph.node] == ["Gemm", "Identity"]


def test_transposes_only_around_runs_of_channels_first_layers():
    model = export_onnx(seed_cnn_network(), None, (64,))
    ops = [n.op_type for n in model.graph.node]
    assert ops == [
        "Reshape",
        "Transpose",
        "Conv",
        "MaxPool",
        "Transpose",
        "Flatten",
        "Gemm",
        "Relu",
        "Gemm",
    ]


def test_input_shape_forms_and_inference():
    net = mlp_network()
    assert infer_input_shape(net) == (64,)
    assert infer_input_shape(seed_cnn_network()) == (64,)
    assert infer_input_shape(two_branch_network()) == (64,)
    assert infer_input_shape(Sequentiel(Conv1D(3, 1, 2))) is None
    a = export_onnx(net, None, 64).SerializeToString()
    assert (
        a
        == export_onnx(net, None, (None, 64)).SerializeToString()
        == export_onnx(net, None).SerializeToString()
    )


@pytest.mark.parametrize(
    "net, shape, match",
    [
        (Linear(64, 10), (63,), r"Linear\(64 -> 10\) expects samples of shape \(64,\).*\(63,\)"),
        (
            Sequentiel(Conv1D(3, 2, 4)),
            (10, 3),
            r"Conv1D\(k=3, 2 -> 4.*expects samples of shape \(L, 2\)",
        ),
        (
            Sequentiel(Conv1D(5, 1, 4)),
            (3, 1),
            r"Conv1D.*spatial sizes of at least \(5,\).*\(3, 1\)",
        ),
        (Conv2D(3, 1, 4), (8, 1), r"Conv2D.*\(H, W, 1\).*\(8, 1\)"),
        (MaxPool2D(2), (8, 8), r"MaxPool2D.*\(H, W, C\)"),
        (Reshape((4, 4)), (15,), r"Reshape\(\(4, 4\)\) expects samples of 16 values"),
        (Transpose((1, 0)), (6,), r"Transpose.*2 axes"),
        (Softmax(), (), r"input_shape must be the shape of one sample"),
        (Linear(3, 2), (0,), r"input_shape must be the shape of one sample"),
        (Linear(3, 2), "abc", r"input_shape must be the shape of one sample"),
        (
            Concat(Linear(4, 2), Sequentiel(Reshape((2, 2))), axis=1),
            (4,),
            r"Concat\(axis=1\) cannot join",
        ),
        (Concat(Reshape((2, 2)), Reshape((1, 4)), axis=2), (4,), r"differ outside axis 2"),
        (
            Sequentiel(Conv1D(3, 1, 2)),
            None,
            r"starts with Conv1D\(k=3, 1 -> 2, stride=1\).*pass input_shape",
        ),
    ],
)
def test_shape_errors_name_the_layer(net, shape, match):
    with pytest.raises(ValueError, match=match):
        export_onnx(net, None, shape)


class Square(bp.Module):
    def forward(self, X):
        return X * X

    def backward_delta(self, input, delta):
        return 2 * input * delta


class ScaledLinear(Linear):
    def forward(self, X):
        return 2 * super().forward(X)


@pytest.mark.parametrize(
    "layer, name", [(Square(), "Square"), (ScaledLinear(3, 3), "ScaledLinear")]
)
def test_unknown_layer_is_a_clear_error(layer, name, tmp_path):
    path = tmp_path / "never.onnx"
    with pytest.raises(
        ValueError,
        match=rf"cannot export {name}\(.*\).*: it (defines its own forward but not|has no) "
        "export_onnx",
    ):
        export_onnx(Sequentiel(Linear(3, 3), layer), path, (3,))
    assert not path.exists()
    with pytest.raises(TypeError, match="expected a Module"):
        export_onnx("net", path, (3,))


def _export_bytes(backend_name, path, build=two_branch_network, **kw):
    with bp.use_backend(backend_name, **kw):
        bp.manual_seed(0)
        net = build()
    export_onnx(net, path)
    return path.read_bytes()


def test_same_file_from_every_backend(backend_name, tmp_path):
    """The file holds host copies of the parameters: any backend gives the same bytes."""
    reference = _export_bytes("numpy", tmp_path / "numpy.onnx")
    assert _export_bytes(backend_name, tmp_path / "other.onnx") == reference
    assert _export_bytes(backend_name, tmp_path / "other64.onnx", dtype="float64") == reference


def test_same_file_from_torch_and_numpy(tmp_path):
    torch = pytest.importorskip("torch")
    reference = _export_bytes("numpy", tmp_path / "numpy.onnx", build=seed_cnn_network)
    assert _export_bytes("torch", tmp_path / "torch.onnx", build=seed_cnn_network) == reference
    bp.manual_seed(0)
    net = seed_cnn_network().to("torch")
    assert isinstance(net[1]._parameters["weight"], torch.Tensor)
    export_onnx(net, tmp_path / "moved.onnx")
    assert (tmp_path / "moved.onnx").read_bytes() == reference
