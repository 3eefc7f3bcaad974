"""Fitting the frames of a segment in order, each started from the previous solution."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import math

import numpy as np
import torch

from ..avatar import Avatar
from ..data.capture import Capture
from .optimize import FitConfig, FitResult, fit

__all__ = ["fit_sequence", "jitter", "sequence_jitter"]


def jitter(verts: torch.Tensor) -> float:
    """Mean frame-to-frame vertex motion of a sequence of meshes ``(T, V, 3)`` (their unit, mm)."""
    if verts.ndim != 3 or verts.shape[0] < 2:
        raise ValueError(f"verts: expected a sequence (T >= 2, V, 3), got {tuple(verts.shape)}")
    return float((verts[1:] - verts[:-1]).norm(dim=-1).mean())


def fit_sequence(avatar: Avatar, target, config: FitConfig = FitConfig(), progress=None,
                 init: torch.Tensor | dict[str, torch.Tensor] | None = None,
                 segments: Sequence[str] | None = None) -> tuple[FitResult, dict]:
    """Fit the target's frames in order, each warm-started from the previous frame of its
    segment; with ``config.smoothness`` > 0 also pulled towards it.

    ``segments`` labels each frame (``None``: all one segment). Several segments are fitted
    in lockstep: the t-th frame of every segment in one batch, so a batch of sequences
    costs about what one does on hardware that batches (frames are independent in a fit,
    so each segment's result equals its fit alone, up to rounding).

    ``init``: the code ``(1, L)`` of the frame before the first one (a segment fitted in
    chunks), or ``{segment: (1, L)}`` for several; a segment without one starts from the
    prior's mean. The result's ``z_start`` holds the warm starts; its ``z_init`` (and
    the ``_init`` metrics :func:`~avatarfit.fit.score.score_fit` computes from it) is the
    prior's mean for every frame (what the frame would start from alone).

    Returns:
        The results of all frames (as one :class:`FitResult`, in the target's order) and
        ``{"jitter_mm": fitted, "jitter_mm_truth": of the tracked meshes (with ground
        truth)}``, each the mean over segments of two frames or more.
    """
    labels = [""] * target.batch if segments is None else [str(s) for s in segments]
    if len(labels) != target.batch:
        raise ValueError(f"segments: expected one label per frame ({target.batch}), got {len(labels)}")
    tracks: dict[str, list[int]] = {}
    for i, label in enumerate(labels):
        tracks.setdefault(label, []).append(i)
    if isinstance(init, dict):
        unknown = sorted(set(init) - set(tracks))
        if unknown:
            raise ValueError(f"init: codes for segments the target does not hold: {unknown}")
        prev = {k: v.detach() for k, v in init.items()}
    elif init is not None:
        if len(tracks) != 1:
            raise ValueError(f"init: one code (1, L) is for one segment; this target holds {len(tracks)}: pass "
                             "{segment: code}")
        prev = {labels[0]: init.detach()}
    else:
        prev = {}
    slots: list[tuple[FitResult, int] | None] = [None] * target.batch
    done = 0
    for t in range(max(len(rows) for rows in tracks.values())):
        now = [(label, rows[t]) for label, rows in tracks.items() if len(rows) > t]
        # frames with a previous code and frames without (no smoothness) fit apart
        for warm in (True, False):
            group = [(label, i) for label, i in now if (label in prev) == warm]
            if not group:
                continue
            cfg = config if warm else dataclasses.replace(config, smoothness=0.0)
            start = torch.cat([prev[label] for label, _ in group]) if warm else None
            r = fit(avatar, target.select([i for _, i in group]), cfg, init=start, previous=start)
            for j, (label, i) in enumerate(group):
                slots[i] = (r, j)
                prev[label] = r.z[j:j + 1]
            done += len(group)
            if progress is not None:
                progress(done)
    merged = _concat([_take(r, j) for r, j in slots])
    stats = {"jitter_mm": _mean([jitter(merged.verts[rows]) for rows in tracks.values() if len(rows) > 1])}
    if target.truth is not None and target.batch > 1:
        stats["jitter_mm_truth"] = _mean([jitter(target.truth.verts[rows]) for rows in tracks.values()
                                          if len(rows) > 1])
    return merged, stats


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else float("nan")


def _take(result: FitResult, j: int) -> FitResult:
    """Frame ``j`` of a result, as a result of its own."""
    tensors = {f.name: (None if getattr(result, f.name) is None else getattr(result, f.name)[j:j + 1])
               for f in dataclasses.fields(FitResult) if f.name not in ("names", "objective", "metrics", "seconds")}
    return FitResult(names=(result.names[j],), objective=result.objective[:, j:j + 1],
                     metrics={k: v[j:j + 1] for k, v in result.metrics.items()},
                     seconds=result.seconds / result.batch, **tensors)


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


@torch.no_grad()
def sequence_jitter(avatar: Avatar, capture: Capture | None, merged: dict[str, np.ndarray]) -> dict[str, float]:
    """Mean over segments of the fitted and the tracked meshes' frame-to-frame motion (mm;
    the tracked meshes' NaN without a capture)."""
    names = [str(n) for n in merged["names"]]
    fitted, truth = [], []
    for seg in dict.fromkeys(n.split("/")[0] for n in names):
        idx = [i for i, n in enumerate(names) if n.split("/")[0] == seg]
        if len(idx) < 2:
            continue
        z = torch.from_numpy(merged["z"][idx]).to(avatar.vert_mean.device)
        fitted.append(jitter(avatar.geometry(z).cpu()))
        if capture is not None and all(capture.layout.mesh_bin(seg, names[i].split("/", 1)[1]).is_file() for i in idx):
            truth.append(jitter(torch.stack([capture.vertices(seg, names[i].split("/", 1)[1]) for i in idx])))
    if not fitted:
        return {"jitter_mm": math.nan, "jitter_mm_truth": math.nan}
    return {"jitter_mm": float(np.mean(fitted)), "jitter_mm_truth": float(np.mean(truth)) if truth else math.nan}
