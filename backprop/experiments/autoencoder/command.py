"""The study's command line, and :func:`run`: the study, then its files."""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from . import __doc__ as DESCRIPTION
from . import study
from .study import FULL, QUICK, Settings

if TYPE_CHECKING:
    from ..._typing import FilePath


def run(out: FilePath, s: Settings, seed: int = 0, progress: bool = True) -> dict:
    """Run the study with settings ``s`` and write its files into ``out``; returns the results.

    ``results.json`` is written first; the report is then written from what
    that file holds, and the figures from it and the study's pictures.
    """
    from .figures import draw  # matplotlib, only when figures are drawn
    from .report import report

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    results, pictures = study.run(s, seed=seed, progress=progress)
    draw(out, results, pictures)
    results["seconds"] = time.perf_counter() - t_start
    text = json.dumps(results, indent=1)
    (out / "results.json").write_text(text)
    (out / "report.md").write_text(report(json.loads(text)))
    return results


def main(argv: Sequence[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(
        prog="python -m backprop.experiments.autoencoder",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--out", type=Path, required=True, help="directory for report.md, results.json, figures"
    )
    parser.add_argument(
        "--quick", action="store_true", help="a reduced run (seconds) that produces every file"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    results = run(
        args.out, QUICK if args.quick else FULL, seed=args.seed, progress=not args.no_progress
    )
    print(f"wrote {args.out / 'report.md'} ({results['seconds']:.0f} s)")
    return results
