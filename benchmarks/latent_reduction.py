"""Compare trained runs on held-out frames: DAM-encoder decoding, and a quick frontal fit
from the prior's mean (the measurement behind ``loss.latent_reduction``'s default).

For each run: PSNR of the decoded encoder mean (mu_q) in the frontal camera; statistics
of the held-out mu_q (how far the codes are from the N(0, I) the DAM fit starts from);
then Adam on z from the prior mean (0 for DAM; the conditional prior's mean otherwise)
against the whole frontal photo, ``lr`` 0.1, ``--steps`` steps, with the latent NLL
(summed over dimensions) weighted 0 and 1e-3; PSNR and geometry error (mm, mean
per-vertex distance to the tracked mesh) before and after.

    python benchmarks/latent_reduction.py --capture CAP RUN [RUN ...]
"""

from __future__ import annotations

import argparse
import time

import torch

from avatarfit.data import Capture
from avatarfit.metrics import psnr
from avatarfit.models import build_model
from avatarfit.train.checkpoint import config_of, load_checkpoint
from avatarfit.train.data import TrainingData
from avatarfit.train.objective import Objective


def _load(run: str, cap: Capture):
    payload = load_checkpoint(run)
    config = config_of(payload)
    model = build_model(config.model, payload["num_verts"])
    model.load_state_dict(payload["model"])
    model.eval().requires_grad_(False)
    data = TrainingData(cap, config, model.conditional)
    return Objective(model, data, config).eval(), data


def _geom_mm(objective: Objective, verts_n: torch.Tensor, target_n: torch.Tensor) -> torch.Tensor:
    return ((verts_n - target_n) * objective.avatar.vert_std).norm(dim=-1).mean(-1)


def _fit(objective: Objective, batch: dict, z0: torch.Tensor, params, weight: float, steps: int):
    z = z0.clone().requires_grad_(True)
    opt = torch.optim.Adam([z], lr=0.1)
    for _ in range(steps):
        r = objective.render(z, batch)
        loss = ((r["image"] - batch["photo"]) ** 2).mean((1, 2, 3, 4)).sum()
        if weight:
            loss = loss - weight * objective.model.prior.log_prob(z, params).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return z.detach()


@torch.no_grad()
def _scores(objective: Objective, batch: dict, z: torch.Tensor) -> tuple[float, float]:
    r = objective.render(z, batch)
    return (float(psnr(r["image"][:, 0].clamp(0, 1), batch["photo"][:, 0]).mean()),
            float(_geom_mm(objective, r["verts"], batch["verts"]).mean()))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--capture", required=True)
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("runs", nargs="+")
    args = p.parse_args()
    cap = Capture(args.capture)
    print("| run | reduction | decode PSNR | mu_q mean abs | mu_q std | sigma_q | start PSNR / mm "
          "| fit w/o L_L PSNR / mm | fit L_L 1e-3 PSNR / mm | s |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for run in args.runs:
        t0 = time.perf_counter()
        objective, data = _load(run, cap)
        batches = data.validation_batches(len(data.validation_frames))
        batch = batches[0]
        with torch.no_grad():
            c = objective.codes(batch)  # noise 0: z = mu_q (or mu_p)
            dec = _scores(objective, batch, c["z"]) if c["mu_q"] is not None else (float("nan"),) * 2
            model = objective.model
            params = model.prior.params(batch["condition"]) if model.conditional else model.prior.params(batch=c["z"].shape[0])
            z0 = model.prior.mean(params)
        mu = c["mu_q"] if c["mu_q"] is not None else params.mu
        sig = torch.exp(c["log_sigma_q"]).mean() if c["log_sigma_q"] is not None else float("nan")
        start = _scores(objective, batch, z0)
        fits = [_scores(objective, batch, _fit(objective, batch, z0, params, w, args.steps)) for w in (0.0, 1e-3)]
        red = objective.latent_scale
        print(f"| {run} | {'mean' if red < 1 else 'sum'} | {dec[0]:.2f} | {float(mu.abs().mean()):.3f} | "
              f"{float(mu.std(0).mean()):.3f} | {float(sig):.4f} | {start[0]:.2f} / {start[1]:.3f} | "
              f"{fits[0][0]:.2f} / {fits[0][1]:.3f} | {fits[1][0]:.2f} / {fits[1][1]:.3f} | "
              f"{time.perf_counter() - t0:.0f} |", flush=True)


if __name__ == "__main__":
    main()
