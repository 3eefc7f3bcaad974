#!/usr/bin/env python
"""Every stage on one device, in one run: a smoke test, fitting and training speed, peak
memory and a NaN hunt. Written for one H100/H200 (``benchmarks/gpu_check.sh`` runs it in
under 8 minutes); ``--device cpu --tiny`` is a dry run of every stage at tiny sizes.

1. smoke: the two rasterisers agree on the device (pixels covered by the same face,
   image difference); one training step of every variant (HMC and KPT); a fit of every
   target kind (frontal, masked, HMC with the headset pose, keypoints).
2. fitting frames/s: 200 steps, 3 HMC views, batches ``--batches``, small and paper
   configuration (randomly initialised; speed does not depend on the weights), with the
   bound of about 330 frames/s on an H100 at paper scale beside (200 steps x 3 views x
   2 GFLOP decoder x 3 for forward and backward, at the dense TF32 rate of ~400 TFLOP/s).
3. training steps/s of LiP-Flow-HMC at paper scale (synthetic capture at 512x384).
4. peak memory of each of the above (CUDA allocator).
5. NaN hunt: ``--nan-fits`` HMC fits with 2 degrees / 2 mm headset noise and the pose
   fitted, counting frames whose objective became NaN or Inf.

usage: python benchmarks/gpu_check.py [--device cuda] [--tiny]
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
import time
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from speed_table import _setup  # noqa: E402  (the same random avatars and HMC targets)

ROOT = Path(__file__).resolve().parents[1]
H100_BOUND = 330.0


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _peak(device: torch.device) -> str:
    return f"{torch.cuda.max_memory_allocated() / 2**20:.0f} MiB" if device.type == "cuda" else "-"


def _reset(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()


def smoke(device: torch.device, tmp: Path, tiny: bool) -> None:
    from avatarfit.avatar import Avatar
    from avatarfit.data import Capture
    from avatarfit.fit import FitConfig, fit, score_fit
    from avatarfit.observe import TargetSource
    from avatarfit.models import VARIANTS
    from avatarfit.render import look_at, render_textured
    from avatarfit.synth.generate import SynthConfig, generate_capture
    from avatarfit.synth.procedural import make_procedural_subject
    from avatarfit.train import train
    from avatarfit.train.config import load_train_config

    print("## 1. smoke test", flush=True)
    s = make_procedural_subject(seed=0)
    B = 4
    verts = s.verts[None].expand(B, -1, -1).float().to(device)
    c = verts[0].mean(0)
    eyes = torch.stack([c + torch.tensor([40.0 * i - 60, 10, 400], device=device) for i in range(B)])
    R, t = look_at(eyes, c.expand(B, 3), torch.tensor([0.0, -1, 0], device=device))
    K = torch.tensor([[300.0, 0, 96], [0, 300, 128], [0, 0, 1]], device=device).expand(B, 3, 3)
    tex = torch.rand(B, 3, 64, 64, device=device)
    outs = {b: render_textured(verts, s.faces.to(device), s.verts_uvs.to(device), s.faces_uvs.to(device), tex, K, R,
                               t, (256, 192), backend=b) for b in ("bbox", "pytorch3d")}
    same = (outs["bbox"].pixels.pix_to_face == outs["pytorch3d"].pixels.pix_to_face).float().mean()
    diff = (outs["bbox"].image - outs["pytorch3d"].image).abs().max()
    print(f"- rasterisers on {device}: {100 * float(same):.3f} % of pixels covered by the same face, "
          f"max image difference {float(diff):.2e}")
    cap_dir = tmp / "smoke_cap"
    generate_capture(cap_dir, SynthConfig(segments=1, frames=4, cameras=4, image_size=(96, 72), texture_size=128,
                                          seed=3), progress=False)
    cap = Capture(cap_dir)
    sets = {"model": {"dam": {"latent": 8, "texture_size": 32, "channels": [8, 8], "geometry_hidden": 32,
                              "view_features": 4},
                      "hmc": {"input_size": [24, 32], "channels": [4, 8], "features": 16},
                      "kpt": {"hidden": 32, "blocks": 2, "features": 16, "dropout": 0.1},
                      "flow": {"layers": 2, "hidden": 16, "blocks_per_layer": 1}},
            "data": {"views_per_frame": 2, "validation": 0.25, "test": 0.25, "hmc": {"views_size": [48, 64]}},
            "train": {"batch": 2, "steps": 2, "eval_every": 2, "log_every": 1, "checkpoint_every": 2,
                      "max_minutes": None, "device": device.type}}
    from avatarfit.config import merge_mappings

    runs = {}
    for variant, info in VARIANTS.items():
        for cond in ("hmc", "kpt") if info.conditional else ("hmc",):
            extra = {"train": {"pretrained": str(runs["dam-hmc"])}} if info.pretrained else {}
            cfg = load_train_config(None, merge_mappings(sets, merge_mappings(
                {"model": {"variant": variant, "condition": cond}}, extra)))
            out = tmp / f"run_{variant}_{cond}"
            t0 = time.perf_counter()
            result = train(cfg, cap, out, progress=False, log=lambda m: None)
            runs[f"{variant}-{cond}"] = out
            print(f"- train {variant}-{cond}: {result.steps} steps, validation loss {result.best_loss:.4f} "
                  f"({time.perf_counter() - t0:.1f} s)", flush=True)
    avatar = Avatar.load(runs["dam-hmc"]).to(device)
    source = TargetSource(cap)
    for kind in ("frontal", "masked", "hmc", "keypoints"):
        target = source.build(kind, cap.frames()[:2], pose_noise_rot=2.0 if kind == "hmc" else 0.0).to(device)
        config = FitConfig(steps=5, fit_headset=kind == "hmc")
        r = score_fit(avatar, target, fit(avatar, target, config))
        print(f"- fit {kind}: {int(r.steps.max())} steps, failed {int(r.failed.sum())}, "
              f"PSNR {float(r.metrics['psnr'].mean()):.2f} dB", flush=True)


def fitting_speed(device: torch.device, configs, batches, steps: int) -> None:
    from avatarfit.fit import FitConfig, fit

    print(f"\n## 2. fitting frames/s (3 HMC views, {steps} timed steps scaled to 200)\n", flush=True)
    print("| config | batch | frames/s | s/frame | peak memory | bound (H100, paper) |")
    print("|---|---|---|---|---|---|")
    for name in configs:
        for batch in batches:
            try:
                _, _, _, avatar, target, _ = _setup(name, device.type, batch)
                config = FitConfig(steps=steps, patience=steps + 1, tol=0.0)
                fit(avatar, target, dataclasses.replace(config, steps=2, patience=3))
                _reset(device)
                _sync(device)
                t0 = time.perf_counter()
                fit(avatar, target, config)
                _sync(device)
                per_frame = (time.perf_counter() - t0) * 200 / steps / batch
                bound = f"{H100_BOUND:.0f}" if name == "paper" else "-"
                print(f"| {name} | {batch} | {1 / per_frame:.2f} | {per_frame:.3f} | {_peak(device)} | {bound} |",
                      flush=True)
                del avatar, target
            except torch.OutOfMemoryError:
                print(f"| {name} | {batch} | out of memory | | | |", flush=True)
            if device.type == "cuda":
                torch.cuda.empty_cache()


def training_speed(device: torch.device, tmp: Path, tiny: bool, steps: int) -> None:
    from avatarfit.data import Capture
    from avatarfit.models import build_model
    from avatarfit.synth.generate import SynthConfig, generate_capture
    from avatarfit.train.config import load_train_config
    from avatarfit.train.data import TrainingData
    from avatarfit.train.objective import Objective

    scale = "small" if tiny else "paper"
    print(f"\n## 3. training steps/s ({scale} LiP-Flow-HMC)\n", flush=True)
    size, tex = ((96, 72), 128) if tiny else ((512, 384), 1024)
    cap_dir = tmp / "train_cap"
    generate_capture(cap_dir, SynthConfig(segments=1, frames=6, cameras=4, image_size=size, texture_size=tex,
                                          backend="auto"), progress=False)
    cap = Capture(cap_dir)
    config = load_train_config(ROOT / "configs" / "train" / scale / "lip_flow_hmc.yaml")
    if tiny:
        config = dataclasses.replace(config, train=dataclasses.replace(config.train, batch=2))
    torch.manual_seed(0)
    model = build_model(config.model, cap.topology.num_verts)
    data = TrainingData(cap, config, model.conditional)
    objective = Objective(model, data, config).to(device)
    opt = torch.optim.Adam([p for p in objective.parameters() if p.requires_grad], lr=config.train.lr,
                           fused=device.type == "cuda")
    times = []
    _reset(device)
    for step in range(steps + 2):
        batch = {k: v.to(device) for k, v in data.training_batch(step).items()}
        _sync(device)
        t0 = time.perf_counter()
        loss = objective(batch)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        _sync(device)
        if step >= 2:
            times.append(time.perf_counter() - t0)
    times.sort()
    median = times[len(times) // 2]
    print(f"- batch {config.train.batch}: {1 / median:.2f} steps/s ({median * 1000:.0f} ms/step), "
          f"peak memory {_peak(device)}", flush=True)


def nan_hunt(device: torch.device, tiny: bool, fits: int) -> None:
    from avatarfit.fit import FitConfig, fit
    from avatarfit.observe.pose import perturb_headset

    print(f"\n## 5. NaN hunt: {fits} HMC fits, 2 degrees / 2 mm headset noise, pose fitted\n", flush=True)
    _, _, _, avatar, target, _ = _setup("small", device.type, fits)
    g = torch.Generator().manual_seed(0)
    hR, ht = perturb_headset(target.headset_R.cpu(), target.headset_t.cpu(), 2.0, 2.0, generator=g)
    target = dataclasses.replace(target, headset_R=hR.to(device), headset_t=ht.to(device))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        r = fit(avatar, target, FitConfig(steps=20 if tiny else 200, fit_headset=True))
    print(f"- failed frames: {int(r.failed.sum())} of {fits}; warnings: {len(caught)}", flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda")
    p.add_argument("--tiny", action="store_true", help="tiny sizes (a dry run of every stage)")
    args = p.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: torch sees no CUDA device (use --device cpu --tiny for a dry run)")
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"torch {torch.__version__} on {name}; TF32 {'on' if device.type == 'cuda' else 'n/a'}\n", flush=True)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        smoke(device, Path(tmp), args.tiny)
        if args.tiny:
            fitting_speed(device, ["small"], [1, 2], steps=2)
        else:
            fitting_speed(device, ["small", "paper"], [1, 16, 64, 256], steps=10)
        training_speed(device, Path(tmp), args.tiny, steps=2 if args.tiny else 10)
        nan_hunt(device, args.tiny, 4 if args.tiny else 256)
    print(f"\n(section 4, peak memory, is the column and figures above) done in {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
