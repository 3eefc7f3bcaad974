"""A fit job's partial results: one ``parts/NNNNN.npz`` per finished batch (what a re-run
reads back instead of fitting again), merged into ``fits.npz`` and the per-frame records
and summary of ``metrics.json``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .._io import atomic_path
from ..data.capture import FrameRef
from ..errors import FormatError
from .optimize import FitResult
from .summary import summarise

__all__ = ["in_sequence_order", "load_part", "merge_parts", "records", "save_part", "summary"]


def _fill_forward(curves: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(S, B)`` objective curves, NaN after a frame stopped -> the last finite value
    repeated, and the number of values recorded per frame (so no NaN is written)."""
    out = curves.copy()
    finite = np.isfinite(out)
    counts = finite.sum(0)
    for s in range(1, out.shape[0]):
        out[s] = np.where(finite[s], out[s], out[s - 1])
    return np.nan_to_num(out, nan=0.0, posinf=0.0, neginf=0.0), counts


def save_part(path: Path, result: FitResult, seconds: float) -> dict[str, np.ndarray]:
    """Write one batch's results; returns them as :func:`load_part` would read them."""
    objective, recorded = _fill_forward(result.objective.numpy())
    arrays = {"names": np.array(result.names), "z": result.z.cpu().numpy(), "z_init": result.z_init.cpu().numpy(),
              "z_start": result.z_start.cpu().numpy(),
              "steps": result.steps.numpy(), "failed": result.failed.numpy(),
              "data_term": np.nan_to_num(result.data_term.numpy(), nan=0.0), "objective": objective,
              "objective_steps": recorded, "seconds": np.full(result.batch, seconds / result.batch)}
    if result.headset_R is not None:
        arrays["headset_R"] = result.headset_R.cpu().numpy()
        arrays["headset_t"] = result.headset_t.cpu().numpy()
    if result.photometric is not None:
        arrays["photometric"] = result.photometric.cpu().numpy()
    for k, v in result.metrics.items():
        arrays[f"metric_{k}"] = v.numpy()
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)
    return arrays


#: Arrays every part file holds (:func:`save_part`; ``z_start`` is newer and optional).
_PART_KEYS = ("names", "z", "z_init", "steps", "failed", "data_term", "objective", "objective_steps", "seconds")


def load_part(path: Path) -> dict[str, np.ndarray]:
    """A part file, checked: every array, one entry per frame (else ``FormatError``)."""
    try:
        with np.load(path, allow_pickle=False) as data:
            part = {k: data[k] for k in data.files}
    except Exception as exc:  # noqa: BLE001 - numpy raises many kinds on a damaged file
        raise FormatError(path, f"unreadable partial result ({type(exc).__name__}: {exc}); delete it to fit "
                          "its frames again") from None
    missing = [k for k in _PART_KEYS if k not in part]
    n = len(part["names"]) if "names" in part and part["names"].ndim == 1 else -1
    short = [k for k in _PART_KEYS if k in part and k != "objective" and (part[k].ndim == 0 or len(part[k]) != n)]
    for k, ndim, axis in (("objective", 2, 1), ("z", 2, 0), ("z_init", 2, 0)):
        if k in part and k not in short and (part[k].ndim != ndim or part[k].shape[axis] != n):
            short.append(k)
    if missing or short:
        what = f"lacks {', '.join(missing)}" if missing else f"{', '.join(short)} do not hold one entry per frame"
        raise FormatError(path, f"not a complete partial result ({what}); delete it to fit its frames again")
    return part


def merge_parts(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Part files' arrays concatenated over frames (``objective`` padded with its last value)."""
    keys = [k for k in parts[0] if k != "objective" and all(k in p for p in parts)]
    merged = {k: np.concatenate([p[k] for p in parts]) for k in keys}
    # a metric some batches lack (no ground truth for their frames) is NaN for their frames
    metrics = dict.fromkeys(k for p in parts for k in p if k.startswith("metric_") and k not in merged)
    for k in metrics:
        merged[k] = np.concatenate([p[k] if k in p else np.full(len(p["names"]), np.nan) for p in parts])
    steps = max(p["objective"].shape[0] for p in parts)
    obj = np.zeros((steps, len(merged["names"])), dtype=np.float32)
    col = 0
    for p in parts:
        o = p["objective"]
        obj[: o.shape[0], col: col + o.shape[1]] = o
        obj[o.shape[0]:, col: col + o.shape[1]] = o[-1]  # the last value repeats, as within a part
        col += o.shape[1]
    merged["objective"] = obj
    return merged


def in_sequence_order(merged: dict[str, np.ndarray], refs: list[FrameRef]) -> dict[str, np.ndarray]:
    """A sequence job's merged outputs (batches of several segments) in the frames' order:
    segment by segment, each in order."""
    order = [f"{r.segment}/{r.frame}" for seg in dict.fromkeys(r.segment for r in refs) for r in refs
             if r.segment == seg]
    where = {name: i for i, name in enumerate(order)}
    perm = np.argsort([where[str(n)] for n in merged["names"]], kind="stable")
    frames = len(merged["names"])
    return {k: (v[:, perm] if k == "objective" else v[perm] if v.ndim and v.shape[0] == frames else v)
            for k, v in merged.items()}


def records(merged: dict[str, np.ndarray]) -> list[dict[str, Any]]:
    """One ``metrics.json`` record per frame: its name, metrics, steps, failure, data term, seconds."""
    metrics = sorted(k[len("metric_"):] for k in merged if k.startswith("metric_"))
    out = []
    for i, name in enumerate(merged["names"]):
        seg, _, frame = str(name).partition("/")
        rec = {"name": str(name), "segment": seg, "frame": frame}
        rec.update({m: float(merged[f"metric_{m}"][i]) for m in metrics})
        rec.update(steps=int(merged["steps"][i]), failed=bool(merged["failed"][i]),
                   data_term=float(merged["data_term"][i]), seconds=float(merged["seconds"][i]))
        out.append(rec)
    return out


def summary(merged: dict[str, np.ndarray]) -> dict[str, Any]:
    """The summary of merged part files (:func:`~avatarfit.fit.summary.summarise`)."""
    metrics = {k[len("metric_"):]: v for k, v in merged.items() if k.startswith("metric_")}
    return summarise(metrics, merged["steps"], merged["failed"], merged["seconds"])
