#!/usr/bin/env python
"""Fitting with and without differentiable outlines, on the same models, frames and settings.

Conditions:

- ``hard + true masks``: one face per pixel, and HMC views scored on the tool's ground-truth
  face masks only (the fitting of avatarfit before antialiased outlines);
- ``hard, every pixel``: one face per pixel, every pixel of the views scored;
- ``antialiased, every pixel``: antialiased outlines (the default now), every pixel scored,
  no mask.

For each trained run: HMC fits of the test frames (the headset pose known), with the
pixels the fitted mesh covers outside the true face in the three views (spill), geometry
error, whole-image and face-pixel PSNR of the views and of the frontal photo; frontal fits
(every pixel of the photo scored, both renderers) with their spill in the frontal camera;
and headset-pose recovery from per-axis noise of 2 deg / 2 mm and 5 deg / 5 mm (fitting the
pose and the code). Means over frames with a 95 % bootstrap interval; pose errors as
median [min, max]. lr and lambda_L are fixed (the CLI's defaults), not tuned on these frames.

usage: python benchmarks/bench_silhouette.py --capture CAP RUN [RUN ...] [--frames N]
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

import torch

from avatarfit.avatar import Avatar
from avatarfit.data import Capture
from avatarfit.data.splits import frames_of_split
from avatarfit.fit import FitConfig, fit, score_fit
from avatarfit.fit.score import face_mask
from avatarfit.observe import TargetSource

CONDITIONS = {
    "hard + true masks": dict(antialias=False, masks=True),
    "hard, every pixel": dict(antialias=False, masks=False),
    "antialiased, every pixel": dict(antialias=True, masks=False),
}


def _ci(x: torch.Tensor, digits: int = 2, reps: int = 2000) -> str:
    x = x.double()
    g = torch.Generator().manual_seed(0)
    means = x[torch.randint(len(x), (reps, len(x)), generator=g)].mean(1)
    lo, hi = torch.quantile(means, torch.tensor([0.025, 0.975], dtype=torch.double)).tolist()
    return f"{float(x.mean()):.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"


def _range(x: torch.Tensor) -> str:
    return f"{float(x.median()):.2f} [{float(x.min()):.2f}, {float(x.max()):.2f}]"


def _frontal_spill(avatar, truth, verts) -> torch.Tensor:
    cover = avatar.mesh_mask(verts, truth.K, truth.R, truth.t, truth.image_size, truth.head_R, truth.head_t)
    return ((cover > 0) & ~(face_mask(avatar, truth) > 0)).flatten(1).sum(1).float()


def _hmc_target(source, refs, masks: bool, **noise):
    target = source.build("hmc", refs, **noise)
    return dataclasses.replace(target, valid=target.truth.hmc_masks) if masks else target


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--capture", required=True)
    p.add_argument("--frames", type=int, default=0, help="at most this many test frames (0: all)")
    p.add_argument("--seed", type=int, default=0, help="seed of the headset-pose noise")
    p.add_argument("runs", nargs="+")
    args = p.parse_args()
    cap = Capture(args.capture)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    for run in args.runs:
        avatar = Avatar.load(run)
        refs = frames_of_split(avatar.info, Path(run), cap, "test")
        refs = refs[: args.frames] if args.frames else refs
        source = TargetSource.for_avatar(cap, avatar)
        print(f"\n## {run} ({avatar.variant}), {len(refs)} test frames\n")
        print("HMC fits (headset pose known; lr 0.1, lambda_L 0.01):\n")
        print("| condition | spill px/frame | geometry (mm) | HMC PSNR (dB) | HMC face PSNR (dB) | frontal PSNR (dB) "
              "| frontal face PSNR (dB) | s/frame |")
        print("|---|---|---|---|---|---|---|---|")
        first = True
        for name, c in CONDITIONS.items():
            target = _hmc_target(source, refs, c["masks"])
            t0 = time.perf_counter()
            r = fit(avatar, target, FitConfig(lr=0.1, lambda_latent=0.01, antialias=c["antialias"]))
            sec = (time.perf_counter() - t0) / len(refs)
            m = score_fit(avatar, target, r).metrics
            if first:
                print(f"| prior mean (start) | {_ci(m['hmc_spill_px_init'], 0)} | {_ci(m['geom_mm_init'], 3)} | "
                      f"{_ci(m['hmc_psnr_init'])} | {_ci(m['hmc_psnr_face_init'])} | {_ci(m['psnr_init'])} | "
                      f"{_ci(m['psnr_face_init'])} | - |")
                first = False
            print(f"| {name} | {_ci(m['hmc_spill_px'], 0)} | {_ci(m['geom_mm'], 3)} | {_ci(m['hmc_psnr'])} | "
                  f"{_ci(m['hmc_psnr_face'])} | {_ci(m['psnr'])} | {_ci(m['psnr_face'])} | {sec:.2f} |", flush=True)

        print("\nFrontal fits (every pixel of the photo; lr 0.1, lambda_L 0.001):\n")
        print("| renderer | frontal spill px/frame | geometry (mm) | PSNR (dB) | face PSNR (dB) | s/frame |")
        print("|---|---|---|---|---|---|")
        frontal = source.build("frontal", refs)
        for name, aa in (("hard", False), ("antialiased", True)):
            t0 = time.perf_counter()
            r = fit(avatar, frontal, FitConfig(lr=0.1, lambda_latent=0.001, antialias=aa))
            sec = (time.perf_counter() - t0) / len(refs)
            m = score_fit(avatar, frontal, r).metrics
            print(f"| {name} | {_ci(_frontal_spill(avatar, frontal.truth, r.verts), 0)} | {_ci(m['geom_mm'], 3)} | "
                  f"{_ci(m['psnr'])} | {_ci(m['psnr_face'])} | {sec:.2f} |", flush=True)

        print("\nHeadset pose recovery (pose and code fitted; error to the true pose, median [min, max]):\n")
        print("| noise per axis | condition | start (deg) | fitted (deg) | start (mm) | fitted (mm) | geometry (mm) |")
        print("|---|---|---|---|---|---|---|")
        for rot, trans in ((2.0, 2.0), (5.0, 5.0)):
            for name, c in CONDITIONS.items():
                target = _hmc_target(source, refs, c["masks"], pose_noise_rot=rot, pose_noise_trans=trans,
                                     seed=args.seed)
                r = fit(avatar, target, FitConfig(lr=0.1, lambda_latent=0.01, fit_headset=True,
                                                  antialias=c["antialias"]))
                m = score_fit(avatar, target, r).metrics
                print(f"| {rot:g} deg / {trans:g} mm | {name} | {_range(m['headset_deg_init'])} | "
                      f"{_range(m['headset_deg'])} | {_range(m['headset_mm_init'])} | {_range(m['headset_mm'])} | "
                      f"{_ci(m['geom_mm'], 3)} |", flush=True)


if __name__ == "__main__":
    main()
