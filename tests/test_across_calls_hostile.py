"""A hostile pass over state across calls: resumed runs fuzzed at every point, checkpoint records
damaged at random, files that lie in new ways, and values of every kind for every
hyperparameter. The only acceptable outcomes are a correct result or a clear error."""

from __future__ import annotations

import contextlib
import gzip
import io
import json
import os
import socket
import zipfile
import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import backprop as bp
import backprop.data
import backprop.streaming
from backprop.backends.random import generator_state
from backprop.backends.readers import read_file
from backprop.optim.checkpoint import Checkpoint, load_checkpoint

_FEW = settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def _data(seed=0, n=48):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 5))
    y = (X[:, 0] > 0).astype(np.int64) + (X[:, 1] > 0.7)
    return X, y


def _net():
    return bp.Sequentiel(bp.Linear(5, 8), bp.TanH(), bp.Dropout(0.25), bp.Linear(8, 3))


def _params(net):
    return {k: bp.to_numpy(v).copy() for k, v in net.state_dict().items()}


class _Crash(bp.Callback):
    def __init__(self, epoch):
        self.epoch = epoch

    def on_epoch_begin(self, trainer, epoch):
        if epoch == self.epoch:
            raise KeyboardInterrupt


def _run(X, y, path, optimizer, epochs, patience, scheduler, crash=None, resume=False):
    with bp.use_backend("numpy"):
        bp.manual_seed(3)
        net = _net()
        history = bp.SGD(
            net, bp.CELogSoftmax(), X, y, batch_size=10, epochs=epochs, eps=0.05,
            optimizer=optimizer, scheduler=scheduler, patience=patience,
            validation=(X[:12], (y[:12] + 1) % 3), checkpoint=path, resume=resume,
            callbacks=[_Crash(crash)] if crash else [],
        )  # fmt: skip
    return _params(net), history


# --------------------------------------------------------------------------
# Resume and warm start
# --------------------------------------------------------------------------


@_FEW
@given(
    optimizer=st.sampled_from(["sgd", "momentum", "nesterov", "adam"]),
    epochs=st.integers(2, 7),
    crash=st.integers(1, 8),
    patience=st.sampled_from([None, 1, 2]),
    scheduler=st.sampled_from([None, "cosine"]),
)
def test_a_run_killed_anywhere_resumes_bit_exact(
    tmp_path_factory, optimizer, epochs, crash, patience, scheduler
):
    X, y = _data()
    full, history = _run(X, y, None, optimizer, epochs, patience, scheduler)
    path = tmp_path_factory.mktemp("ck") / "run.npz"
    with contextlib.suppress(KeyboardInterrupt):  # a crash after the last epoch never comes
        _run(X, y, path, optimizer, epochs, patience, scheduler, crash=crash)
    # resumed twice: the second resume finds a finished run and must change nothing
    for _ in range(2):
        resumed, history2 = _run(X, y, path, optimizer, epochs, patience, scheduler, resume=True)
        assert list(history2) == list(history)
        assert history2.stopped_early == history.stopped_early
        for k in full:
            np.testing.assert_array_equal(resumed[k], full[k], err_msg=k)


def test_a_run_finished_by_its_epochs_continues_when_asked_for_more(tmp_path):
    X, y = _data()
    path = tmp_path / "run.npz"
    _run(X, y, path, "adam", 3, None, None)
    full, history = _run(X, y, None, "adam", 5, None, None)
    resumed, history2 = _run(X, y, path, "adam", 5, None, None, resume=True)
    assert list(history2) == list(history)
    for k in full:
        np.testing.assert_array_equal(resumed[k], full[k])


def test_a_progress_log_added_on_resume_changes_nothing(tmp_path, capsys):
    X, y = _data()
    path = tmp_path / "run.npz"
    with pytest.raises(KeyboardInterrupt):
        _run(X, y, path, "adam", 4, None, None, crash=3)
    full, _ = _run(X, y, None, "adam", 4, None, None)
    with bp.use_backend("numpy"):
        bp.manual_seed(3)
        net = _net()
        bp.SGD(
            net, bp.CELogSoftmax(), X, y, batch_size=10, epochs=4, eps=0.05, optimizer="adam",
            validation=(X[:12], (y[:12] + 1) % 3), checkpoint=path, resume=True, verbose=True,
        )  # fmt: skip
    for k in full:
        np.testing.assert_array_equal(_params(net)[k], full[k])
    assert "epoch   4/4" in capsys.readouterr().out


