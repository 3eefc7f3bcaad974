"""How an HMC prior's mean fares when its views are made differently from its training's.

For each run: the prior's mean on the avatar's test frames, observed once as its training
observed them and once with the synthetic-HMC augmentation (gain, shading, background,
noise, camera jitter) switched the other way; geometry error against the tracked meshes and
motion explained (1 - Geom / Geom of the capture's mean mesh). A prior trained on clean
renders, observed on augmented views, stands in for one meeting a real headset's images.

    python benchmarks/prior_observation.py --capture CAP RUN [RUN ...]
"""

from __future__ import annotations

import argparse
import copy

import torch

from avatarfit.avatar import Avatar
from avatarfit.data.capture import Capture, FrameRef
from avatarfit.synth.observe import Observer


def prior_mean_geometry(avatar: Avatar, capture: Capture, augment: bool) -> tuple[float, float]:
    """``(Geom mm, motion explained)`` of the prior's mean on the test frames, observed with
    ``augment``."""
    record = copy.deepcopy(avatar.info.get("observation"))
    if not record or record.get("source") != "memory" or avatar.condition != "hmc":
        raise SystemExit("expected an HMC-conditioned avatar observed in memory (info['observation'])")
    record["hmc"]["augment"] = augment
    observer = Observer.from_record(capture, record)
    refs = [FrameRef(*name.split("/")) for name in avatar.info["splits"]["test"]]
    truth = torch.stack([capture.vertices(r.segment, r.frame) for r in refs])
    views = torch.stack([observer.observe(r) for r in refs])
    with torch.no_grad():
        z, _ = avatar.prior_mean(views)
        geom = float((avatar.geometry(z) - truth).norm(dim=-1).mean())
    still = float((truth - avatar.vert_mean).norm(dim=-1).mean())
    return geom, 1.0 - geom / still


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--capture", required=True)
    p.add_argument("runs", nargs="+", help="run folders of HMC-conditioned priors (their avatar.pt)")
    args = p.parse_args()
    torch.set_num_threads(1)
    capture = Capture(args.capture)
    print("| run | trained on | observed on | Geom mm | motion explained |")
    print("|---|---|---|---|---|")
    for run in args.runs:
        avatar = Avatar.load(f"{run}/avatar.pt")
        avatar.model.eval()
        trained = "augmented" if avatar.info["observation"]["hmc"]["augment"] else "clean"
        for augment in (False, True):
            geom, motion = prior_mean_geometry(avatar, capture, augment)
            print(f"| {run} | {trained} | {'augmented' if augment else 'clean'} | {geom:.3f} | {motion:.2f} |")


if __name__ == "__main__":
    main()
