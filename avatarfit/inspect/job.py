"""What ``avatarfit inspect-latents`` runs: pick inputs of a capture, sample the avatar's
prior for each, decode a few samples, write the TensorBoard logs."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from ..avatar import Avatar
from ..data.capture import Capture, FrameRef
from ..data.selection import select_frames
from ..data.splits import spread
from .latents import LatentSamples, sample_latents
from .report import write_latent_logs

__all__ = ["InspectReport", "inspect_latents", "input_frames"]


@dataclass
class InspectReport:
    """The samples, the inputs' frames and the files written."""

    samples: LatentSamples
    frames: list[FrameRef]
    files: dict[str, Path]


def input_frames(capture: Capture, count: int, spec: str | None = None) -> list[FrameRef]:
    """``count`` frames spread evenly over the capture's frames (or over those ``spec`` picks).

    Raises:
        ValueError: naming ``--inputs`` when there are fewer frames than inputs.
    """
    frames = select_frames(capture, spec)
    if count < 1:
        raise ValueError(f"--inputs: expected at least 1 input, got {count}")
    if count > len(frames):
        raise ValueError(f"--inputs: {count} inputs asked for, but only {len(frames)} frames are selected "
                         f"(--frames {spec!r} of {capture.root})" if spec else
                         f"--inputs: {count} inputs asked for, but {capture.root} has only {len(frames)} frames")
    return spread(frames, count)


@torch.no_grad()
def inspect_latents(run: str | Path, capture: str | Path | Capture, logdir: str | Path, *, inputs: int = 15,
                    samples: int = 100, frames: str | None = None, decoded: int = 4, seed: int = 0) -> InspectReport:
    """Sample the prior of ``inputs`` frames of ``capture`` (their HMC views or keypoints,
    made by the synthetic HMC tool) and log everything to ``logdir``.

    Every argument is checked before any sampling: ``samples`` >= 2, ``inputs`` no more
    than the frames, a run with an avatar file, a capture with the landmarks the
    observations need.
    """
    from ..observe.sources import TargetSource

    if samples < 2:
        raise ValueError(f"--samples: expected at least 2 samples per input, got {samples}")
    avatar = Avatar.load(run)
    cap = capture if isinstance(capture, Capture) else Capture(capture)
    refs = input_frames(cap, inputs, frames)
    source = TargetSource.for_avatar(cap, avatar)
    observation = source.observation(refs)  # first: it needs the capture's landmarks
    truth = source.truth(refs)
    result = sample_latents(avatar, observation, truth.names, samples=samples, seed=seed)
    renders = {}
    k = min(decoded, samples)
    for i, name in enumerate(truth.names):
        z = result.q[i, :k].to(avatar.vert_mean)
        rep = lambda x: x[i:i + 1].expand(k, *x.shape[1:])  # noqa: E731 - one frame's camera for k codes
        out = avatar.render(z, rep(truth.K), rep(truth.R), rep(truth.t), truth.image_size, rep(truth.head_R),
                            rep(truth.head_t))
        renders[name] = torch.cat([truth.photo[i:i + 1], out.image[:, 0].clamp(0, 1)])
    files = write_latent_logs(result, logdir, observation, renders)
    return InspectReport(samples=result, frames=refs, files=files)
