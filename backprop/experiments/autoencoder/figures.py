"""The study's figures, drawn from its results and pictures (see :func:`.study.run`).

Each ``*_figure`` function returns a :class:`matplotlib.figure.Figure` (so its
labels can be checked); :func:`draw` saves them all into the output directory.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from ... import plotting
from .study import RAW

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from ..._typing import Array

#: File name of each figure, as the report links them.
FILES = ("reconstructions.png", "latent2d.png", "tsne.png", "denoising.png", "classification.png")


def draw(out: Path, results: dict, pictures: dict) -> list[Path]:
    """Save every figure of the study into ``out``; returns the paths written."""
    out = Path(out)
    k = results["bce_vs_mse"]["latent"]
    figures = {
        "reconstructions.png": reconstructions_figure(
            pictures["originals"], pictures["reconstructions"]
        )
    }
    if "latent2d" in pictures:
        figures["latent2d.png"] = codes_figure(
            *pictures["latent2d"], "2-D codes of the test digits", ("code unit 1", "code unit 2")
        )
    figures["tsne.png"] = codes_figure(
        *pictures["tsne"],
        f"t-SNE of the {k}-D codes of the test digits",
        ("t-SNE axis 1", "t-SNE axis 2"),
    )
    figures["denoising.png"] = denoising_figure(results["denoising"]["rows"], pictures["denoising"])
    figures["classification.png"] = classification_figure(results)
    return [plotting.save(fig, out / name) for name, fig in figures.items()]


def _images(ax_row, images, title=None):
    """One 8x8 digit per axis, without ticks; ``title`` labels the row."""
    for ax, img in zip(ax_row, images):
        ax.imshow(img.reshape(8, 8), cmap="gray_r", vmin=0, vmax=1)
        ax.set_xticks([])
        ax.set_yticks([])
    if title is not None:
        ax_row[0].set_ylabel(title, rotation=0, ha="right", va="center", fontsize=9)


def reconstructions_figure(originals: Array, rows: Sequence[tuple[str, Array]]) -> Figure:
    """Test digits in the first row, then one row of reconstructions per ``(label, images)``."""
    n = len(originals)
    fig, axes = plotting.subplots(1 + len(rows), n, figsize=(n * 0.9 + 1.5, (1 + len(rows)) * 0.95))
    _images(axes[0], originals, "original")
    for ax_row, (label, images) in zip(axes[1:], rows):
        _images(ax_row, images, label)
    fig.suptitle("Test digits and their reconstructions", fontsize=10)
    fig.tight_layout()
    return fig


def codes_figure(points: Array, labels: Array, title: str, axis_labels: Sequence[str]) -> Figure:
    """A scatter of 2-D ``points`` coloured by digit, each digit's name at its centroid."""
    fig, ax = plotting.subplots(figsize=(5.2, 4.6))
    sc = ax.scatter(points[:, 0], points[:, 1], c=labels, cmap="tab10", s=12, alpha=0.85)
    for digit in range(10):
        sel = labels == digit
        if sel.any():
            ax.text(
                points[sel, 0].mean(),
                points[sel, 1].mean(),
                str(digit),
                fontsize=13,
                weight="bold",
                ha="center",
                va="center",
                bbox={"boxstyle": "round", "fc": "white", "alpha": 0.7, "lw": 0},
            )
    fig.colorbar(sc, ax=ax, ticks=range(10), label="digit")
    ax.set_xlabel(axis_labels[0])
    ax.set_ylabel(axis_labels[1])
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig


def denoising_figure(rows: Sequence[dict], examples: Sequence[tuple[str, Array]]) -> Figure:
    """The error against the noise std (the results' ``rows``), and ``(label, images)`` rows."""
    fig = plotting.figure((11, 4.6))
    grid = fig.add_gridspec(
        len(examples), 10, width_ratios=[6, 1.2] + [1] * 8, wspace=0.08, hspace=0.08
    )
    ax = fig.add_subplot(grid[:, 0])
    levels = [row["noise"] for row in rows]
    for key, label, style in (
        ("noisy_input", "noisy input", "k--"),
        ("clean_trained", "trained on clean", "-o"),
        ("noise_trained", "trained on noisy", "-s"),
    ):
        ax.plot(levels, [row[key] for row in rows], style, label=label)
    ax.set_xlabel("noise std")
    ax.set_ylabel("MSE against the clean image")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    for r, (title, images) in enumerate(examples):
        name = fig.add_subplot(grid[r, 1])
        name.axis("off")
        name.text(0.9, 0.5, title, ha="right", va="center", fontsize=9)
        _images([fig.add_subplot(grid[r, 2 + c]) for c in range(len(images))], images)
    fig.suptitle("Denoising: error against noise, and examples at the training noise", fontsize=10)
    fig.subplots_adjust(left=0.07, right=0.99, bottom=0.12, top=0.9)
    return fig


def classification_figure(results: dict) -> Figure:
    """Test accuracy of a logistic regression on the codes, against the code size."""
    sizes = results["settings"]["latent_sizes"]
    accuracy = results["classification"]
    fig, ax = plotting.subplots(figsize=(5, 3.5))
    ax.plot(sizes, [accuracy[str(k)] for k in sizes], "-o", label="autoencoder code")
    ax.axhline(accuracy[RAW], color="k", ls="--", label=RAW)
    ax.set_xscale("log", base=2)
    ax.set_xticks(sizes, [str(k) for k in sizes])
    ax.set_xlabel("code size")
    ax.set_ylabel("test accuracy (logistic regression)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig
