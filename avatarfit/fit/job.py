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
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from .._io import atomic_path, json_safe, write_text_atomic
from ..avatar import Avatar
from ..config import to_dict
from ..data.capture import Capture, FrameRef
from ..data.splits import SPLIT_WORDS, frames_of_split, spread
from ..data.selection import select_frames, select_refs
from ..data.stats import identity_distance, read_stats
from ..device import resolve_device
from ..distributed import DistInfo, cleanup, from_main, setup, total, wait_all
from ..errors import FitFailedError, FormatError
from ..observe.recorded import RecordedHmc
from ..observe.sources import TargetSource
from .batches import units
from .folder import prepare_out, read_search, write_config
from .jobspec import RECORDED_FIT, FitJob, job_dict, job_differences
from .logs import write_outputs
from .optimize import FitConfig, fit
from .parts import in_sequence_order, load_part, merge_parts, records, save_part
from .parts import summary as parts_summary
from .score import score_fit
from .search import search_hyperparameters
from .sequence import fit_sequence, sequence_jitter
from .summary import SUMMARY_KEYS

__all__ = ["FitJob", "FitReport", "RECORDED_FIT", "SUMMARY_KEYS", "job_dict", "job_differences", "run_fit_job"]


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
    info = _processes(job)
    try:
        return _run_fit_job(job, Path(out), overwrite, progress, log, info)
    except torch.cuda.OutOfMemoryError:
        kept = sorted((Path(out) / "parts").glob("*.npz"))
        where = f"--sequence fits a frame of up to {job.batch} segments together, and builds {job.batch} frames " \
            "of each" if job.sequence else f"the search and every batch fit {job.batch} frames together"
        raise FitFailedError(f"--device {job.device}: the GPU ran out of memory ({where}); lower --batch (now "
                             f"{job.batch}), with another --out or --overwrite: the {len(kept)} finished batches in "
                             f"{Path(out) / 'parts'} are kept, but another --batch cannot reuse them") from None
    finally:
        cleanup(info)


