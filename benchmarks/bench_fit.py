#!/usr/bin/env python
"""Fitting speed and quality: HMC fits (3 views) of a trained avatar, in one run.

1. Seconds per frame at the paper's 200 Adam steps (no early stopping), by batch size,
   for each pixel's face kept between steps (``raster_every=8``), for the rasteriser's
   hard test run every step (``raster_every=1``, the default: section 5 is why), with
   kept faces and antialiasing off (hard outlines, the cost before
   antialiased ones; the target there: antialiasing costs at most 25 % more) and for
   PyTorch3D's rasteriser (``backend=pytorch3d``,
   every step; slow on a CPU, so only at the smallest batch unless ``--reference-all``).
   All 200 steps are timed by default (vertices move most in the first steps, so the
   kept faces are rasterised again most often there: a shorter ``--steps`` scaled to 200
   overstates the default's cost); the PyTorch3D reference times ``--reference-steps``
   (it rasterises every step, so scaling is fair). Medians of ``--repeats`` runs after a
   warm-up.
2. Seconds per frame to convergence with the default early stopping, on the run's
   test frames, with the fitted quality beside (frontal PSNR of the whole image and
   of the face pixels, geometry error in mm), for both rasterisation schedules: equal
   quality within noise is what makes the faster one the default.

3. The hyper-parameter search (the paper's 3 x 3 HMC grid on ``--search-frames``
   validation frames): every pair fitted one after another (``max_batch`` = the frames)
   against all pairs in one batched fit, with the largest difference of their scores and
   whether they choose the same pair.
4. Sequence fitting of the test frames (each segment in order, warm starts): one segment
   after another against all segments in lockstep, with the largest difference of the
   fitted codes.

5. Reproducibility and quality per rasterisation schedule: each split's frames (validation,
   test) fitted three times to convergence, the start as is and moved by +-1e-7 (float32
   rounding), with the mean quality and the per-frame spread (max - min over the three) of
   PSNR and geometry: a schedule whose results move with rounding cannot be compared
   across batch sizes, machines or a batched search.

Target: <= 2 s per frame at 200 steps, batch 8 or more, on 2 CPU cores.

usage: python benchmarks/bench_fit.py --run RUN --capture CAP [--batches 1 8 32] [--device cpu]

RUN is any trained run folder (or avatar file) of CAP's subject, e.g. the demo's
``avatarfit-demo/runs/lip_flow_hmc`` with ``--capture avatarfit-demo/capture``.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import time
from pathlib import Path

import torch

from avatarfit.avatar import Avatar
from avatarfit.data import Capture
from avatarfit.data.splits import frames_of_split
from avatarfit.fit import FitConfig, fit, fit_sequence, score_fit, search_hyperparameters
from avatarfit.observe import TargetSource

PAPER_STEPS = 200
SCHEDULES = {"kept faces (raster_every=8)": {"raster_every": 8}, "every step (raster_every=1, default)": {"raster_every": 1},
             "kept faces, hard outlines (antialias off)": {"raster_every": 8, "antialias": False}}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _seconds_per_frame(avatar, target, config: FitConfig, repeats: int, device: torch.device) -> float:
    fit(avatar, target, dataclasses.replace(config, steps=2, patience=3))  # warm-up
    times = []
    for _ in range(repeats):
        _sync(device)
        t0 = time.perf_counter()
        fit(avatar, target, config)
        _sync(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * PAPER_STEPS / config.steps / target.batch


def _target(avatar, cap: Capture, refs, device):
    source = TargetSource.for_avatar(cap, avatar)
    return source.build("hmc", refs).to(device)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", required=True)
    p.add_argument("--capture", required=True)
    p.add_argument("--batches", type=int, nargs="+", default=[1, 8, 32])
    p.add_argument("--steps", type=int, default=PAPER_STEPS, help="timed steps per fit (scaled to 200; default 200)")
    p.add_argument("--reference-steps", type=int, default=3, help="timed steps of the PyTorch3D reference")
    p.add_argument("--reference-all", action="store_true", help="PyTorch3D at every batch size")
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--lr", type=float, default=0.1)
    p.add_argument("--lambda-latent", type=float, default=0.01)
    p.add_argument("--device", default="cpu")
    p.add_argument("--sections", type=int, nargs="+", default=[1, 2, 3, 4, 5], help="which of the five to run")
    p.add_argument("--search-frames", type=int, default=4)
    args = p.parse_args()
    device = torch.device(args.device)
    cap = Capture(args.capture)
    frames = cap.frames()
    base = FitConfig(lr=args.lr, lambda_latent=args.lambda_latent)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {device}; run {args.run}")
    if 1 in args.sections:
        _per_batch(args, cap, frames, base, device)
    avatar = Avatar.load(args.run).to(device)
    if 2 in args.sections:
        _convergence(avatar, cap, base, device, args)
    if 3 in args.sections:
        _search(avatar, cap, base, device, args)
    if 4 in args.sections:
        _sequences(avatar, cap, base, device, args)
    if 5 in args.sections:
        _reproducibility(avatar, cap, base, device, args)


def _timed(device, fn):
    _sync(device)
    t0 = time.perf_counter()
    out = fn()
    _sync(device)
    return time.perf_counter() - t0, out


def _search(avatar, cap, base, device, args) -> None:
    refs = frames_of_split(avatar.info, Path(args.run), cap, "validation")[:args.search_frames]
    target = _target(avatar, cap, refs, device)
    grid = ((0.01, 0.1, 0.5), (0.1, 0.01, 0.001))
    serial_s, serial = _timed(device, lambda: search_hyperparameters(avatar, target, grid=grid, base=base,
                                                                     max_batch=target.batch))
    batched_s, batched = _timed(device, lambda: search_hyperparameters(avatar, target, grid=grid, base=base))
    diff = max(abs(a[2] - b[2]) for a, b in zip(serial.table, batched.table))
    same = (serial.lr, serial.lambda_latent) == (batched.lr, batched.lambda_latent)
    print(f"\n3. search: 3 x 3 grid on {target.batch} validation frames (early stopping, patience {base.patience})\n")
    print("| search | seconds | chosen (lr, lambda_L) |\n|---|---|---|")
    print(f"| pair after pair | {serial_s:.1f} | {serial.lr:g}, {serial.lambda_latent:g} |")
    print(f"| batched | {batched_s:.1f} | {batched.lr:g}, {batched.lambda_latent:g} |")
    print(f"\nbatched: {serial_s / batched_s:.2f}x faster; largest score difference {diff:.2e} ({serial.criterion}); "
          f"same pair chosen: {same}", flush=True)


def _sequences(avatar, cap, base, device, args) -> None:
    refs = frames_of_split(avatar.info, Path(args.run), cap, "test")
    segments = list(dict.fromkeys(r.segment for r in refs))
    refs = [r for seg in segments for r in refs if r.segment == seg]
    target = _target(avatar, cap, refs, device)
    labels = [r.segment for r in refs]

    def one_by_one():
        return [fit_sequence(avatar, target.select([i for i, s in enumerate(labels) if s == seg]), base)[0].z
                for seg in segments]

    serial_s, parts = _timed(device, one_by_one)
    batched_s, (together, _) = _timed(device, lambda: fit_sequence(avatar, target, base, segments=labels))
    diff = float((torch.cat(parts) - together.z).abs().max())
    print(f"\n4. sequences: the {len(refs)} test frames, {len(segments)} segments in order\n")
    print(f"one segment after another {serial_s:.1f} s ({serial_s / len(refs):.2f} s/frame); in lockstep "
          f"{batched_s:.1f} s ({batched_s / len(refs):.2f} s/frame): {serial_s / batched_s:.2f}x; largest code "
          f"difference {diff:.2e}", flush=True)


def _per_batch(args, cap, frames, base, device) -> None:
    print(f"\n1. seconds per frame at {PAPER_STEPS} steps (median of {args.repeats}; {args.steps} timed steps scaled)\n")
    names = list(SCHEDULES) + ["PyTorch3D rasteriser, every step"]
    print("| batch | " + " | ".join(names) + " | every step / kept | antialiased / hard (kept) | PyTorch3D / every step |")
    print("|---|" + "---|" * (len(names) + 3))
    for batch in args.batches:
        refs = [frames[i % len(frames)] for i in range(batch)]
        avatar = Avatar.load(args.run).to(device)
        target = _target(avatar, cap, refs, device)
        row = {}
        for name, kw in SCHEDULES.items():
            config = dataclasses.replace(base, steps=args.steps, patience=args.steps + 1, tol=0.0, **kw)
            row[name] = _seconds_per_frame(avatar, target, config, args.repeats, device)
        if args.reference_all or batch == min(args.batches) or device.type == "cuda":
            ref_avatar = Avatar.load(args.run, backend="pytorch3d").to(device)
            steps = args.steps if device.type == "cuda" else args.reference_steps
            config = dataclasses.replace(base, steps=steps, patience=steps + 1, tol=0.0, raster_every=1)
            row[names[-1]] = _seconds_per_frame(ref_avatar, target, config, 1, device)
        kept = row[names[0]]
        cells = [f"{row[n]:.3f}" if n in row else "-" for n in names]
        ratio3 = f"{row[names[-1]] / row[names[1]]:.1f}x" if names[-1] in row else "-"
        print(f"| {batch} | " + " | ".join(cells) + f" | {row[names[1]] / kept:.2f}x | {kept / row[names[2]]:.2f}x | "
              f"{ratio3} |", flush=True)


def _convergence(avatar, cap, base, device, args) -> None:
    refs = frames_of_split(avatar.info, Path(args.run), cap, "test")
    target = _target(avatar, cap, refs, device)
    print(f"\n2. to convergence (patience {base.patience}, at most {base.steps} steps; lr {base.lr}, lambda_L "
          f"{base.lambda_latent}) on the {len(refs)} test frames, one batch\n")
    print("| schedule | s/frame | steps (mean) | PSNR (dB) | face PSNR (dB) | geometry (mm) |")
    print("|---|---|---|---|---|---|")
    for name, kw in SCHEDULES.items():
        config = dataclasses.replace(base, **kw)
        fit(avatar, target, dataclasses.replace(config, steps=2, patience=3))  # warm-up
        _sync(device)
        t0 = time.perf_counter()
        result = fit(avatar, target, config)
        _sync(device)
        seconds = (time.perf_counter() - t0) / target.batch
        m = score_fit(avatar, target, result).metrics
        print(f"| {name} | {seconds:.2f} | {float(result.steps.float().mean()):.0f} | {float(m['psnr'].mean()):.2f} | "
              f"{float(m['psnr_face'].mean()):.2f} | {float(m['geom_mm'].mean()):.4f} |", flush=True)


def _reproducibility(avatar, cap, base, device, args) -> None:
    print("\n5. reproducibility: each split fitted 3 times to convergence, the start moved by 0, +1e-7, -1e-7\n")
    print("| split | schedule | s/frame | PSNR (dB) | PSNR spread mean / max | geometry (mm) | geometry spread mean / max |")
    print("|---|---|---|---|---|---|---|")
    schedules = {**SCHEDULES, "kept faces, 0.1 px (raster_shift=0.1)": {"raster_every": 8, "raster_shift": 0.1}}
    for split in ("validation", "test"):
        refs = frames_of_split(avatar.info, Path(args.run), cap, split)
        target = _target(avatar, cap, refs, device)
        z0 = avatar.prior_mean(target.observation, target.batch)[0]
        for name, kw in schedules.items():
            config = dataclasses.replace(base, **kw)
            psnr, geom, seconds = [], [], []
            for eps in (0.0, 1e-7, -1e-7):
                t, result = _timed(device, lambda: fit(avatar, target, config, init=z0 + eps))
                m = score_fit(avatar, target, result).metrics
                psnr.append(m["psnr"].cpu())
                geom.append(m["geom_mm"].cpu())
                seconds.append(t / target.batch)
            P, G = torch.stack(psnr), torch.stack(geom)
            dp, dg = P.amax(0) - P.amin(0), G.amax(0) - G.amin(0)
            print(f"| {split} ({len(refs)}) | {name} | {statistics.median(seconds):.2f} | {float(P.mean()):.2f} | "
                  f"{float(dp.mean()):.3f} / {float(dp.max()):.3f} | {float(G.mean()):.4f} | "
                  f"{float(dg.mean()):.4f} / {float(dg.max()):.4f} |", flush=True)


if __name__ == "__main__":
    main()
