"""Fitting many frames of a capture into an output folder (what ``avatarfit fit`` runs):
batches, the optional hyper-parameter search, sequences, resumable partial results, PNG
strips, TensorBoard and the final ``fits.npz`` and ``metrics.json``.

Output folder::

    config.yaml        the job and the resolved fit settings (after --search: the chosen pair)
    search.json        the grid and the scores (with search)
    parts/NNNNN.npz    results of each finished batch (re-running the job skips them)
    strips/SEG_FRAME.png   target | fit in the target's view | frontal before | frontal fit | truth | error x4
    tb/                TensorBoard: objective curves, per-frame metrics, strips (slider = frame)
    fits.npz           every frame: names, z, z_init (the prior's mean), z_start (where the fit began:
                       z_init, or in sequence mode the previous frame's z), headset pose, the
                       photometric model per HMC view (with it: gain, bias[, light x, y, z]), steps,
                       failed, metrics, objective
                       curves (the last value repeats after a frame stopped; objective_steps counts
                       the values recorded). Never NaN: a frame whose objective became NaN is
                       marked failed and keeps its best code.
    metrics.json       {"summary": {...}, "frames": [{...}, ...]} (NaN written as null)
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import yaml

from .._io import atomic_path, write_png, write_text_atomic
from ..avatar import Avatar
from ..config import to_dict
from ..data.capture import Capture, FrameRef
from ..data.selection import SPLIT_WORDS, SPLITS, check_segment_names, select_frames, select_refs
from ..data.stats import identity_distance, read_stats
from ..errors import FitFailedError, FormatError
from .optimize import FitConfig, FitResult, fit
from .recorded import RecordedHmc
from .search import search_hyperparameters
from .sequence import fit_sequence, jitter
from .sources import TargetSource
from .strips import fit_strip
from .targets import TARGET_KINDS

__all__ = ["FitJob", "FitReport", "RECORDED_FIT", "run_fit_job", "heldout_frames", "split_frames_of", "job_dict",
           "job_differences", "json_safe", "saved_job", "spread",
           "resolve_device", "SUMMARY_KEYS"]

#: The fit settings ``avatarfit fit --hmc-dir`` uses unless told otherwise: a recording's
#: exposure and black level differ per camera (gain and bias per view), its IR light shades
#: the face (a Lambertian light per view), and what is behind the face is no rendering's
#: background (only the starting face's pixels are scored); its cameras are not quite the
#: rig's (the headset pose is fitted too). Chosen on validation frames of one subject among
#: seven ways of fitting a recording (benchmarks/results/recorded_hmc/).
RECORDED_FIT = {"photometric": True, "shading": True, "hmc_pixels": "face", "fit_headset": True}

#: Keys every ``metrics.json`` summary has (NaN, written as null, where they do not apply).
SUMMARY_KEYS = ("frames", "psnr_init", "psnr", "ssim", "geom_mm_init", "geom_mm", "steps_mean", "seconds_per_frame")


@dataclass(frozen=True)
class FitJob:
    """What to fit and how (saved as ``config.yaml`` in the output folder).

    Attributes:
        run: run folder of ``avatarfit train`` (its ``avatar.pt``) or an avatar file.
        capture: capture folder whose frames are fitted; with ``hmc_dir`` optional (it then
            adds ground truth for the frames it has), ``None`` without one.
        hmc_dir: folder holding recorded HMC views in ``hmc/``
            (:class:`~avatarfit.fit.recorded.RecordedHmc`): HMC targets are read from it
            instead of rendered from the capture; without ``capture`` its frames are the
            ones fitted (``frames`` then selects among them).
        rig: rig file of the recording instead of ``hmc_dir/hmc/rig.txt``.
        target: ``frontal``, ``masked``, ``hmc`` or ``keypoints``.
        frames: ``test`` (the avatar's test frames: what results are reported on),
            ``validation`` (the frames settings are chosen on), ``train``, each also as
            ``NAME:N`` (N of them, spread evenly); ``heldout`` is ``test``; or a spec of
            :func:`~avatarfit.data.selection.select_frames` (positions ``N``, ``A:B``,
            segment names; empty: every frame).
        batch: frames fitted together (one code each; independent objectives and stops).
        sequence: fit each segment's frames in order, warm-starting each from the previous.
        search: pick lr and lambda_L on the avatar's validation frames (the first batch of
            them; the paper's grid unless ``grid``), never on the fitted frames.
        grid: ``(learning rates, latent weights)`` searched instead of the paper's grid.
        search_frames: validation frames the search fits (the first ones; 0: a batch).
        pose_noise_rot, pose_noise_trans: headset pose noise (degrees, mm) of HMC targets.
        seed: seed of the pose noise (each frame's noise depends on it and the frame).
        device: ``cpu``, ``cuda``, ``cuda:N`` or ``auto``.
        fit: the fit's settings (lr, lambda_L, steps, headset pose, smoothness).
    """

    run: str
    capture: str | None = None
    target: str = "hmc"
    frames: str = "test"
    batch: int = 8
    sequence: bool = False
    search: bool = False
    pose_noise_rot: float = 0.0
    pose_noise_trans: float = 0.0
    seed: int = 0
    device: str = "auto"
    fit: FitConfig = FitConfig()
    grid: tuple[tuple[float, ...], tuple[float, ...]] | None = None
    search_frames: int = 0
    hmc_dir: str | None = None
    rig: str | None = None

    def __post_init__(self) -> None:
        if self.capture is None and self.hmc_dir is None:
            raise ValueError("capture (--capture): give the capture whose frames are fitted, or recorded HMC views "
                             "(hmc_dir, --hmc-dir)")
        if self.hmc_dir is not None and self.target != "hmc":
            raise ValueError(f"hmc_dir (--hmc-dir): recorded HMC views are fitted with target hmc, not {self.target}")
        if self.rig is not None and self.hmc_dir is None:
            raise ValueError("rig (--rig): a rig file goes with recorded HMC views (hmc_dir, --hmc-dir)")
        if self.target in TARGET_KINDS:  # the resolved lambda_L is what config.yaml records
            object.__setattr__(self, "fit", self.fit.for_target(self.target))
        if self.grid is not None:
            grid = tuple(tuple(float(x) for x in g) for g in self.grid)
            if len(grid) != 2 or not grid[0] or not grid[1] or min(grid[0]) <= 0 or min(grid[1]) < 0:
                raise ValueError(f"grid: expected (learning rates > 0, latent weights >= 0), got {self.grid}")
            object.__setattr__(self, "grid", grid)
        if self.search_frames < 0:
            raise ValueError(f"search_frames: expected 0 (the first batch) or more frames, got {self.search_frames}")
        name, _, count = self.frames.partition(":")
        if name in SPLIT_WORDS and count and (not count.isdigit() or int(count) < 1):
            raise ValueError(f"frames: expected {name}:N with N >= 1 frames, got {self.frames!r}")
        if self.target not in TARGET_KINDS:
            raise ValueError(f"target: expected one of {', '.join(TARGET_KINDS)}, got {self.target!r}")
        if self.batch < 1:
            raise ValueError(f"batch: expected at least 1 frame, got {self.batch}")
        if self.pose_noise_rot < 0 or self.pose_noise_trans < 0:
            raise ValueError(f"pose noise: expected values >= 0, got {self.pose_noise_rot} deg, "
                             f"{self.pose_noise_trans} mm")
        if (self.pose_noise_rot > 0 or self.pose_noise_trans > 0 or self.fit.fit_headset) and self.target != "hmc":
            raise ValueError(f"headset pose (noise or fitting): only HMC targets have one, not {self.target}")
        _check_device_name(self.device)


@dataclass
class FitReport:
    """What :func:`run_fit_job` returns: the summary, one record per frame, and the paths."""

    summary: dict[str, Any]
    frames: list[dict[str, Any]]
    out: Path
    fitted_now: int
    config: FitConfig
    search: dict[str, Any] | None = None
    files: dict[str, Path] = field(default_factory=dict)


def split_frames_of(avatar: Avatar, run: Path, capture: Capture | RecordedHmc, split: str) -> list[FrameRef]:
    """The frames of the avatar's ``split`` (``train``, ``validation`` or ``test``;
    ``heldout`` means ``test``), as its training recorded them in ``info["splits"]``.

    ``capture``: the capture, or a recording of HMC views, whose frames are looked up.

    Raises:
        FormatError: an avatar from before the three splits (it recorded none), or frames
            the capture (the recording) does not have (another capture than the one trained on).
        ValueError: an unknown split, or one with no frame.
    """
    if isinstance(capture, Capture):
        check_segment_names(capture)
    split = "test" if split == "heldout" else split
    if split not in SPLITS:
        raise ValueError(f"frames: expected one of {', '.join(SPLIT_WORDS)}, got {split!r}")
    splits = avatar.info.get("splits")
    if not isinstance(splits, dict) or not all(isinstance(splits.get(k), list) for k in SPLITS):
        raise FormatError(run, f"--frames {split}: this avatar records no train/validation/test split (it was "
                          "trained before they existed, with one held-out block that chose its checkpoint and "
                          "was also reported on); retrain it with this version (avatarfit train), or give "
                          "--frames explicitly (positions or segment names)")
    names = splits[split]
    if not names:
        raise ValueError(f"--frames {split}: the avatar's training put no frame in its {split} split "
                         f"(data.{split} = 0?); give --frames explicitly")
    known = {f"{r.segment}/{r.frame}": r for r in capture.frames()}
    missing = [n for n in names if n not in known]
    if missing:
        where, what = ((capture.layout.frame_list, "capture") if isinstance(capture, Capture)
                       else (capture.layout.hmc_dir, "recording"))
        raise FormatError(where, f"--frames {split}: {len(missing)} of the avatar's {split} frames are not in this "
                          f"{what} (first: {missing[0]}); fit a {what} of the frames the avatar was trained on, or "
                          "give --frames explicitly")
    return [known[n] for n in names]


def heldout_frames(avatar: Avatar, run: Path, capture: Capture) -> list[FrameRef]:
    """The avatar's test frames (:func:`split_frames_of` with ``"test"``)."""
    return split_frames_of(avatar, run, capture, "test")


def spread(refs: list[FrameRef], count: int) -> list[FrameRef]:
    """``count`` of ``refs`` spread evenly (the first and the last included), in order; all
    of them when there are no more than ``count``."""
    if count >= len(refs):
        return list(refs)
    if count == 1:
        return [refs[0]]
    return [refs[round(k * (len(refs) - 1) / (count - 1))] for k in range(count)]


def json_safe(v: Any) -> Any:
    """JSON-safe: tensors and arrays to lists, non-finite floats to None."""
    if isinstance(v, (torch.Tensor, np.ndarray)):
        return json_safe(v.tolist())
    if isinstance(v, (list, tuple)):
        return [json_safe(x) for x in v]
    if isinstance(v, dict):
        return {k: json_safe(x) for k, x in v.items()}
    if isinstance(v, (float, np.floating)):
        return float(v) if math.isfinite(v) else None
    if isinstance(v, np.integer):
        return int(v)
    return v


def job_dict(job: FitJob) -> dict[str, Any]:
    """The job as the plain mapping saved under ``job:`` in ``config.yaml``."""
    d = to_dict(job)
    d["fit"] = to_dict(job.fit)
    return d


def saved_job(out: Path) -> dict[str, Any] | None:
    """The job saved in ``out/config.yaml`` (as :func:`job_dict` writes it), or ``None``."""
    saved = out / "config.yaml"
    if not saved.is_file():
        return None
    try:
        doc = yaml.safe_load(saved.read_text(encoding="utf-8")) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise FormatError(saved, f"not readable YAML ({type(exc).__name__}); the fit folder is damaged: use another "
                          "--out, or --overwrite to start again") from None
    job = doc.get("job", {}) if isinstance(doc, dict) else None
    if not isinstance(job, dict):
        raise FormatError(saved, "expected a mapping with a 'job' mapping (as avatarfit fit writes it); use another "
                          "--out, or --overwrite to start again")
    return job


def job_differences(old: dict[str, Any], new: dict[str, Any] | FitJob) -> list[str]:
    """Keys in which a saved job (:func:`saved_job`) differs from ``new`` (a job or its
    :func:`job_dict`); a setting newer than the saved job (absent from it) counts only when
    ``new`` gives it another value than its default, so folders of earlier versions resume."""
    if isinstance(new, FitJob):
        new = job_dict(new)
    defaults = {**job_dict(FitJob(run="", capture="")), "fit": to_dict(FitConfig())}
    differ = []
    for k in sorted(set(old) | set(new)):
        a, b = old.get(k, defaults.get(k)), new.get(k)
        if k == "fit" and isinstance(a, dict) and isinstance(b, dict):
            a = {**{f: v for f, v in defaults["fit"].items() if f not in a}, **a}
        if a != b:
            differ.append(k)
    return differ


def _prepare_out(out: Path, job: FitJob, overwrite: bool) -> None:
    """Create ``out``, or check that it holds this job's partial results (resume)."""
    saved = out / "config.yaml"
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"--out {out}: exists and is not a folder")
    try:  # a folder that cannot be written is named before any work
        out.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=out, prefix=".avatarfit-write-test-")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise PermissionError(f"--out {out}: cannot write there ({exc.strerror or exc}); choose another folder") from None
    if overwrite and out.is_dir():
        for name in ("parts", "strips", "tb"):
            shutil.rmtree(out / name, ignore_errors=True)
        for name in ("config.yaml", "search.json", "fits.npz", "metrics.json"):
            (out / name).unlink(missing_ok=True)
    old = saved_job(out)
    if old is not None:
        differ = job_differences(old, job)
        if differ:
            raise FileExistsError(f"--out {out}: holds a fit with other settings (differs in {', '.join(differ)}; "
                                  f"see {saved}); use another --out, or --overwrite to start again")
    elif out.is_dir() and any(out.iterdir()):
        raise FileExistsError(f"--out {out}: not empty and not a fit's folder (no config.yaml); "
                              "use another --out, or --overwrite")
    out.mkdir(parents=True, exist_ok=True)