# every value a JSON record can hold, hostile ones first
_JSON = st.one_of(
    st.sampled_from([-1, -5, 0, 10**30, True, None, "", "x", 1.5, float("nan")]),
    st.lists(st.integers(-3, 3), max_size=3),
    st.dictionaries(st.sampled_from(["state", "epoch", "a"]), st.integers(-2, 2), max_size=2),
)


def _paths(node, prefix=()):
    """Every path to a value of a JSON record (dicts and lists, at most 4 levels down)."""
    yield prefix
    if len(prefix) >= 4:
        return
    if isinstance(node, dict):
        for k, v in node.items():
            if k != "architecture":
                yield from _paths(v, (*prefix, k))
    elif isinstance(node, list) and len(node) <= 8:
        for i, v in enumerate(node):
            yield from _paths(v, (*prefix, i))


def _read(path):
    with zipfile.ZipFile(path) as z:
        return {n[:-4]: np.lib.format.read_array(io.BytesIO(z.read(n))) for n in z.namelist()}


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    X, y = _data()
    path = tmp_path_factory.mktemp("ck") / "run.npz"
    with bp.use_backend("numpy"):
        bp.manual_seed(3)
        trainer = bp.Trainer(_net(), bp.CELogSoftmax(), "adam", eps=0.01, batch_size=10, seed=1)
        trainer.add_callbacks([bp.Validation(X[:10], y[:10]), bp.EarlyStopping(5)])
        trainer.add_callbacks([Checkpoint(path)])
        trainer.fit(X, y, 2)
    arrays = _read(path)
    record = json.loads(arrays["__checkpoint__"].tobytes().decode())
    return arrays, record, sorted(_paths(record), key=str)


def _fresh(X, y):
    bp.manual_seed(3)
    trainer = bp.Trainer(_net(), bp.CELogSoftmax(), "adam", eps=0.01, batch_size=10, seed=1)
    trainer.add_callbacks([bp.Validation(X[:10], y[:10]), bp.EarlyStopping(5)])
    trainer.fit(X, y, 1)
    return trainer


def _observed(trainer):
    opt = trainer.optimizer.state_dict(trainer.net)
    return (
        _params(trainer.net),
        {k: np.asarray(bp.to_numpy(v)) if not isinstance(v, (int, float)) else v
         for k, v in opt.items()},
        generator_state(trainer.rng),
        generator_state(),
        [generator_state(m._rng) for m in trainer.net.unique_modules() if getattr(m, "_rng", None)],
        trainer.epoch,
        list(trainer.history),
        trainer.callbacks[2].best,
    )  # fmt: skip


def _same(a, b):
    for x, y in zip(a, b):
        if isinstance(x, dict):
            assert x.keys() == y.keys()
            for k in x:
                np.testing.assert_array_equal(np.asarray(x[k]), np.asarray(y[k]), err_msg=k)
        else:
            assert x == y or (x != x and y != y)


@settings(max_examples=int(os.environ.get("PROBE", 60)), deadline=None)
@given(data=st.data())
def test_a_checkpoint_record_damaged_anywhere_is_all_or_nothing(tmp_path_factory, written, data):
    arrays, record, paths = written
    where = data.draw(st.sampled_from([p for p in paths if p]))
    value = data.draw(_JSON)
    damaged = json.loads(json.dumps(record))
    node = damaged
    for key in where[:-1]:
        node = node[key]
    if data.draw(st.booleans()) and isinstance(node, dict):
        del node[where[-1]]
    else:
        node[where[-1]] = value
    path = tmp_path_factory.mktemp("bad") / "run.npz"
    np.savez(
        path, **{**arrays, "__checkpoint__": np.frombuffer(json.dumps(damaged).encode(), np.uint8)}
    )
    X, y = _data()
    with bp.use_backend("numpy"):
        trainer = _fresh(X, y)
        before = _observed(trainer)
        try:
            load_checkpoint(trainer, path)
        except ValueError as exc:
            assert str(path) in str(exc)
            _same(_observed(trainer), before)
            return
        # accepted: the damage did not matter, and the trainer trains on from a sane state
        assert trainer.epoch == len(trainer.history) >= 0
        trainer.fit(X, y, trainer.epoch + 1)


