"""The autoencoder study (the assignment's part 5), end to end.

Run: ``python -m backprop.experiments.autoencoder --out DIR``.

Objective: find out what a small autoencoder trained on scikit-learn's 8x8
digits learns, through six questions: how well it reconstructs as the code
shrinks (and with which cost), whether its codes cluster by digit, what the
code space looks like, whether it removes noise, whether its codes are good
features for a classifier, and what tying the decoder's weights changes.

Every run is seeded (weights, batch order, noise, k-means, t-SNE), so the
same command reproduces the same numbers and figures. It writes
``results.json`` (every measure, and each claim with its verdict),
``report.md`` (written from ``results.json`` alone) and PNG figures into ``--out``.

The parts: ``study`` (training, measures, verdicts), ``report`` (the markdown,
also a command that rewrites a report from a ``results.json``),
``figures`` (the PNGs, through :mod:`backprop.plotting`), ``command`` (this
command line and :func:`run`, which ties them together).
"""

# the report module is left out, so that ``python -m ...autoencoder.report`` runs it cleanly
from .command import main, run
from .study import FULL, QUICK, Settings, claims, reconstruction_errors, train

__all__ = ["FULL", "QUICK", "Settings", "claims", "main", "reconstruction_errors", "run", "train"]
