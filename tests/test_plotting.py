import pytest

pytest.importorskip("matplotlib")

import backprop as bp
from backprop import plotting
from backprop.optim.loop import History


def _history(epochs=7):
    history = History()
    history.extend(1.0 / (e + 1) for e in range(epochs))
    history.val_loss = [1.2 / (e + 1) for e in range(epochs)]
    history.metric = [0.5 + e / 20 for e in range(epochs)]
    return history


def test_training_curves_are_labelled(tmp_path):
    fig = plotting.training_curves(_history(), title="mlp on digits", loss=bp.CELogSoftmax())
    cost, score = fig.axes
    assert cost.get_ylabel() == "cost (CELogSoftmax)"
    assert score.get_ylabel() == "test accuracy"
    assert [line.get_label() for line in cost.get_lines()] == ["training", "test"]
    assert fig.texts[0].get_text() == "mlp on digits"
    fig.canvas.draw()
    for ax in fig.axes:
        assert ax.get_xlabel() == "epoch"
        ticks = [t for t in ax.get_xticks() if 1 <= t <= 7]
        assert ticks and all(float(t).is_integer() for t in ticks), ticks
    for name in ("curves.png", "curves.svg"):
        path = plotting.save(fig, tmp_path / name)
        assert path.stat().st_size > 1000
    assert (tmp_path / "curves.png").read_bytes()[:4] == b"\x89PNG"


def test_training_curves_of_a_plain_list():
    """The assignment's SGD result alone (no validation): one panel, the training cost."""
    fig = plotting.training_curves([0.9, 0.5, 0.4], loss="MSELoss")
    (ax,) = fig.axes
    assert ax.get_ylabel() == "training cost (MSELoss)"
    assert plotting.training_curves([0.9, 0.5]).axes[0].get_ylabel() == "training cost"


def test_loss_label():
    assert plotting.loss_label(bp.BCELoss) == "training cost (BCELoss)"
    assert plotting.loss_label(bp.MSELoss(), "test cost") == "test cost (MSELoss)"
    assert plotting.loss_label(None) == "training cost"


def test_figures_leave_pyplot_alone(tmp_path):
    """Making and saving a figure neither registers it with pyplot nor switches the backend."""
    import matplotlib
    import matplotlib.pyplot as plt

    backend, open_figures = matplotlib.get_backend(), plt.get_fignums()
    fig, axes = plotting.subplots(1, 2, figsize=(4, 2))
    assert len(axes) == 2 and axes[0].figure is fig
    plotting.save(fig, tmp_path / "two.pdf")
    assert (tmp_path / "two.pdf").read_bytes()[:4] == b"%PDF"
    assert matplotlib.get_backend() == backend and plt.get_fignums() == open_figures


def test_cli_plot_history_names_the_loss(tmp_path):
    from backprop.cli import plot_history

    path = tmp_path / "curves.png"
    plot_history(_history(3), path, "cnn on digits", loss=bp.CELogSoftmax())
    assert path.stat().st_size > 5000