@pytest.mark.parametrize(
    "damage",
    [
        lambda a: a.__setitem__("param/0.weight", a["param/0.weight"][:2]),
        lambda a: a.__setitem__("param/0.weight", a["param/0.weight"] * np.nan),
        lambda a: a.__setitem__("param/0.weight", a["param/0.weight"].astype(np.int32)),
        lambda a: a.pop("param/3.bias"),
        lambda a: a.__setitem__("opt/0.weight/mean", a["opt/0.weight/mean"][:, :1]),
        lambda a: a.pop("opt/0.weight/square"),
        lambda a: a.__setitem__("cb/2/0.weight", a["cb/2/0.weight"][:1]),
        lambda a: a.__setitem__("param/extra", np.zeros(3)),
    ],
)
def test_a_checkpoint_array_damaged_changes_nothing(tmp_path, written, damage):
    arrays, _, _ = written
    arrays = dict(arrays)
    damage(arrays)
    path = tmp_path / "run.npz"
    np.savez(path, **arrays)
    X, y = _data()
    with bp.use_backend("numpy"):
        trainer = _fresh(X, y)
        before = _observed(trainer)
        with pytest.raises(ValueError, match="run.npz"):
            load_checkpoint(trainer, path)
        _same(_observed(trainer), before)


@_FEW
@given(
    first=st.sampled_from(["adam", "sgd", "momentum"]),
    then=st.sampled_from(["adam", "sgd", "momentum"]),
    lr=st.sampled_from([1e-3, np.float32(0.02), np.float64(0.05)]),
    decay=st.sampled_from([0.0, np.float32(1e-3), 0.01]),
)
def test_warm_starts_use_the_parameters_set_now(first, then, lr, decay):
    from backprop.sklearn import NeuralNetRegressor

    X, y = _data()
    model = NeuralNetRegressor(
        hidden_layer_sizes=(4,), epochs=1, optimizer=first, random_state=0, warm_start=True
    ).fit(X, y.astype(float))
    model.set_params(optimizer=then, learning_rate=lr, weight_decay=decay)
    model.fit(X, y.astype(float))
    opt = model.optimizer_
    assert type(opt).__name__ == {"adam": "Adam", "sgd": "GradientDescent",
                                  "momentum": "Momentum"}[then]  # fmt: skip
    assert opt.lr == float(lr) and opt.weight_decay == float(decay)
    assert model.n_iter_ == 2


# --------------------------------------------------------------------------
# Files that change or lie
# --------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(
    payload=st.binary(max_size=3000),
    members=st.integers(1, 3),
    cut=st.one_of(st.none(), st.integers(0, 400)),
    tail=st.sampled_from([b"", b"\x00\x00", b"junk", b"\x1f\x8b"]),
)
def test_gzip_streams_decompress_exactly_or_fail_clearly(
    tmp_path_factory, payload, members, cut, tail
):
    whole = b"".join(gzip.compress(payload) for _ in range(members)) + tail
    if cut is not None:
        whole = whole[:cut]
    path = tmp_path_factory.mktemp("gz") / "f"
    path.write_bytes(whole)
    try:
        data = read_file(path)
    except ValueError as exc:
        assert str(path) in str(exc)
        return
    if whole[:2] == b"\x1f\x8b":
        # accepted: exactly what zlib gives for the members read
        expected, rest = [], whole
        while rest[:2] == b"\x1f\x8b":
            d = zlib.decompressobj(wbits=31)
            expected.append(d.decompress(rest))
            assert d.eof
            rest = d.unused_data
        assert data == b"".join(expected)
    else:
        assert data == whole


@settings(max_examples=40, deadline=None)
@given(content=st.binary(max_size=600))
def test_random_bytes_as_a_model_or_data_file_fail_clearly(tmp_path_factory, content):
    path = tmp_path_factory.mktemp("junk") / "m.npz"
    path.write_bytes(content)
    for reader in (bp.load, bp.data.read_usps, bp.streaming.RowChunks):
        try:
            reader(path)
        except ValueError as exc:
            assert str(path) in str(exc) or "RowChunks" in str(exc)


def test_a_socket_a_directory_link_and_a_link_loop_are_refused(tmp_path):
    sock_path = tmp_path / "s.npz"
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(str(sock_path))
        with pytest.raises(ValueError, match="socket"):
            bp.load(sock_path)
    os.symlink(tmp_path, tmp_path / "dir.npz")
    with pytest.raises(IsADirectoryError):
        bp.load(tmp_path / "dir.npz")
    os.symlink(tmp_path / "loop2", tmp_path / "loop1")
    os.symlink(tmp_path / "loop1", tmp_path / "loop2")
    with pytest.raises(OSError, match="loop1"):
        bp.data.read_usps(tmp_path / "loop1")


