#!/usr/bin/env python
"""A speed table per stage, in the layout of the speed tables of Multi-scale Compensatory Codebooks: FLOPs per sample,
frames per second and peak memory, for the small and the paper configuration, printed as
Markdown.

Stages: DAM encoder, HMC encoder, KPT encoder, flow, decoder (geometry and one texture),
rendering of 3 HMC views (decoded mesh and textures, no grad), one fitting step
(3 HMC views: decode, render, objective, backward, Adam) and a whole fit (200 steps,
extrapolated from the timed steps). FLOPs are counted with
``torch.utils.flop_counter.FlopCounterMode`` (matrix products and convolutions, forward
only; the rasteriser and texture lookups count none) and set beside the paper's (LiP-Flow, supplementary
Table 10). Models are randomly initialised (speed does not depend on the weights); the
mesh is the procedural subject's (5,840 vertices, 11,376 faces; the paper's Multiface
mesh has 7,306 and 10,936). Each figure is the median of ``--repeats`` timed runs after a
warm-up; peak memory is the CUDA allocator's peak on a GPU and the growth of the
process's peak resident memory on a CPU (each stage in a fresh process, so it is its own).

usage: python benchmarks/speed_table.py [--configs small paper] [--batch 8] [--device cpu]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import statistics
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
STAGES = ("DAM encoder", "HMC encoder", "KPT encoder", "flow", "decoder", "render 3 HMC views", "fitting step",
          "whole fit (200 steps)")
#: Seed 003, Table 10: GFLOPs per sample.
PAPER_GFLOPS = {"DAM encoder": 2.54, "HMC encoder": 1.736, "KPT encoder": 0.004, "flow": 0.011, "decoder": 2.0}


def _config(name: str):
    from avatarfit.train.config import load_train_config

    return load_train_config(ROOT / "configs" / "train" / name / "lip_flow_hmc.yaml")


def _setup(config_name: str, device: str, batch: int):
    """Model pieces, inputs and an HMC fitting target at the config's sizes."""
    import dataclasses

    from avatarfit.avatar import Avatar
    from avatarfit.data.stats import NormStats
    from avatarfit.observe.targets import HMCTarget
    from avatarfit.models import build_model
    from avatarfit.synth.procedural import make_procedural_subject

    torch.manual_seed(0)
    cfg = _config(config_name)
    subject = make_procedural_subject(seed=0)
    V = subject.verts.shape[0]
    model_hmc = build_model(cfg.model, V).to(device).eval()
    model_kpt = build_model(dataclasses.replace(cfg.model, condition="kpt"), V).to(device).eval()
    T = cfg.model.dam.texture_size
    # A small vertex std: the random decoder then decodes about the mean mesh, as a trained one does.
    stats = NormStats(torch.full((3, T, T), 0.5), 0.25, subject.verts.float(), 1.0)
    avatar = Avatar(model_hmc, stats, subject.faces, subject.verts_uvs, subject.faces_uvs, background=0.1).to(device)
    h, w = cfg.data.hmc.views_size
    centre = subject.verts.float().mean(0)
    # Three cameras 60 mm in front of the face, looking at the eyes and the mouth.
    from avatarfit.render import look_at

    eyes = torch.stack([centre + torch.tensor(d) for d in ([-35.0, -30, 80], [35.0, -30, 80], [0.0, 40, 70])])
    R, t = look_at(eyes, torch.stack([centre + torch.tensor(d) for d in ([-35.0, -30, 0], [35.0, -30, 0],
                                                                          [0.0, 40, 0])]), torch.tensor([0.0, -1, 0]))
    K = torch.tensor([[0.8 * w, 0, w / 2], [0, 0.8 * w, h / 2], [0, 0, 1]]).expand(3, 3, 3)
    rep = (lambda x: x[None].expand(batch, *x.shape).contiguous().to(device))
    eye = torch.eye(3, device=device).expand(batch, 3, 3).contiguous()
    views = torch.rand(batch, 3, 1, h, w, device=device)
    ih, iw = cfg.model.hmc.input_size
    target = HMCTarget(views=views, rig_R=rep(R), rig_t=rep(t), K=rep(K),
                       headset_R=eye, headset_t=torch.zeros(batch, 3, device=device),
                       names=tuple(f"f{i}" for i in range(batch)),
                       observation=torch.rand(batch, 3, 1, ih, iw, device=device), background=0.1)
    inputs = {
        "texture": torch.rand(batch, 3, T, T, device=device), "verts": torch.randn(batch, V, 3, device=device),
        "hmc": torch.rand(batch, 3, 1, ih, iw, device=device), "kpt": torch.rand(batch, 274, 2, device=device),
        "z": torch.randn(batch, cfg.model.dam.latent, device=device),
        "view": torch.nn.functional.normalize(torch.randn(batch, 3, device=device), dim=-1),
    }
    return cfg, model_hmc, model_kpt, avatar, target, inputs