def _read_search(path: Path) -> dict[str, Any]:
    """A saved ``search.json``, checked: a finite ``lr`` > 0 and ``lambda_latent`` >= 0."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise FormatError(path, f"not readable JSON ({type(exc).__name__}); delete it to search again") from None
    ok = isinstance(doc, dict) and all(
        isinstance(doc.get(k), (int, float)) and not isinstance(doc.get(k), bool) and math.isfinite(doc[k])
        for k in ("lr", "lambda_latent"))
    if not ok or doc["lr"] <= 0 or doc["lambda_latent"] < 0:
        found = {k: doc.get(k) for k in ("lr", "lambda_latent")} if isinstance(doc, dict) else type(doc).__name__
        raise FormatError(path, f"expected the chosen 'lr' (> 0) and 'lambda_latent' (>= 0) numbers, found {found}; "
                          "delete it to search again")
    return doc


def _write_config(out: Path, job: FitJob, config: FitConfig, avatar: Avatar, frames: list[FrameRef]) -> None:
    doc = {"job": job_dict(job), "resolved_fit": to_dict(config),
           "avatar": {"variant": avatar.variant, "condition": avatar.condition, "latent": avatar.latent,
                      **{k: v for k, v in avatar.info.items() if isinstance(v, (str, int, float))}},
           "frames": [f"{r.segment}/{r.frame}" for r in frames]}
    write_text_atomic(out / "config.yaml", yaml.safe_dump(doc, sort_keys=False))


def _units(refs: list[FrameRef], batch: int, sequence: bool,
           group: Callable[[FrameRef], Any] | None = None) -> list[list[FrameRef]]:
    """Batches of frames. ``group``: a batch holds frames of one value of it only (recorded
    frames with and without ground truth, which is attached to a whole batch or not at all).

    In sequence mode a track is a run of one segment's consecutive frames of one group
    value; a batch holds the next ``batch`` frames of up to ``batch`` tracks, which are
    fitted in lockstep (:func:`~avatarfit.fit.sequence.fit_sequence`), track-major. A
    segment's later tracks (where its group value changes) come in later waves, so every
    segment is fitted in order."""
    if not sequence:
        runs: list[tuple[Any, list[FrameRef]]] = []
        for r in refs:
            key = group(r) if group is not None else None
            if runs and runs[-1][0] == key:
                runs[-1][1].append(r)
            else:
                runs.append((key, [r]))
        return [frames[i:i + batch] for _, frames in runs for i in range(0, len(frames), batch)]
    waves: list[list[tuple[Any, list[FrameRef]]]] = []  # wave w: the w-th track of every segment
    for seg in dict.fromkeys(r.segment for r in refs):
        tracks: list[tuple[Any, list[FrameRef]]] = []
        for r in (r for r in refs if r.segment == seg):
            key = group(r) if group is not None else None
            if tracks and tracks[-1][0] == key:
                tracks[-1][1].append(r)
            else:
                tracks.append((key, [r]))
        for w, track in enumerate(tracks):
            if w == len(waves):
                waves.append([])
            waves[w].append(track)
    units = []
    for wave in waves:
        for key in dict.fromkeys(k for k, _ in wave):
            same = [frames for k, frames in wave if k == key]
            for first in range(0, len(same), batch):
                sets = same[first:first + batch]
                for i in range(0, max(len(f) for f in sets), batch):
                    units.append([r for frames in sets for r in frames[i:i + batch]])
    return units


def _in_sequence_order(merged: dict[str, np.ndarray], refs: list[FrameRef]) -> dict[str, np.ndarray]:
    """A sequence job's merged outputs (batches of several segments) in the frames' order:
    segment by segment, each in order."""
    order = [f"{r.segment}/{r.frame}" for seg in dict.fromkeys(r.segment for r in refs) for r in refs
             if r.segment == seg]
    where = {name: i for i, name in enumerate(order)}
    perm = np.argsort([where[str(n)] for n in merged["names"]], kind="stable")
    frames = len(merged["names"])
    return {k: (v[:, perm] if k == "objective" else v[perm] if v.ndim and v.shape[0] == frames else v)
            for k, v in merged.items()}


def _fill_forward(curves: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(S, B)`` objective curves, NaN after a frame stopped -> the last finite value
    repeated, and the number of values recorded per frame (so no NaN is written)."""
    out = curves.copy()
    finite = np.isfinite(out)
    counts = finite.sum(0)
    for s in range(1, out.shape[0]):
        out[s] = np.where(finite[s], out[s], out[s - 1])
    return np.nan_to_num(out, nan=0.0, posinf=0.0, neginf=0.0), counts