def _processes(job: FitJob) -> DistInfo:
    """This process's share of the job: the only one, or one of several that ``torchrun``
    started (each on GPU ``LOCAL_RANK`` with CUDA), which fit disjoint batches."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return DistInfo(0, 1, resolve_device(job.device))
    if job.device.startswith("cuda:"):
        raise ValueError(f"--device {job.device}: under torchrun each process fits on GPU LOCAL_RANK; give --device "
                         "cuda (or auto)")
    if job.sequence:
        raise ValueError("--sequence: a segment's frames are fitted in order, one after another; run sequence jobs "
                         "in one process (not under torchrun)")
    return setup(job.device, "--device")


def _run_fit_job(job: FitJob, out: Path, overwrite: bool, progress: bool, log: Callable[[str], None],
                 info: DistInfo) -> FitReport:
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
        refs = frames_of_split(avatar.info, run_path, pool, name)
        if count:
            refs = spread(refs, int(count))
    elif recorded is None:
        refs = select_frames(capture, job.frames)
    else:
        refs = select_refs(recorded.frames(), job.frames, "--frames", "the recording", str(recorded.layout.hmc_dir))
    if recorded is not None:
        recorded.check(refs)
    device = info.device
    avatar = avatar.to(device)
    source = TargetSource.for_avatar(capture, avatar, recorded=recorded)

    def build(frames: list[FrameRef]):
        return source.build(job.target, frames, pose_noise_rot=job.pose_noise_rot,
                            pose_noise_trans=job.pose_noise_trans, seed=job.seed).to(device)

    from_main(info, lambda: prepare_out(out, job, overwrite))
    batches = units(refs, job.batch, job.sequence, source.has_truth if recorded is not None else None)
    # Finished batches are read (and checked) before anything new is computed or written.
    # Several processes (torchrun): each fits every world-th batch, from its rank on.
    mine = [k for k in range(len(batches)) if k % info.world == info.rank]
    finished: dict[int, dict[str, np.ndarray]] = {}
    for k in mine:
        unit = batches[k]
        path = out / "parts" / f"{k:05d}.npz"
        if path.is_file():
            finished[k] = load_part(path)
            if [str(n) for n in finished[k]["names"]] != [f"{r.segment}/{r.frame}" for r in unit]:
                raise FormatError(path, "holds other frames than this job's batch; --overwrite to start again")
    config = job.fit  # lambda_L already resolved for the target kind (FitJob)
    search_doc = from_main(info, lambda: _search(job, out, avatar, run_path, pool, recorded, build, log)) \
        if job.search else None
    if search_doc is not None:
        config = dataclasses.replace(config, lr=float(search_doc["lr"]),
                                     lambda_latent=float(search_doc["lambda_latent"]))
    from_main(info, lambda: write_config(out, job, config, avatar, refs))

    from torch.utils.tensorboard import SummaryWriter

    (out / "parts").mkdir(exist_ok=True)
    (out / "strips").mkdir(exist_ok=True)
    writer = SummaryWriter(str(out / "tb"), filename_suffix=f".rank{info.rank}" if info.world > 1 else "")
    done = sum(len(batches[k]) for k in finished)
    bar = tqdm(total=sum(len(batches[k]) for k in mine), initial=done, unit="frame", desc=f"fit {job.target}",
               disable=not progress or not info.main)
    parts: dict[int, dict[str, np.ndarray]] = {}
    fitted_now = 0
    starts = np.cumsum([0] + [len(u) for u in batches])  # each batch's first frame among all
    last_z: dict[str, torch.Tensor] = {}  # sequence mode (one process): each segment's last fitted code
    try:
        for k in mine:
            unit = batches[k]
            path = out / "parts" / f"{k:05d}.npz"
            if k in finished:
                part = finished[k]
                parts[k] = part
                for i, r in enumerate(unit):
                    last_z[r.segment] = torch.from_numpy(part["z"][i:i + 1]).to(device)
                continue
            target = build(unit)
            t0 = time.perf_counter()
            if job.sequence:
                segments = [r.segment for r in unit]
                result, _ = fit_sequence(avatar, target, config, segments=segments,
                                         init={s: last_z[s] for s in segments if s in last_z})
            else:
                result = fit(avatar, target, config)
            score_fit(avatar, target, result)
            seconds = time.perf_counter() - t0
            for i, r in enumerate(unit):
                last_z[r.segment] = result.z[i:i + 1]
            write_outputs(out, writer, target, result, int(starts[k]))
            parts[k] = save_part(path, result, seconds)
            fitted_now += len(unit)
            bar.update(len(unit))
            psnr = result.metrics.get("psnr")
            if psnr is not None:
                bar.set_postfix(psnr=f"{float(psnr.nanmean()):.2f}", s_per_frame=f"{seconds / len(unit):.2f}")
    finally:
        bar.close()
        writer.flush()
    wait_all(info)  # every batch's part file is written

    def merge_and_write() -> tuple[dict[str, Any], list[dict[str, Any]]]:
        for k in range(len(batches)):  # the other processes' batches, from their part files
            if k not in parts:
                parts[k] = load_part(out / "parts" / f"{k:05d}.npz")
        merged = merge_parts([parts[k] for k in range(len(batches))])
        if job.sequence:
            merged = in_sequence_order(merged, refs)
        summary = parts_summary(merged)
        if job.sequence:
            summary.update(sequence_jitter(avatar, capture, merged))
        frames = records(merged)
        _write_results(out, merged, summary, frames, config, avatar, job, writer)
        return summary, frames

    summary, frames = from_main(info, merge_and_write)  # once, by the main process; its figures for all
    writer.close()
    fitted_now = total(fitted_now, info)
    wait_all(info)  # no process leaves (and tears the group down) while another is still in a collective
    files = {"fits": out / "fits.npz", "metrics": out / "metrics.json", "strips": out / "strips",
             "tensorboard": out / "tb", "config": out / "config.yaml"}
    return FitReport(summary=summary, frames=frames, out=out, fitted_now=fitted_now, config=config,
                     search=search_doc, files=files)


def _write_results(out: Path, merged: dict[str, np.ndarray], summary: dict[str, Any], frames: list[dict[str, Any]],
                   config: FitConfig, avatar: Avatar, job: FitJob, writer) -> None:
    """``fits.npz``, ``metrics.json`` and the summary's TensorBoard scalars."""
    with atomic_path(out / "fits.npz") as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, **merged)
    doc = {"summary": summary, "frames": frames, "fit": to_dict(config),
           "avatar": {"variant": avatar.variant, "condition": avatar.condition}, "target": job.target}
    write_text_atomic(out / "metrics.json", json.dumps(json_safe(doc), indent=1))
    for k, v in summary.items():
        if isinstance(v, (int, float)) and math.isfinite(v):
            writer.add_scalar(f"summary/{k}", v, 0)


def _search(job: FitJob, out: Path, avatar: Avatar, run_path: Path, pool, recorded: RecordedHmc | None,
            build: Callable, log: Callable[[str], None]) -> dict[str, Any]:
    """The search's choice of lr and lambda_L (``search.json``): a given single pair, the
    saved choice, or a search on the avatar's validation frames."""
    search_file = out / "search.json"
    config = job.fit
    if job.grid is not None and len(job.grid[0]) == len(job.grid[1]) == 1:
        search_doc = {"lr": job.grid[0][0], "lambda_latent": job.grid[1][0], "criterion": "single pair",
                      "frames": [], "table": []}
    elif search_file.is_file():
        search_doc = read_search(search_file)
        log(f"search: reusing {search_file} (lr {search_doc['lr']}, lambda_L {search_doc['lambda_latent']})")
    else:
        # Settings are chosen on validation frames, never on the frames reported.
        validation = frames_of_split(avatar.info, run_path, pool, "validation")
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
    return search_doc
