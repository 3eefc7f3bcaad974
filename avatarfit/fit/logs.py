"""What a fit job writes per fitted batch for people to look at: PNG strips and
TensorBoard entries (per-frame metrics, objective curves, the strips)."""

from __future__ import annotations

import math
from pathlib import Path

from .._io import write_png
from .optimize import FitResult
from .strips import fit_strip

__all__ = ["write_outputs"]


def write_outputs(out: Path, writer, target, result: FitResult, position: int) -> None:
    """PNG strips and TensorBoard entries of one fitted batch (frames at ``position`` onwards)."""
    for j, name in enumerate(result.names):
        strip = fit_strip(target, result, j)
        write_png(out / "strips" / f"{name.replace('/', '_')}.png", strip)
        step = position + j
        writer.add_image("strips", strip, step)
        for k, v in result.metrics.items():
            if math.isfinite(float(v[j])):
                writer.add_scalar(f"frames/{k}", float(v[j]), step)
        writer.add_scalar("frames/steps", int(result.steps[j]), step)
        curve = result.objective[:, j]
        for s, e in enumerate(curve.tolist()):
            if math.isfinite(e):
                writer.add_scalar(f"objective/{name}", e, s)