def _stage_fn(stage: str, config_name: str, device: str, batch: int):
    from avatarfit.fit import FitConfig, fit
    from avatarfit.fit.optimize import hmc_cameras

    cfg, model, model_kpt, avatar, target, x = _setup(config_name, device, batch)
    prior = model.prior
    if stage == "DAM encoder":
        return lambda: model.encoder(x["texture"], x["verts"]), True
    if stage == "HMC encoder":
        return lambda: prior.encoder(x["hmc"]), True
    if stage == "KPT encoder":
        return lambda: model_kpt.prior.encoder(x["kpt"]), True
    if stage == "flow":
        params = prior.params(x["hmc"])
        return lambda: prior.flow(x["z"], params.h), True
    if stage == "decoder":
        return lambda: model.decoder(x["z"], x["view"]), True
    if stage == "render 3 HMC views":
        R, t = hmc_cameras(target)
        w = torch.tensor([0.6, 0.3, 0.1], device=device)
        return lambda: avatar.render_views(x["z"], target.K, R, t, target.image_size, channel_weights=w), False
    steps = 5 if stage == "fitting step" else 20
    config = FitConfig(steps=steps, patience=steps + 1, tol=0.0)
    return (lambda: fit(avatar, target, config)), steps


def _measure(queue, stage: str, config_name: str, device: str, batch: int, repeats: int) -> None:
    from torch.utils.flop_counter import FlopCounterMode

    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    fn, kind = _stage_fn(stage, config_name, device, batch)
    flops = None
    if kind is True:  # a network: count its forward FLOPs
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            fn()
        flops = counter.get_total_flops() / batch
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    with torch.set_grad_enabled(not isinstance(kind, bool)):  # networks and rendering: inference
        fn()
        times = []
        for _ in range(repeats):
            if device == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            fn()
            if device == "cuda":
                torch.cuda.synchronize()
            times.append(time.perf_counter() - t0)
    seconds = statistics.median(times)
    if not isinstance(kind, bool):  # a fit of `kind` steps: per step, or scaled to 200 steps
        seconds = seconds / kind * (1 if stage == "fitting step" else 200)
    if device == "cuda":
        peak = torch.cuda.max_memory_allocated() / 2**20
    else:
        peak = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0) / 1024
    queue.put((flops, seconds, peak))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--configs", nargs="+", default=["small", "paper"], choices=["small", "paper"])
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--stages", nargs="+", default=list(STAGES), choices=STAGES)
    args = p.parse_args()
    ctx = mp.get_context("spawn")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {args.device}, batch {args.batch}\n")
    print("| config | stage | GFLOPs/sample (ours) | GFLOPs/sample (paper) | frames/s | ms/batch | peak memory (MiB) |")
    print("|---|---|---|---|---|---|---|")
    for config_name in args.configs:
        for stage in args.stages:
            queue = ctx.Queue()
            proc = ctx.Process(target=_measure, args=(queue, stage, config_name, args.device, args.batch,
                                                      args.repeats))
            proc.start()
            proc.join()
            if proc.exitcode != 0:
                print(f"| {config_name} | {stage} | failed (exit {proc.exitcode}) | | | | |", flush=True)
                continue
            flops, seconds, peak = queue.get()
            ours = "-" if flops is None else f"{flops / 1e9:.3f}"
            paper = f"{PAPER_GFLOPS[stage]:g}" if stage in PAPER_GFLOPS else "-"
            fps = args.batch / seconds
            per = "s/frame" if stage.startswith("whole") else "frames/s"
            shown = f"{seconds / args.batch:.2f} {per}" if stage.startswith("whole") else f"{fps:.1f}"
            print(f"| {config_name} | {stage} | {ours} | {paper} | {shown} | {seconds * 1000:.1f} | {peak:.0f} |",
                  flush=True)


if __name__ == "__main__":
    main()
