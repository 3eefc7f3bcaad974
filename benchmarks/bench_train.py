#!/usr/bin/env python
"""Training speed: steps/s of the small configs on the CPU (and of the paper-scale config
on a GPU when one is available), with avatarfit's bbox rasteriser and, as the reference
in the same run, PyTorch3D's.

A procedural capture is generated in a temporary folder first (1 segment x 12 frames,
8 cameras at 128x96 for the small scale; 4 cameras at 512x384 with 1024^2 textures for the
paper scale). Each measurement is the median time of --steps optimiser steps (forward,
backward, Adam) after two warm-up steps, with the config's batch and views per frame.

usage: python benchmarks/bench_train.py [--variants dam_hmc lip_flow_hmc] [--steps 10] [--reference-steps 3]
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import tempfile
import time
from pathlib import Path

import torch

from avatarfit.data import Capture
from avatarfit.models import build_model
from avatarfit.synth.generate import SynthConfig, generate_capture
from avatarfit.train.config import load_train_config
from avatarfit.train.data import TrainingData
from avatarfit.train.loop import build_optimizer
from avatarfit.train.objective import Objective

ROOT = Path(__file__).resolve().parents[1]


def _seconds_per_step(config, capture: Capture, steps: int, device: torch.device) -> float:
    torch.manual_seed(0)
    model = build_model(config.model, capture.topology.num_verts)
    data = TrainingData(capture, config, model.conditional)
    objective = Objective(model, data, config).to(device)
    opt = build_optimizer(objective, config.train.lr)
    times = []
    for step in range(steps + 2):
        batch = {k: v.to(device) for k, v in data.training_batch(step).items()}  # cached after the first pass
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        loss = objective(batch)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        if step >= 2:
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _row(label: str, config, capture: Capture, args, device: torch.device) -> None:
    rates = {}
    for backend, steps in (("pytorch3d", args.reference_steps), ("bbox", args.steps)):
        if device.type == "cuda" and backend == "bbox":
            steps = args.steps
        cfg = dataclasses.replace(config, train=dataclasses.replace(config.train, backend=backend))
        rates[backend] = 1.0 / _seconds_per_step(cfg, capture, steps, device)
    print(f"{label:>34} {device.type:>6} {rates['pytorch3d']:>18.2f} {rates['bbox']:>13.2f} "
          f"{rates['bbox'] / rates['pytorch3d']:>6.1f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", nargs="+", default=["dam_hmc", "lip_flow_hmc"])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--reference-steps", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        small = Path(tmp) / "small"
        generate_capture(small, SynthConfig(segments=1, frames=12, cameras=8, image_size=(128, 96), texture_size=256),
                         progress=False)
        cap = Capture(small)
        print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; median s/step over {args.steps} "
              f"(bbox) and {args.reference_steps} (pytorch3d) steps")
        print(f"{'config':>34} {'device':>6} {'pytorch3d (steps/s)':>18} {'bbox (steps/s)':>13} {'ratio':>7}")
        for v in args.variants:
            config = load_train_config(ROOT / "configs" / "train" / "small" / f"{v}.yaml")
            _row(f"small/{v}", config, cap, args, torch.device("cpu"))
        if torch.cuda.is_available():
            paper = Path(tmp) / "paper"
            generate_capture(paper, SynthConfig(segments=1, frames=6, cameras=4, image_size=(512, 384),
                                                texture_size=1024, backend="pytorch3d"), progress=False)
            pcap = Capture(paper)
            for v in args.variants:
                config = load_train_config(ROOT / "configs" / "train" / "paper" / f"{v}.yaml")
                _row(f"paper/{v}", config, pcap, args, torch.device("cuda"))
        else:
            print("no CUDA device: the paper-scale configs are measured on a GPU only")


if __name__ == "__main__":
    main()
