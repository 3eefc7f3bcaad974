#!/usr/bin/env python
"""Fitting speed: seconds per frame of an HMC fit (3 views) at 200 Adam steps, by batch
size, with avatarfit's bounding-box rasteriser and with PyTorch3D's, in one run.

Every fit runs a fixed number of steps (no early stopping), so the figure is the cost of
the paper's 200-step budget; ``--steps`` timed steps are scaled to 200. The PyTorch3D
reference runs fewer steps (``--reference-steps``; it is slow on a CPU) and only at the
smallest batch unless ``--reference-all``. Medians of ``--repeats`` runs after a warm-up.
Target (issue 8): <= 2 s per frame on 2 CPU cores.

usage: python benchmarks/bench_fit.py --run RUN --capture CAP [--batches 1 8 32] [--device cpu]

RUN is any trained run folder (or avatar file) of CAP's subject, e.g. the demo's
``avatarfit-demo/runs/lip_flow_hmc`` with ``--capture avatarfit-demo/capture``.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from avatarfit.avatar import Avatar
from avatarfit.data import Capture
from avatarfit.fit import FitConfig, TargetSource, fit

PAPER_STEPS = 200


def _seconds_per_frame(avatar, target, steps: int, repeats: int, device: torch.device) -> float:
    config = FitConfig(steps=steps, patience=steps + 1, tol=0.0)
    fit(avatar, target, FitConfig(steps=2, patience=3, tol=0.0))  # warm-up
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fit(avatar, target, config)
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * PAPER_STEPS / steps / target.batch


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", required=True)
    p.add_argument("--capture", required=True)
    p.add_argument("--batches", type=int, nargs="+", default=[1, 8, 32])
    p.add_argument("--steps", type=int, default=20, help="timed steps per fit (scaled to 200)")
    p.add_argument("--reference-steps", type=int, default=3)
    p.add_argument("--reference-all", action="store_true", help="PyTorch3D at every batch size")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--device", default="cpu")
    args = p.parse_args()
    device = torch.device(args.device)
    cap = Capture(args.capture)
    frames = cap.frames()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {device}")
    print("| batch | backend | s/frame (200 steps) | PyTorch3D / bbox |")
    print("|---|---|---|---|")
    for batch in args.batches:
        refs = [frames[i % len(frames)] for i in range(batch)]
        rows = {}
        for backend in ("bbox", "pytorch3d"):
            if backend == "pytorch3d" and not (args.reference_all or batch == min(args.batches)) and device.type == "cpu":
                continue
            avatar = Avatar.load(args.run, backend=backend).to(device)
            source = TargetSource(cap, condition=avatar.condition if avatar.conditional else None)
            target = source.build("hmc", refs).to(device)
            steps = args.steps if backend == "bbox" or device.type == "cuda" else args.reference_steps
            rows[backend] = _seconds_per_frame(avatar, target, steps, args.repeats, device)
        ratio = f"{rows['pytorch3d'] / rows['bbox']:.1f}x" if "pytorch3d" in rows else "-"
        print(f"| {batch} | bbox | {rows['bbox']:.3f} | {ratio} |")
        if "pytorch3d" in rows:
            print(f"| {batch} | pytorch3d | {rows['pytorch3d']:.3f} | |", flush=True)


if __name__ == "__main__":
    main()