@pytest.mark.parametrize(
    "change",
    [
        lambda p: os.truncate(p, os.path.getsize(p) - 64),  # shrunk under the reader
        lambda p: p.write_bytes(p.read_bytes() + b"\0" * 64),  # grown
        lambda p: os.utime(p, ns=(0, 10**9)),  # touched: another modification time
    ],
)
def test_a_npy_changed_in_place_between_reads_is_refused(tmp_path, change):
    X = np.arange(64 * 4, dtype=np.float32).reshape(64, 4)
    path = tmp_path / "X.npy"
    np.save(path, X)
    chunks = bp.streaming.RowChunks(str(path), chunk_rows=16)
    np.testing.assert_array_equal(chunks.read(0), X[:16])
    change(path)
    with pytest.raises(ValueError, match="changed since it was opened"):
        chunks.read(1)


def test_the_cli_refuses_an_output_over_its_data(tmp_path):
    from backprop.cli import main

    X = np.random.default_rng(0).normal(size=(30, 4)).astype(np.float32)
    np.save(tmp_path / "X.npy", X)
    np.save(tmp_path / "y.npy", (X[:, 0] > 0).astype(np.int64))
    before = (tmp_path / "X.npy").read_bytes()
    code = main([
        "train", "--data", str(tmp_path / "X.npy"), str(tmp_path / "y.npy"), "--quiet",
        "--epochs", "1", "--checkpoint", str(tmp_path / "X.npy"),
    ])  # fmt: skip
    assert code == 2 and (tmp_path / "X.npy").read_bytes() == before


@pytest.mark.parametrize(
    "shape", [[-1, 4], [True, 4], ["4"], [4.0], [], [1] * 9, [2**20, 2**20], "4", {"a": 1}, [0]]
)
def test_info_never_trusts_a_recorded_input_shape(tmp_path, capsys, shape):
    from backprop.cli import main

    with bp.use_backend("numpy"):
        path = tmp_path / "m.npz"
        bp.save(bp.Sequentiel(bp.Linear(4, 2)), path, metadata={"input_shape": shape})
    assert main(["info", str(path)]) == 0
    out = capsys.readouterr().out
    assert "parameters" in out or "Linear" in out


@pytest.mark.parametrize("name", ["é" * 120 + ".npz", "m" * 251 + ".npz", "日本" * 40 + ".npz"])
def test_long_names_save_atomically(tmp_path, name):
    with bp.use_backend("numpy"):
        net = bp.Sequentiel(bp.Linear(3, 2))
        try:
            bp.save(net, tmp_path / name)
        except OSError as exc:  # longer than the file system allows: a clear error
            assert "too long" in str(exc)
            assert not os.listdir(tmp_path)
            return
        assert bp.load(tmp_path / name).n_parameters() == 8
    assert os.listdir(tmp_path) == [name]


# --------------------------------------------------------------------------
# Values and arguments
# --------------------------------------------------------------------------

_GOOD_RATES = st.one_of(
    st.floats(1e-6, 10.0),
    st.sampled_from([np.float16(0.5), np.float32(1e-3), np.float64(0.1), np.int64(1), 3]),
)
_BAD_RATES = st.sampled_from(
    [0, -1e-3, float("nan"), float("inf"), np.float32("nan"), np.float64(-1), True,
     np.bool_(True), "0.1", None, 1j, [0.1], np.array([0.1, 0.2])]
)  # fmt: skip


@settings(max_examples=40, deadline=None)
@given(rate=_GOOD_RATES)
def test_every_learning_rate_taker_accepts_numpy_scalars(rate):
    expected = float(rate)
    assert bp.optim.Adam(rate).lr == expected
    assert bp.optim.Momentum(rate).lr == expected
    assert bp.optim.GradientDescent(rate, weight_decay=rate).weight_decay == expected
    with bp.use_backend("numpy"):
        assert bp.Optim(bp.Linear(2, 2), bp.MSELoss(), rate).eps == expected
        assert bp.Trainer(bp.Linear(2, 2), bp.MSELoss(), eps=rate).optim.eps == expected


@settings(max_examples=30, deadline=None)
@given(rate=_BAD_RATES)
def test_every_learning_rate_taker_refuses_what_is_not_a_rate(rate):
    coefficient = 1 if type(rate) is int and rate == 0 else rate  # 0 is a valid momentum
    makers = [
        (lambda: bp.optim.Adam(rate), "Adam: lr"),
        (lambda: bp.optim.Momentum(0.1, momentum=coefficient), "Momentum: momentum"),
        (lambda: bp.optim.Adam(betas=(0.9, coefficient)), r"Adam: betas\[1\]"),
        (lambda: bp.optim.Adam(eps=rate), "Adam: eps"),
    ]
    if rate is not None:  # None is the Trainer's default rate
        makers.append((lambda: bp.Trainer(bp.Linear(2, 2), bp.MSELoss(), eps=rate), "SGD: eps"))
    for make, name in makers:
        with pytest.raises(ValueError, match=name):
            make()


