"""Reproducible experiments on the bundled digits (the assignment's networks, the autoencoder
study)."""
