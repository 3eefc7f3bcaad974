#!/usr/bin/env python
"""Synthetic-HMC generation speed: frames/s of the full per-frame work (read mesh and
texture, sample the headset, render and augment three views, project and test 274
keypoints, write PNGs and text files), with avatarfit's bbox rasteriser and, as the
reference in the same run, PyTorch3D's rasteriser.

A small procedural capture (384x256 photos, 512^2 textures) is generated in a temporary
folder first. Prints frames/s from the median per-frame time (after one warm-up frame)
over --frames frames for bbox and --reference-frames for PyTorch3D (slow on a CPU:
about 8 s a frame at 240x320), for each HMC image size, and the ratio bbox / PyTorch3D.

usage: python benchmarks/bench_hmc.py [--sizes 240x320 480x640] [--frames 8] [--reference-frames 3]
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import tempfile
import time
from pathlib import Path

import torch

from avatarfit.data import Layout
from avatarfit.synth.generate import SynthConfig, generate_capture
from avatarfit.synth.hmc import HmcConfig, SyntheticHmc
from avatarfit.synth.hmc_write import write_sample


def _per_frame_seconds(hmc: SyntheticHmc, out: Path, frames: int) -> float:
    layout = Layout(out)
    times = []
    for i, ref in enumerate(hmc.frames[: frames + 1]):
        t0 = time.perf_counter()
        write_sample(layout, hmc.sample(ref.segment, ref.frame))
        if i > 0:  # the first frame warms up
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=["240x320", "480x640"])
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--reference-frames", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        cap = Path(tmp) / "cap"
        generate_capture(cap, SynthConfig(segments=1, frames=args.frames + 1, cameras=4, image_size=(384, 256),
                                          texture_size=512), progress=False)
        print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; procedural capture, "
              f"median per frame over {args.reference_frames} (pytorch3d) and {args.frames} (bbox) frames")
        print(f"{'size':>9} {'pytorch3d (frames/s)':>21} {'bbox (frames/s)':>16} {'ratio':>7}")
        for size in args.sizes:
            h, w = (int(v) for v in size.split("x"))
            rates = {}
            for backend, frames in (("pytorch3d", args.reference_frames), ("bbox", args.frames)):
                config = dataclasses.replace(HmcConfig(), views_size=(h, w), backend=backend)
                seconds = _per_frame_seconds(SyntheticHmc(cap, config), Path(tmp) / f"out-{backend}-{size}", frames)
                rates[backend] = 1.0 / seconds
            print(f"{size:>9} {rates['pytorch3d']:>21.2f} {rates['bbox']:>16.2f} "
                  f"{rates['bbox'] / rates['pytorch3d']:>6.1f}x")


if __name__ == "__main__":
    main()
