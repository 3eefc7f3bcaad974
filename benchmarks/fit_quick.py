"""Fit test frames of a capture with trained runs and print before/after metrics.

    python benchmarks/fit_quick.py --capture CAP --kind hmc --frames 8 RUN [RUN ...]

Test frames of the default split (the last 15% of each segment); lr and lambda_L are fixed
(``--lr``, ``--lambda-latent``); HMC targets are clean synthetic views at 120x160.
"""

from __future__ import annotations

import argparse
import time

from avatarfit.avatar import Avatar
from avatarfit.data import Capture
from avatarfit.data.splits import split_frames
from avatarfit.fit import FitConfig, fit, score_fit
from avatarfit.observe import TargetSource


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--capture", required=True)
    p.add_argument("--kind", default="hmc", choices=("frontal", "masked", "hmc", "keypoints"))
    p.add_argument("--frames", type=int, default=8)
    p.add_argument("--lr", type=float, default=0.1)
    p.add_argument("--lambda-latent", type=float, default=0.01)
    p.add_argument("runs", nargs="+")
    args = p.parse_args()
    cap = Capture(args.capture)
    refs = split_frames(cap, 0.1, 0.15)["test"][: args.frames]
    print("| run | kind | PSNR init -> fit | geometry mm init -> fit | steps | s/frame |")
    print("|---|---|---|---|---|---|")
    for run in args.runs:
        avatar = Avatar.load(run)
        source = TargetSource.for_avatar(cap, avatar)
        target = source.build(args.kind, refs)
        t0 = time.perf_counter()
        result = fit(avatar, target, FitConfig(lr=args.lr, lambda_latent=args.lambda_latent))
        s = score_fit(avatar, target, result).summary()
        print(f"| {run} | {args.kind} | {s['psnr_init']:.2f} -> {s['psnr']:.2f} | {s['geom_mm_init']:.3f} -> "
              f"{s['geom_mm']:.3f} | {s['steps_mean']:.1f} | {(time.perf_counter() - t0) / len(refs):.2f} |", flush=True)


if __name__ == "__main__":
    main()
