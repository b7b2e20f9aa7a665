"""Compare benchmark runs: ``python -m benchmarks.compare LABEL=results.json ...``.

Prints, as Markdown, for every workload and batch size:

- the training throughput of each backprop contender in each run, and the
  ratio of the last run to the first (before/after a change: run the same
  benchmark on both versions of the library, one after the other);
- the ratio of each backprop contender to native PyTorch in each run, which
  is what must hold from one version to the next (a ratio within one run
  cancels most of the machine's drift).

Reads both the current ``results.json`` layout and the one before the
roofline columns (contenders directly under each batch).
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

TORCH = "torch (native)"


def _contenders(bdata: dict) -> dict:
    return bdata.get("contenders", bdata)


def _sps(bdata: dict, name: str, mode: str = "train"):
    e = _contenders(bdata).get(name)
    if not e or not e.get(mode):
        return None
    return e[mode]["samples_per_s"]


def load(spec: str):
    label, _, path = spec.partition("=")
    return label, json.loads(Path(path or label).read_text())


def _cells(runs, wname, batch, fn):
    out = []
    for _, r in runs:
        bdata = r["workloads"].get(wname, {}).get("batches", {}).get(batch)
        out.append(fn(bdata) if bdata else None)
    return out


def _fmt(v, pattern="{:,.0f}"):
    return "-" if v is None else pattern.format(v)


def throughput_table(runs, names) -> str:
    labels = [label for label, _ in runs]
    lines = [
        "| workload | batch | contender | "
        + " | ".join(labels)
        + f" | {labels[-1]} / {labels[0]} |",
        "| --- | --- | --- |" + " --- |" * (len(labels) + 1),
    ]
    for wname, batch in _keys(runs):
        for n in names:
            vals = _cells(runs, wname, batch, lambda b, n=n: _sps(b, n))
            if all(v is None for v in vals):
                continue
            ratio = vals[-1] / vals[0] if vals[0] and vals[-1] else None
            lines.append(
                f"| {wname} | {batch} | {n} | "
                + " | ".join(_fmt(v) for v in vals)
                + f" | {_fmt(ratio, '{:.2f}x')} |"
            )
    return "\n".join(lines)


def torch_ratio_table(runs, names) -> str:
    labels = [label for label, _ in runs]
    lines = [
        "| workload | batch | ratio to native PyTorch | " + " | ".join(labels) + " |",
        "| --- | --- | --- |" + " --- |" * len(labels),
    ]
    for wname, batch in _keys(runs):
        for n in names:

            def ratio(b, n=n):
                x, t = _sps(b, n), _sps(b, TORCH)
                return x / t if x and t else None

            vals = _cells(runs, wname, batch, ratio)
            if all(v is None for v in vals):
                continue
            lines.append(
                f"| {wname} | {batch} | {n} | " + " | ".join(_fmt(v, "{:.2f}") for v in vals) + " |"
            )
    return "\n".join(lines)


def spread(values) -> str:
    """``median (min-max)`` of a list of numbers."""
    values = [v for v in values if v is not None]
    if not values:
        return "-"
    return f"{statistics.median(values):.2f} ({min(values):.2f}-{max(values):.2f})"


def _keys(runs):
    keys = []
    for _, r in runs:
        for wname, wdata in r["workloads"].items():
            for batch in wdata["batches"]:
                if (wname, batch) not in keys:
                    keys.append((wname, batch))
    return keys


def main(argv=None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if not argv:
        raise SystemExit(__doc__)
    runs = [load(a) for a in argv]
    names = []
    for _, r in runs:
        for wdata in r["workloads"].values():
            for bdata in wdata["batches"].values():
                names += [
                    n for n in _contenders(bdata) if n.startswith("backprop") and n not in names
                ]
    print("### Training throughput (samples/s)\n")
    print(throughput_table(runs, names))
    print("\n### Ratio to native PyTorch (training step)\n")
    print(torch_ratio_table(runs, names))


if __name__ == "__main__":
    main()
