"""Reproducible experiments on the bundled digits (the seed's networks, the autoencoder study)."""
