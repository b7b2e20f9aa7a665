"""``python -m backprop``: the ``backprop`` command (see :mod:`backprop.cli`)."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
