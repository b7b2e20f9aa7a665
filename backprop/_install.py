"""How to install an optional part: the one wording of every install hint.

The distribution on the package index is ``backprop-nn`` (the name ``backprop``
there belongs to another project); the import name and the command stay
``backprop``.
"""

from __future__ import annotations

__all__ = ["DISTRIBUTION", "install_hint"]

#: the name on the package index (``pip install backprop-nn``)
DISTRIBUTION = "backprop-nn"


def install_hint(extra: str | None = None) -> str:
    """The hint that installs ``extra``, from the index and from a checkout."""
    if extra is None:
        return f"pip install {DISTRIBUTION} (from a checkout: pip install -e .)"
    return f"pip install '{DISTRIBUTION}[{extra}]' (from a checkout: pip install -e '.[{extra}]')"
