"""Figures: the matplotlib set-up written once, for the command line and the studies.

Figures are plain :class:`matplotlib.figure.Figure` objects drawn on the Agg
canvas, never pyplot figures: making one does not switch the process's
matplotlib backend (a notebook keeps its own), nothing has to be closed, and
a figure can be inspected (labels, ticks) before :func:`save` writes it.

Needs matplotlib (``pip install 'backprop-nn[examples]'``, from a checkout
``pip install -e '.[examples]'``); ``import backprop``
does not import this module.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._install import install_hint

try:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator
except ImportError as error:  # pragma: no cover - depends on the installation
    raise ImportError(f"backprop.plotting needs matplotlib: {install_hint('examples')}") from error

if TYPE_CHECKING:
    from matplotlib.axis import Axis

    from ._typing import FilePath
    from .module import Loss

__all__ = ["figure", "integer_ticks", "loss_label", "save", "subplots", "training_curves"]

DPI = 100


def figure(figsize: tuple[float, float] = (6.4, 4.8)) -> Figure:
    """A new figure of ``figsize`` inches on the Agg canvas, outside pyplot."""
    fig = Figure(figsize=figsize)
    FigureCanvasAgg(fig)
    return fig


def subplots(
    nrows: int = 1, ncols: int = 1, *, figsize: tuple[float, float], **kwargs: Any
) -> tuple[Figure, Any]:
    """``(figure, axes)`` as :func:`matplotlib.pyplot.subplots` returns them, without pyplot."""
    fig = figure(figsize)
    return fig, fig.subplots(nrows, ncols, **kwargs)


def save(fig: Figure, path: FilePath, *, dpi: int = DPI) -> Path:
    """Write ``fig`` to ``path``, in the format its suffix names (.png, .pdf, .svg); returns it."""
    path = Path(path)
    fig.savefig(path, dpi=dpi)
    return path


def integer_ticks(axis: Axis) -> None:
    """Ticks at whole numbers only on ``axis`` (``ax.xaxis``), for counts such as epochs."""
    axis.set_major_locator(MaxNLocator(integer=True))


def loss_label(loss: Loss | type | str | None, what: str = "training cost") -> str:
    """``"training cost (CELogSoftmax)"``: an axis label that names the loss.

    ``loss`` is a loss object, a loss class or its name; ``None`` gives ``what`` alone.
    """
    if loss is None:
        return what
    if not isinstance(loss, str):
        loss = loss.__name__ if isinstance(loss, type) else type(loss).__name__
    return f"{what} ({loss})"


def training_curves(
    history: Sequence[float],
    *,
    title: str | None = None,
    loss: Loss | type | str | None = None,
    metric: str = "test accuracy",
) -> Figure:
    """The curves of a training run, per epoch: costs on a log scale, and the metric beside them.

    Parameters
    ----------
    history : list of float
        The per-epoch training cost, as :func:`backprop.SGD` returns it; its
        ``val_loss`` and ``metric`` attributes, when present and not empty,
        add the test cost and a second panel.
    title : str, optional
        The figure's title.
    loss : Loss, type or str, optional
        The loss that was minimised; the cost axis names it.
    metric : str
        The label of the metric's axis.
    """
    epochs = range(1, len(history) + 1)
    val_loss = list(getattr(history, "val_loss", None) or [])
    scores = list(getattr(history, "metric", None) or [])
    panels = 2 if scores else 1
    fig, axes = subplots(1, panels, figsize=(5 * panels, 3.6), squeeze=False)
    ax = axes[0][0]
    ax.plot(epochs, list(history), label="training")
    if val_loss:
        ax.plot(epochs, val_loss, label="test")
        ax.legend()
    ax.set_ylabel(loss_label(loss, "cost" if val_loss else "training cost"))
    ax.set_yscale("log")
    if scores:
        axes[0][1].plot(epochs, scores, color="C2")
        axes[0][1].set_ylabel(metric)
    for ax in axes[0]:
        ax.set_xlabel("epoch")
        integer_ticks(ax.xaxis)
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig
