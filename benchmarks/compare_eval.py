"""Compare two ``avatarfit evaluate`` output folders cell by cell: every number of every
cell's JSON and every array of every fit cell's ``fits.npz``, timings aside. Prints the
cells that differ and a one-line verdict; exit status 1 when anything differs.

    python benchmarks/compare_eval.py OUT_BEFORE OUT_AFTER

Used to show that a refactor changes no result: run ``avatarfit evaluate --config
configs/eval/tiny.yaml`` before and after, and compare.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

TIMINGS = ("seconds", "seconds_per_frame")


def _numbers(doc):
    """A cell's JSON without timings and without its spec (which names the folders)."""
    if isinstance(doc, dict):
        return {k: _numbers(v) for k, v in doc.items() if k not in TIMINGS and k != "spec"}
    if isinstance(doc, list):
        return [_numbers(v) for v in doc]
    return doc


def _same_arrays(a: np.ndarray, b: np.ndarray) -> bool:
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    return bool(np.array_equal(a, b, equal_nan=a.dtype.kind == "f"))


def compare(before: Path, after: Path) -> list[str]:
    """The differences between two evaluation folders, one line each."""
    found = []
    cells = sorted(p.relative_to(before) for p in before.rglob("cells/**/*.json"))
    if not cells:
        raise FileNotFoundError(f"{before}: no cells (*/cells/**/*.json); not an evaluation folder")
    for rel in cells:
        other = after / rel
        if not other.is_file():
            found.append(f"{rel}: missing in {after}")
        elif _numbers(json.loads((before / rel).read_text())) != _numbers(json.loads(other.read_text())):
            found.append(f"{rel}: numbers differ")
    for rel in sorted(p.relative_to(before) for p in before.rglob("cells/**/fits.npz")):
        if not (after / rel).is_file():
            found.append(f"{rel}: missing in {after}")
            continue
        with np.load(before / rel) as a, np.load(after / rel) as b:
            for key in sorted(set(a.files) | set(b.files)):
                if key == "seconds":
                    continue
                if key not in a.files or key not in b.files or not _same_arrays(a[key], b[key]):
                    found.append(f"{rel}: array {key} differs")
    return found


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("before", type=Path)
    p.add_argument("after", type=Path)
    args = p.parse_args()
    found = compare(args.before, args.after)
    cells = len(list(args.before.rglob("cells/**/*.json")))
    fits = len(list(args.before.rglob("cells/**/fits.npz")))
    for line in found:
        print(line)
    print(f"{cells} cells and {fits} fits.npz compared (timings aside): "
          + ("identical" if not found else f"{len(found)} differences"))
    sys.exit(1 if found else 0)


if __name__ == "__main__":
    main()