_COUNTS = st.sampled_from(
    [1, 3, np.int8(2), np.int64(4), np.uint16(5), 0, -1, 2.0, np.float64(2), True, "3", None]
)


@settings(max_examples=30, deadline=None)
@given(epochs=_COUNTS, batch_size=_COUNTS)
def test_counts_are_ints_of_any_kind_or_a_named_error(epochs, batch_size):
    X, y = _data(n=12)

    def ok(v, minimum):
        try:
            import operator

            return not isinstance(v, (bool, np.bool_)) and operator.index(v) >= minimum
        except TypeError:
            return False

    with bp.use_backend("numpy"):
        net = bp.Linear(5, 3)
        if ok(epochs, 0) and ok(batch_size, 1):
            history = bp.SGD(net, bp.CELogSoftmax(), X, y, epochs=epochs, batch_size=batch_size)
            assert len(history) == int(epochs)
        else:
            name = "epochs" if not ok(epochs, 0) else "batch_size"
            with pytest.raises(ValueError, match=f"{name} must be"):
                bp.SGD(net, bp.CELogSoftmax(), X, y, epochs=epochs, batch_size=batch_size)


@settings(max_examples=40, deadline=None)
@given(
    weights=st.lists(st.floats(0, 10), min_size=3, max_size=3),
    scale=st.sampled_from([1.0, 0.0, 2.0, 0.5, 1.0 + 1e-7, 1.0 + 1e-2]),
)
def test_soft_targets_sum_to_one_or_are_refused(weights, scale):
    w = np.array(weights)
    if w.sum() == 0:
        w = np.array([1.0, 0.0, 0.0])
    row = w / w.sum() * scale
    Y = np.stack([np.array([0.0, 1.0, 0.0]), row])
    with bp.use_backend("numpy", dtype="float64"):
        scores = bp.asarray(np.zeros((2, 3)))
        if abs(row.sum() - 1) <= 3e-6:
            cost = bp.to_numpy(bp.CELogSoftmax().forward(bp.asarray(Y), scores))
            np.testing.assert_allclose(cost, np.log(3) * np.ones(2), rtol=1e-6)
        else:
            with pytest.raises(ValueError, match="row 1 sums to"):
                bp.CELogSoftmax().forward(bp.asarray(Y), scores)


def test_evaluate_and_predict_take_numpy_batch_sizes_and_empty_input_is_named():
    X, y = _data()
    with bp.use_backend("numpy"):
        net = bp.Sequentiel(bp.Linear(5, 3))
        a = bp.evaluate(net, bp.CELogSoftmax(), X, y, batch_size=np.int64(7))
        b = bp.evaluate(net, bp.CELogSoftmax(), X, y, batch_size=48)
        np.testing.assert_allclose(a[0], b[0], rtol=1e-6)
        out = bp.streaming.predict(net, X, batch_size=np.uint8(5))
        assert out.shape == (48, 3)
        with pytest.raises(ValueError, match="evaluate: the data set is empty"):
            bp.evaluate(net, bp.CELogSoftmax(), X[:0], y[:0])


def test_torch_inputs_that_require_grad_everywhere_they_enter():
    torch = pytest.importorskip("torch")
    with bp.use_backend("torch"):
        net = bp.Sequentiel(bp.Linear(3, 2))
        X = torch.randn(8, 3, requires_grad=True)
        y = torch.randint(0, 2, (8,))
        cost, _ = bp.evaluate(net, bp.CELogSoftmax(), X, y)
        assert isinstance(cost, float)
        moved = bp.asarray(X)
        assert not moved.requires_grad
        assert X.requires_grad  # the caller's tensor is left as it was
        bp.streaming.fit(net, bp.CELogSoftmax(), X, y, epochs=1)
        for p in net.parameters():
            assert p.grad_fn is None


def test_streaming_evaluate_and_validation_on_a_big_endian_file(tmp_path):
    X = np.random.default_rng(0).normal(size=(40, 5)).astype(">f8")
    y = (X[:, 0] > 0).astype(">i4")
    np.save(tmp_path / "X.npy", X)
    np.save(tmp_path / "y.npy", y)
    with bp.use_backend("numpy"):
        net = bp.Sequentiel(bp.Linear(5, 2))
        a = bp.streaming.evaluate(net, bp.CELogSoftmax(), str(tmp_path / "X.npy"),
                                  str(tmp_path / "y.npy"))  # fmt: skip
        b = bp.evaluate(net, bp.CELogSoftmax(), X.astype("<f8"), y.astype("<i4"))
        np.testing.assert_allclose(a[0], b[0], rtol=1e-6)