def _save_part(path: Path, result: FitResult, seconds: float) -> dict[str, np.ndarray]:
    """Write one batch's results; returns them as :func:`_load_part` would read them."""
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


#: Arrays every part file holds (:func:`_save_part`; ``z_start`` is newer and optional).
_PART_KEYS = ("names", "z", "z_init", "steps", "failed", "data_term", "objective", "objective_steps", "seconds")


def _load_part(path: Path) -> dict[str, np.ndarray]:
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


def _merge(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
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


def _records(merged: dict[str, np.ndarray]) -> list[dict[str, Any]]:
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


def _summary(merged: dict[str, np.ndarray]) -> dict[str, Any]:
    n = len(merged["names"])
    s: dict[str, Any] = {"frames": n}
    for k in sorted(k for k in merged if k.startswith("metric_")):
        v = merged[k][np.isfinite(merged[k])]
        s[k[len("metric_"):]] = float(v.mean()) if v.size else math.nan
    for k in SUMMARY_KEYS:
        s.setdefault(k, math.nan)
    s["steps_mean"] = float(merged["steps"].mean())
    s["seconds_per_frame"] = float(merged["seconds"].mean())
    s["failed"] = int(merged["failed"].sum())
    return s


@torch.no_grad()
def _sequence_jitter(avatar: Avatar, capture: Capture | None, merged: dict[str, np.ndarray]) -> dict[str, float]:
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


def _check_device_name(name: str) -> None:
    kind, colon, index = name.partition(":")
    if not (name in ("auto", "cpu", "cuda") or (kind == "cuda" and colon and index.isdigit())):
        raise ValueError(f"device: expected auto, cpu, cuda or cuda:N (N a GPU number), got {name!r}")


def resolve_device(name: str) -> torch.device:
    """``auto`` (CUDA when PyTorch sees it, else CPU), ``cpu``, ``cuda`` or ``cuda:N``;
    asking for CUDA without a CUDA device raises ``ValueError``."""
    _check_device_name(name)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    kind, _, index = name.partition(":")
    if kind == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device: {name} asked for, but PyTorch sees no CUDA device")
        count = torch.cuda.device_count()
        if index and int(index) >= count:
            raise ValueError(f"device: {name} asked for, but PyTorch sees {count} CUDA device(s): "
                             f"cuda:0 to cuda:{count - 1}")
    return torch.device(name)


def _check_capture(avatar: Avatar, capture: Capture, job: FitJob) -> None:
    V = capture.topology.num_verts
    if V != avatar.num_verts:
        raise ValueError(f"--capture {capture.root}: its meshes have {V} vertices, the avatar of --run {job.run} "
                         f"{avatar.num_verts}; fit an avatar to captures of the subject it was trained on")
    mean = read_stats(capture.root, V).vert_mean
    distance, tolerance = identity_distance(avatar.vert_mean.cpu(), mean)
    if distance > tolerance:
        raise ValueError(f"--capture {capture.root}: another subject than the avatar of --run {job.run} (its mean mesh, "
                         f"{capture.layout.vert_mean}, is {distance:.2f} mm from the avatar's at the median vertex; "
                         f"captures of one subject differ by less than {tolerance:.2f} mm); fit an avatar to captures "
                         "of the subject it was trained on")
    if job.target == "keypoints" and avatar.keypoint_points is None:
        raise ValueError(f"--target keypoints: the avatar of --run {job.run} has no keypoint definition")


def run_fit_job(job: FitJob, out: str | Path, *, overwrite: bool = False, progress: bool = True,
                log: Callable[[str], None] = print) -> FitReport:
    """Fit the frames of ``job`` and write the output folder (see the module's docstring).

    Re-running the same job on the same ``out`` fits only the frames not finished yet
    (batches whose ``parts/*.npz`` exist are read back); a job with other settings is
    refused unless ``overwrite``.

    Raises:
        FormatError: a run without an avatar file; a damaged ``config.yaml``, ``search.json``
            or part file in ``out``.
        ValueError: frames, targets, settings or a device that do not fit the avatar, the
            capture (another subject's, say) or this machine.
        FileExistsError: ``out`` holds something else.
        PermissionError: ``out`` cannot be written.
        FitFailedError: every setting of the search diverged, or the GPU ran out of memory.
    """
    try:
        return _run_fit_job(job, Path(out), overwrite, progress, log)
    except torch.cuda.OutOfMemoryError:
        kept = sorted((Path(out) / "parts").glob("*.npz"))
        where = f"--sequence fits a frame of up to {job.batch} segments together, and builds {job.batch} frames " \
            "of each" if job.sequence else f"the search and every batch fit {job.batch} frames together"
        raise FitFailedError(f"--device {job.device}: the GPU ran out of memory ({where}); lower --batch (now "
                             f"{job.batch}), with another --out or --overwrite: the {len(kept)} finished batches in "
                             f"{Path(out) / 'parts'} are kept, but another --batch cannot reuse them") from None


def _run_fit_job(job: FitJob, out: Path, overwrite: bool, progress: bool, log: Callable[[str], None]) -> FitReport:
    from tqdm.auto import tqdm

    run_path = Path(job.run)
    avatar = Avatar.load(run_path)
    capture = Capture(job.capture) if job.capture is not None else None
    recorded = RecordedHmc(job.hmc_dir, job.rig) if job.hmc_dir is not None else None
    if capture is not None:
        _check_capture(avatar, capture, job)
    pool = recorded if recorded is not None else capture  # where frames are looked up (a capture adds truth)
    name, _, count = job.frames.partition(":")
    if name in SPLIT_WORDS:
        refs = split_frames_of(avatar, run_path, pool, name)
        if count:
            refs = spread(refs, int(count))
    elif recorded is None:
        refs = select_frames(capture, job.frames)
    else:
        refs = select_refs(recorded.frames(), job.frames, "--frames", "the recording", str(recorded.layout.hmc_dir))
    if recorded is not None:
        recorded.check(refs)
    device = resolve_device(job.device)
    avatar = avatar.to(device)
    source = TargetSource.for_avatar(capture, avatar, recorded=recorded)

    def build(frames: list[FrameRef]):
        return source.build(job.target, frames, pose_noise_rot=job.pose_noise_rot,
                            pose_noise_trans=job.pose_noise_trans, seed=job.seed).to(device)

    _prepare_out(out, job, overwrite)
    units = _units(refs, job.batch, job.sequence, source.has_truth if recorded is not None else None)
    # Finished batches are read (and checked) before anything new is computed or written.
    finished: dict[int, dict[str, np.ndarray]] = {}
    for k, unit in enumerate(units):
        path = out / "parts" / f"{k:05d}.npz"
        if path.is_file():
            finished[k] = _load_part(path)
            if [str(n) for n in finished[k]["names"]] != [f"{r.segment}/{r.frame}" for r in unit]:
                raise FormatError(path, "holds other frames than this job's batch; --overwrite to start again")
    config = job.fit  # lambda_L already resolved for the target kind (FitJob)
    search_doc = None
    search_file = out / "search.json"
    if job.search:
        if job.grid is not None and len(job.grid[0]) == len(job.grid[1]) == 1:
            search_doc = {"lr": job.grid[0][0], "lambda_latent": job.grid[1][0], "criterion": "single pair",
                          "frames": [], "table": []}
        elif search_file.is_file():
            search_doc = _read_search(search_file)
            log(f"search: reusing {search_file} (lr {search_doc['lr']}, lambda_L {search_doc['lambda_latent']})")
        else:
            # Settings are chosen on validation frames, never on the frames reported.
            validation = split_frames_of(avatar, run_path, pool, "validation")
            first = validation[:job.search_frames] if job.search_frames else validation[:job.batch]
            if recorded is not None:
                recorded.check(first)
            batch = build(first)
            label = "frontal PSNR (dB)" if batch.truth is not None else "data term"
            which = "the paper's grid" if job.grid is None else f"lr {list(job.grid[0])} x lambda_L {list(job.grid[1])}"
            log(f"search: {which} for {job.target} targets on {len(first)} validation frames, judged by {label}")
            # One setting per fit: a batched search can score a setting differently (rounding
            # that kept faces amplify over 200 steps; benchmarks/bench_fit.py, section 3).
            res = search_hyperparameters(avatar, batch, job.target, base=config, grid=job.grid,
                                         progress=lambda lr, lam, s: log(f"  lr {lr:g}, lambda_L {lam:g}: {s:.4f}"),
                                         max_batch=batch.batch)
            search_doc = {"lr": res.lr, "lambda_latent": res.lambda_latent, "criterion": res.criterion,
                          "frames": [f"{r.segment}/{r.frame}" for r in first],
                          "table": [{"lr": a, "lambda_latent": b, "score": c} for a, b, c in res.table]}
            write_text_atomic(search_file, json.dumps(json_safe(search_doc), indent=1))
        config = dataclasses.replace(config, lr=float(search_doc["lr"]),
                                     lambda_latent=float(search_doc["lambda_latent"]))
    _write_config(out, job, config, avatar, refs)

    from torch.utils.tensorboard import SummaryWriter

    (out / "parts").mkdir(exist_ok=True)
    (out / "strips").mkdir(exist_ok=True)
    writer = SummaryWriter(str(out / "tb"))
    done = sum(len(units[k]) for k in finished)
    bar = tqdm(total=len(refs), initial=done, unit="frame", desc=f"fit {job.target}", disable=not progress)
    parts: list[dict[str, np.ndarray]] = []
    fitted_now = 0
    position = 0
    last_z: dict[str, torch.Tensor] = {}  # sequence mode: each segment's last fitted code
    try:
        for k, unit in enumerate(units):
            path = out / "parts" / f"{k:05d}.npz"
            if k in finished:
                part = finished[k]
                parts.append(part)
                for i, r in enumerate(unit):
                    last_z[r.segment] = torch.from_numpy(part["z"][i:i + 1]).to(device)
                position += len(unit)
                continue
            target = build(unit)
            t0 = time.perf_counter()
            if job.sequence:
                segments = [r.segment for r in unit]
                result, _ = fit_sequence(avatar, target, config, segments=segments,
                                         init={s: last_z[s] for s in segments if s in last_z})
            else:
                result = fit(avatar, target, config)
            seconds = time.perf_counter() - t0
            for i, r in enumerate(unit):
                last_z[r.segment] = result.z[i:i + 1]
            _write_outputs(out, writer, target, result, position)
            parts.append(_save_part(path, result, seconds))
            position += len(unit)
            fitted_now += len(unit)
            bar.update(len(unit))
            psnr = result.metrics.get("psnr")
            if psnr is not None:
                bar.set_postfix(psnr=f"{float(psnr.nanmean()):.2f}", s_per_frame=f"{seconds / len(unit):.2f}")
    finally:
        bar.close()
        writer.flush()
    merged = _merge(parts)
    if job.sequence:
        merged = _in_sequence_order(merged, refs)
    summary = _summary(merged)
    if job.sequence:
        summary.update(_sequence_jitter(avatar, capture, merged))
    frames = _records(merged)
    with atomic_path(out / "fits.npz") as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, **merged)
    doc = {"summary": summary, "frames": frames, "fit": to_dict(config),
           "avatar": {"variant": avatar.variant, "condition": avatar.condition}, "target": job.target}
    write_text_atomic(out / "metrics.json", json.dumps(json_safe(doc), indent=1))
    for k, v in summary.items():
        if isinstance(v, (int, float)) and math.isfinite(v):
            writer.add_scalar(f"summary/{k}", v, 0)
    writer.close()
    files = {"fits": out / "fits.npz", "metrics": out / "metrics.json", "strips": out / "strips",
             "tensorboard": out / "tb", "config": out / "config.yaml"}
    return FitReport(summary=summary, frames=frames, out=out, fitted_now=fitted_now, config=config,
                     search=search_doc, files=files)


def _write_outputs(out: Path, writer, target, result: FitResult, position: int) -> None:
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
