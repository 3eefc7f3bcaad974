"""The summary of fitted frames: the mean of every per-frame metric, steps and seconds (one
definition for :meth:`FitResult.summary <avatarfit.fit.optimize.FitResult.summary>` and
``metrics.json``)."""

from __future__ import annotations

import math
from typing import Any, Mapping

import numpy as np

__all__ = ["SUMMARY_KEYS", "summarise"]

#: Keys every summary has (NaN, written as null in ``metrics.json``, where they do not apply).
SUMMARY_KEYS = ("frames", "psnr_init", "psnr", "ssim", "geom_mm_init", "geom_mm", "steps_mean", "seconds_per_frame")


def summarise(metrics: Mapping[str, Any], steps: Any, failed: Any, seconds: Any) -> dict[str, Any]:
    """Means over frames.

    Args:
        metrics: name -> ``(B,)`` per-frame values (arrays or tensors; NaN where a frame has none).
        steps: ``(B,)`` Adam steps per frame.
        failed: ``(B,)`` booleans, frames whose objective became NaN.
        seconds: ``(B,)`` seconds per frame.

    Returns:
        ``{"frames": B, metric: mean over the frames where it is finite (NaN if none), ...,
        "steps_mean", "seconds_per_frame", "failed": count}``, metrics in name order, every
        key of :data:`SUMMARY_KEYS` present.
    """
    steps, failed, seconds = (np.asarray(x) for x in (steps, failed, seconds))
    s: dict[str, Any] = {"frames": len(steps)}
    for k in sorted(metrics):
        v = np.asarray(metrics[k])
        v = v[np.isfinite(v)]
        s[k] = float(v.mean()) if v.size else math.nan
    for k in SUMMARY_KEYS:
        s.setdefault(k, math.nan)
    s["steps_mean"] = float(steps.mean())
    s["seconds_per_frame"] = float(seconds.mean())
    s["failed"] = int(failed.sum())
    return s
