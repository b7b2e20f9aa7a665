"""Moved to :mod:`backprop.io.ondisk` (file formats are not array backends); this name stays an
alias of that module."""

import importlib
import sys

sys.modules[__name__] = importlib.import_module("backprop.io.ondisk")
