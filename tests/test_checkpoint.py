"""Resumable training: a run killed at any moment and resumed ends bit-identical to one never
interrupted."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

import backprop as bp

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _data(rng):
    X = rng.normal(size=(60, 6))
    y = (X[:, 0] + X[:, 1] > 0).astype(np.int64) + (X[:, 2] > 0.5)
    return X, y


def _net():
    return bp.Sequentiel(bp.Linear(6, 16), bp.TanH(), bp.Dropout(0.2), bp.Linear(16, 3))


class _Crash(bp.Callback):
    """Raises at the start of an epoch, as a killed process would stop there."""

    def __init__(self, epoch):
        self.epoch = epoch

    def on_epoch_begin(self, trainer, epoch):
        if epoch == self.epoch:
            raise KeyboardInterrupt


def _train(X, y, epochs, path=None, resume=False, dtype="float32", optimizer="adam", crash_at=None):
    with bp.use_backend("numpy", dtype=dtype):
        bp.manual_seed(5)
        net = _net()
        history = bp.SGD(
            net, bp.CELogSoftmax(), X, y, batch_size=16, epochs=epochs, eps=0.01,
            optimizer=optimizer, scheduler="cosine", validation=(X[:20], y[:20]),
            metric=bp.accuracy, patience=50, checkpoint=path, resume=resume,
            callbacks=[_Crash(crash_at)] if crash_at else (),
        )  # fmt: skip
        return {k: bp.to_numpy(v) for k, v in net.state_dict().items()}, history


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("optimizer", ["adam", "momentum", "adamw", "rmsprop"])
def test_resumed_run_is_bit_identical(tmp_path, rng, dtype, optimizer):
    X, y = _data(rng)
    full, history = _train(X, y, 6, dtype=dtype, optimizer=optimizer)
    path = tmp_path / "run.npz"
    with pytest.raises(KeyboardInterrupt):  # the same run, stopped at the start of epoch 4
        _train(X, y, 6, path, dtype=dtype, optimizer=optimizer, crash_at=4)
    resumed, history2 = _train(X, y, 6, path, resume=True, dtype=dtype, optimizer=optimizer)
    for k in full:
        np.testing.assert_array_equal(resumed[k], full[k], err_msg=k)
    assert list(history2) == list(history) and history2.metric == history.metric


def test_resume_without_a_checkpoint_starts_afresh_and_refuses_another_network(tmp_path, rng):
    X, y = _data(rng)
    path = tmp_path / "run.npz"
    fresh, _ = _train(X, y, 2, path, resume=True)
    again, _ = _train(X, y, 2)
    for k in fresh:
        np.testing.assert_array_equal(fresh[k], again[k])
    with bp.use_backend("numpy"):
        other = bp.Sequentiel(bp.Linear(6, 4), bp.Linear(4, 3))
        with pytest.raises(ValueError, match="another architecture"):
            bp.SGD(other, bp.CELogSoftmax(), X, y, epochs=3, checkpoint=path, resume=True)
        with pytest.raises(ValueError, match="resume=True needs checkpoint"):
            bp.SGD(other, bp.CELogSoftmax(), X, y, epochs=3, resume=True)


_SCRIPT = textwrap.dedent(
    """
    import sys, time
    import numpy as np
    import backprop as bp

    class Slow(bp.Module):
        '''The identity, slowly: a kill lands in the middle of an epoch.'''

        def forward(self, X):
            time.sleep(0.01)
            return X

        def backward_delta(self, input, delta):
            return delta

    class Marker(bp.Callback):
        def on_epoch_begin(self, trainer, epoch):
            if sys.argv[2] != "-":  # the uninterrupted run has no checkpoint to mark
                with open(sys.argv[2] + ".epoch", "w") as f:
                    f.write(str(epoch))

    dtype, path, epochs, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    rng = np.random.default_rng(0)
    X = rng.normal(size=(160, 6))
    y = (X[:, 0] > 0).astype(np.int64)
    with bp.use_backend("numpy", dtype=dtype):
        bp.manual_seed(1)
        net = bp.Sequentiel(bp.Linear(6, 8), Slow(), bp.TanH(), bp.Dropout(0.3), bp.Linear(8, 2))
        bp.SGD(net, bp.CELogSoftmax(), X, y, batch_size=8, epochs=epochs, eps=0.05,
               optimizer="adam", callbacks=[Marker()], checkpoint=path if path != "-" else None,
               resume=path != "-")
        np.savez(out, **{k: bp.to_numpy(v) for k, v in net.state_dict().items()})
    """
)


def _run(script, *args, wait=True):
    env = {**os.environ, "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")}
    cmd = [sys.executable, str(script), *map(str, args)]
    if wait:
        out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
        assert out.returncode == 0, out.stderr
        return out
    return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


@pytest.mark.slow
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_sigkill_mid_epoch_then_resume(tmp_path, dtype):
    script = tmp_path / "train.py"
    script.write_text(_SCRIPT)
    path, epochs = tmp_path / "run.npz", 5
    _run(script, dtype, "-", epochs, tmp_path / "full.npz")  # never interrupted
    proc = _run(script, dtype, path, epochs, tmp_path / "killed.npz", wait=False)
    marker = f"{path}.epoch"
    deadline = time.time() + 120
    while time.time() < deadline:  # wait until epoch 3 has begun (epochs 1-2 are checkpointed)
        if os.path.exists(marker):
            with open(marker) as f:
                if f.read().strip() == "3":
                    break
        time.sleep(0.01)
    time.sleep(0.1)  # into the epoch: some steps of epoch 3 are done
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    assert path.exists() and not (tmp_path / "killed.npz").exists()
    _run(script, dtype, path, epochs, tmp_path / "resumed.npz")
    full, resumed = np.load(tmp_path / "full.npz"), np.load(tmp_path / "resumed.npz")
    for k in full.files:
        np.testing.assert_array_equal(resumed[k], full[k], err_msg=k)
