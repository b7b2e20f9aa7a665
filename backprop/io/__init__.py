"""File formats and readers: host-side input and output, apart from the array backends.

``readers``: data files (IDX/MNIST, USPS text and CSV) with size limits and
checks; ``ondisk``: memory-mapped ``.npy`` files read a block of rows at a
time; ``npz``: safe ``.npz`` reading and atomic writing. These modules use
NumPy for bytes on the host only (parsing, files, memory maps); the arrays
that the library computes with come from :mod:`backprop.backends`.
"""

__all__ = ["npz", "ondisk", "readers"]
