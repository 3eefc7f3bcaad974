"""Fitting the frames of a segment in order, each started from the previous solution."""

from __future__ import annotations

import dataclasses

import torch

from ..avatar import Avatar
from .optimize import FitConfig, FitResult, fit

__all__ = ["fit_sequence", "jitter"]


def jitter(verts: torch.Tensor) -> float:
    """Mean frame-to-frame vertex motion of a sequence of meshes ``(T, V, 3)`` (their unit, mm)."""
    if verts.ndim != 3 or verts.shape[0] < 2:
        raise ValueError(f"verts: expected a sequence (T >= 2, V, 3), got {tuple(verts.shape)}")
    return float((verts[1:] - verts[:-1]).norm(dim=-1).mean())


def fit_sequence(avatar: Avatar, target, config: FitConfig = FitConfig(), progress=None,
                 init: torch.Tensor | None = None) -> tuple[FitResult, dict]:
    """Fit the target's frames in order (one segment), each warm-started from the previous
    frame's code; with ``config.smoothness`` > 0 also pulled towards it.

    ``init`` ``(1, L)``: the code of the frame before the first one (a segment fitted in
    chunks); without it the first frame starts from the prior's mean. The result's
    ``z_start`` holds the warm starts; its ``z_init`` and ``_init`` metrics are the prior's
    mean for every frame (what the frame would start from alone).

    Returns:
        The results of all frames (as one :class:`FitResult`) and ``{"jitter_mm": fitted,
        "jitter_mm_truth": of the tracked meshes (with ground truth)}``.
    """
    results = []
    prev = None if init is None else init.detach()
    for i in range(target.batch):
        one = target.select([i])
        cfg = config if prev is not None else dataclasses.replace(config, smoothness=0.0)
        r = fit(avatar, one, cfg, init=prev, previous=prev)
        results.append(r)
        prev = r.z
        if progress is not None:
            progress(i + 1)
    merged = _concat(results)
    stats = {"jitter_mm": jitter(merged.verts) if target.batch > 1 else float("nan")}
    if target.truth is not None and target.batch > 1:
        stats["jitter_mm_truth"] = jitter(target.truth.verts)
    return merged, stats


def _concat(results: list[FitResult]) -> FitResult:
    def cat(name):
        values = [getattr(r, name) for r in results]
        return None if values[0] is None else torch.cat(values)

    steps = max(r.objective.shape[0] for r in results)
    objective = torch.full((steps, sum(r.batch for r in results)), float("nan"))
    col = 0
    for r in results:
        objective[: r.objective.shape[0], col: col + r.batch] = r.objective
        col += r.batch
    tensors = {f.name: cat(f.name) for f in dataclasses.fields(FitResult)
               if f.name not in ("names", "objective", "metrics", "seconds")}
    metrics = {k: torch.cat([r.metrics[k] for r in results]) for k in results[0].metrics}
    return FitResult(names=sum((r.names for r in results), ()), objective=objective, metrics=metrics,
                     seconds=sum(r.seconds for r in results), **tensors)
