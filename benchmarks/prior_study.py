"""Does an HMC prior encoder learn from its views? A regression study on one capture.

The question: a conditional prior that predicts one
code for every frame cannot help fitting. This script isolates the prior encoder: it
regresses a trained DAM's encoder codes (the decoder's space) from the synthetic-HMC
views of each frame, as DAM-HMC-Reg does, with the library's ``HmcEncoder`` and
``regress`` term, and reports R^2 of the predicted mean against the codes on the
capture's train / validation / test frames (the split of the DAM run).

Each setting is a combination of the headset-pose noise, the augmentation, the number of
independent draws per training frame (1 = one observation per frame, drawn once, as
training did before; K = a new draw of headset pose and augmentation among K per step)
and the encoder's options. Training frames are also observed under a draw never used in
training (``train_fresh``): the gap between ``train`` and ``train_fresh`` is memorisation
of the draw.

    python benchmarks/prior_study.py --capture avatarfit-demo/capture --dam avatarfit-demo/runs/dam \\
        --steps 1500 --settings "pose=2 draws=1" "pose=2 draws=16" "pose=0 draws=1"
"""

from __future__ import annotations

import argparse
import time

import torch

from avatarfit.avatar import Avatar
from avatarfit.data.capture import Capture, FrameRef
from avatarfit.metrics import r_squared
from avatarfit.models.config import HmcEncoderConfig
from avatarfit.models.hmc_encoder import HmcEncoder
from avatarfit.models.priors import gaussian_log_prob
from avatarfit.synth.hmc import HmcConfig, SyntheticHmc

FRESH_DRAW = 10_007  # a draw no training setting uses


def parse_setting(text: str) -> dict:
    out = {"pose": 2.0, "augment": 1, "draws": 1, "size": "60x80", "norm": "none", "head": "flatten", "beta": 0.0}
    for item in text.split():
        key, _, value = item.partition("=")
        if key not in out:
            raise SystemExit(f"setting {text!r}: unknown key {key!r} (known: {sorted(out)})")
        out[key] = type(out[key])(value)
    return out


def observe(tool: SyntheticHmc, refs: list[FrameRef], draw: int) -> torch.Tensor:
    """``(N, 3, 1, h, w)`` views of ``refs``, draw ``draw``."""
    return torch.stack([tool.sample(r.segment, r.frame, draw).views for r in refs])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--capture", required=True)
    p.add_argument("--dam", required=True, help="a DAM run folder (its avatar.pt gives the codes and the split)")
    p.add_argument("--steps", type=int, default=1500)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--views-size", default="120x160")
    p.add_argument("--settings", nargs="+", default=["pose=2 draws=1", "pose=2 draws=16", "pose=0 draws=1"])
    args = p.parse_args()
    torch.set_num_threads(2)
    capture = Capture(args.capture)
    avatar = Avatar.load(f"{args.dam}/avatar.pt")
    splits = {k: [FrameRef(*name.split("/")) for name in v] for k, v in avatar.info["splits"].items()}
    with torch.no_grad():
        codes = {k: avatar.encode(*capture.tracked(refs)) for k, refs in splits.items()}
    vh, vw = (int(x) for x in args.views_size.split("x"))
    print(f"capture {args.capture}: " + ", ".join(f"{k} {len(v)}" for k, v in splits.items())
          + f" frames; DAM codes' per-dimension std on train {codes['train'].std(0).mean():.3f}")
    print("| setting | train | train_fresh | validation | test | pred std | s |")
    print("|---|---|---|---|---|---|---|")
    cache: dict = {}
    for text in args.settings:
        s = parse_setting(text)
        hmc = HmcConfig(views_size=(vh, vw), pose_noise_rot=s["pose"], pose_noise_trans=s["pose"],
                        augment=bool(s["augment"]))
        t0 = time.perf_counter()
        key = (s["pose"], s["augment"])
        tool = SyntheticHmc(capture, hmc)

        def views(split: str, draws: list[int]) -> torch.Tensor:
            for d in draws:
                if key + (split, d) not in cache:
                    cache[key + (split, d)] = observe(tool, splits[split], d)
            return torch.stack([cache[key + (split, d)] for d in draws], 1)

        train_views = views("train", list(range(s["draws"])))
        h, w = (int(x) for x in s["size"].split("x"))
        torch.manual_seed(args.seed)
        enc = HmcEncoder(HmcEncoderConfig(input_size=(h, w), normalise=s["norm"], head=s["head"]), avatar.latent_size)
        opt = torch.optim.Adam(enc.parameters(), lr=args.lr)
        gen = torch.Generator().manual_seed(args.seed)
        target = codes["train"]
        N, K = train_views.shape[:2]
        for _ in range(args.steps):
            i = torch.randint(N, (args.batch,), generator=gen)
            d = torch.randint(K, (args.batch,), generator=gen)
            mu, ls, _ = enc(train_views[i, d])
            loss = -gaussian_log_prob(target[i], mu, ls, s["beta"]).mean() / avatar.latent_size
            opt.zero_grad()
            loss.backward()
            opt.step()
        enc.eval()
        res = {}
        with torch.no_grad():
            for name, split, seeds in (("train", "train", [0]), ("train_fresh", "train", [FRESH_DRAW]),
                                       ("validation", "validation", [0]), ("test", "test", [0])):
                pred = enc(views(split, seeds)[:, 0])[0]
                res[name] = float(r_squared(pred, codes[split]))
                if name == "test":
                    res["std"] = float(pred.std(0).mean())
        print(f"| {text} | {res['train']:.2f} | {res['train_fresh']:.2f} | {res['validation']:.2f} | "
              f"{res['test']:.2f} | {res['std']:.3f} | {time.perf_counter() - t0:.0f} |", flush=True)


if __name__ == "__main__":
    main()
