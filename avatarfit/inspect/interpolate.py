"""Latent interpolation between two frames (PIRenderer, supplementary C): ``z' = a z1 + (1 - a) z2`` for a
from 1 to 0, in the decoder's space Q, or in the prior's space P mapped back through the
flow's inverse (flow variants), each code rendered in one frontal camera."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..avatar import Avatar
from ..data.capture import Capture, FrameRef

__all__ = ["Interpolation", "frame_codes", "interpolate_codes", "interpolate_frames", "parse_frame"]


@dataclass(frozen=True)
class Interpolation:
    """``codes (K, L)`` in Q from the first frame (a = 1) to the second (a = 0), their
    weights ``a (K,)``, the frontal renderings ``(K, 3, H, W)`` and the two photos."""

    codes: torch.Tensor
    weights: torch.Tensor
    images: torch.Tensor
    photos: torch.Tensor

    def strip(self) -> torch.Tensor:
        """Photo 1 | renderings | photo 2, side by side: ``(3, H, (K + 2) W)``."""
        return torch.cat([self.photos[0], *self.images.unbind(0), self.photos[1]], dim=-1).clamp(0, 1)


def parse_frame(capture: Capture, text: str, argument: str) -> FrameRef:
    """``SEGMENT/FRAME`` -> the capture's frame, or a ``ValueError`` naming ``argument``."""
    seg, sep, frame = text.partition("/")
    if not sep:
        raise ValueError(f"{argument}: expected SEGMENT/FRAME such as E001_Jaw_Open/000003, got {text!r}")
    for ref in capture.frames():
        if ref.segment == seg and ref.frame == frame:
            return ref
    raise ValueError(f"{argument}: {text!r} is not a frame of {capture.layout.frame_list} "
                     f"(segments: {capture.segments})")


@torch.no_grad()
def frame_codes(avatar: Avatar, capture: Capture, refs: list[FrameRef]) -> tuple[torch.Tensor, object]:
    """Codes of tracked frames in Q: the DAM encoder's means (or, without one, the prior's
    mean for the frames' observations), and the prior's parameters for those frames."""
    from ..observe.sources import TargetSource

    obs = TargetSource.for_avatar(capture, avatar).observation(refs) if avatar.conditional else None
    mean, params = avatar.prior_mean(obs, batch=len(refs))
    if avatar.model.encoder is None:
        return mean, params
    return avatar.encode(*capture.tracked(refs)), params


@torch.no_grad()
def interpolate_codes(avatar: Avatar, z: torch.Tensor, params, steps: int, space: str = "q") -> tuple[torch.Tensor,
                                                                                                        torch.Tensor]:
    """``steps`` codes between ``z[0]`` (a = 1) and ``z[1]`` (a = 0), in Q: ``(steps, L)``,
    and the weights ``a``. In ``space="p"`` the two codes go through the flow F (with each
    frame's context), are mixed there (with the mixed context) and come back through
    F^-1; without a flow P is Q."""
    if steps < 2:
        raise ValueError(f"--steps: expected at least 2 (the two ends), got {steps}")
    if space not in ("p", "q"):
        raise ValueError(f"--space: expected p or q, got {space!r}")
    a = torch.linspace(1.0, 0.0, steps, dtype=z.dtype, device=z.device)[:, None]
    flow = avatar.model.prior.flow
    if space == "q" or flow is None:
        return a * z[0] + (1 - a) * z[1], a[:, 0]
    h = params.h
    p = flow(z, h)[0]
    mixed = a * p[0] + (1 - a) * p[1]
    ctx = None if h is None else a * h[0] + (1 - a) * h[1]
    return flow.inverse(mixed, ctx)[0], a[:, 0]


@torch.no_grad()
def interpolate_frames(avatar: Avatar, capture: Capture, first: FrameRef, second: FrameRef, steps: int = 8,
                       space: str = "q") -> Interpolation:
    """Interpolate between two frames' codes and render every code in the capture's most
    frontal camera, under the first frame's head pose."""
    from ..observe.sources import TargetSource

    z, params = frame_codes(avatar, capture, [first, second])
    codes, a = interpolate_codes(avatar, z, params, steps, space)
    truth = TargetSource(capture).truth([first, second])
    rep = lambda x: x[:1].expand(steps, *x.shape[1:]).to(codes)  # noqa: E731 - the first frame's camera
    out = avatar.render(codes, rep(truth.K), rep(truth.R), rep(truth.t), truth.image_size, rep(truth.head_R),
                        rep(truth.head_t))
    return Interpolation(codes=codes.cpu(), weights=a.cpu(), images=out.image[:, 0].clamp(0, 1).cpu(),
                         photos=truth.photo)
