"""Smooth random performances: expression-control trajectories and rigid head motion."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

__all__ = ["Performance", "sample_performance", "dominant_controls", "rotation_matrix"]


@dataclass(frozen=True)
class Performance:
    """One segment's animation.

    Attributes:
        name: segment name, ``E{index:03d}_{Dominant_Control}`` (Multiface style).
        controls: ``(F, K)`` control values in [0, 1].
        head_R: ``(F, 3, 3)`` head-local to world rotations.
        head_t: ``(F, 3)`` head-local to world translations (mm).
    """

    name: str
    controls: torch.Tensor
    head_R: torch.Tensor
    head_t: torch.Tensor


def rotation_matrix(yaw: torch.Tensor, pitch: torch.Tensor, roll: torch.Tensor) -> torch.Tensor:
    """Rotations ``Ry(yaw) Rx(pitch) Rz(roll)`` from angles in radians ``(F,)`` -> ``(F, 3, 3)``."""
    def rot(axis: int, a: torch.Tensor) -> torch.Tensor:
        c, s = torch.cos(a), torch.sin(a)
        R = torch.zeros(a.shape[0], 3, 3, dtype=a.dtype)
        i, j = [(1, 2), (2, 0), (0, 1)][axis]
        R[:, axis, axis] = 1
        R[:, i, i] = c
        R[:, j, j] = c
        R[:, i, j] = -s
        R[:, j, i] = s
        return R

    return rot(1, yaw) @ rot(0, pitch) @ rot(2, roll)


def _smooth_noise(gen: torch.Generator, frames: int, channels: int, cycles: float = 1.5) -> torch.Tensor:
    """Sum of three random sinusoids per channel, in about [-1, 1]: ``(frames, channels)``."""
    t = torch.linspace(0, 1, frames, dtype=torch.float64).unsqueeze(-1)
    out = torch.zeros(frames, channels, dtype=torch.float64)
    for _ in range(3):
        freq = (0.3 + torch.rand(channels, generator=gen, dtype=torch.float64) * cycles)
        phase = torch.rand(channels, generator=gen, dtype=torch.float64) * 2 * math.pi
        out += torch.sin(2 * math.pi * freq * t + phase) / 3
    return out


def dominant_controls(segments: int, controls: int, gen: torch.Generator) -> list[int]:
    """The dominant control of each of ``segments`` segments: drawn without replacement
    until every control was used, then again (so a capture of at least ``controls``
    segments shows every expression)."""
    out: list[int] = []
    while len(out) < segments:
        out += torch.randperm(controls, generator=gen).tolist()
    return out[:segments]


def sample_performance(
    index: int, frames: int, control_names: tuple[str, ...], gen: torch.Generator,
    max_rotation_deg: float = 8.0, max_translation_mm: float = 10.0, dominant: int | None = None,
) -> Performance:
    """Sample a segment: one dominant control (``dominant``, default drawn at random) that
    rises and falls one to two times from a random phase (so a segment's last frames, its
    test block, are not always neutral), the others in small amounts, and a smooth rigid
    head motion."""
    K = len(control_names)
    if dominant is None:
        dominant = int(torch.randint(K, (1,), generator=gen))
    if not 0 <= dominant < K:
        raise ValueError(f"dominant: expected a control index in [0, {K}), got {dominant}")
    t = torch.linspace(0, 1, frames, dtype=torch.float64)
    controls = (0.15 * (_smooth_noise(gen, frames, K) + 0.3)).clamp(0, 1)
    cycles, phase = 1.0 + float(torch.rand((), generator=gen, dtype=torch.float64)), \
        float(torch.rand((), generator=gen, dtype=torch.float64))
    peak = 0.5 - 0.5 * torch.cos(2 * math.pi * (cycles * t + phase) * (1 if frames > 1 else 0))
    if frames == 1:
        peak = torch.ones(1, dtype=torch.float64)
    controls[:, dominant] = (0.1 + 0.9 * peak).clamp(0, 1)
    angles = _smooth_noise(gen, frames, 3, cycles=1.0) * math.radians(max_rotation_deg)
    angles[:, 2] *= 0.4  # less roll
    head_R = rotation_matrix(angles[:, 0], angles[:, 1], angles[:, 2])
    head_t = _smooth_noise(gen, frames, 3, cycles=1.0) * max_translation_mm
    title = "_".join(w.capitalize() for w in control_names[dominant].split("_"))
    return Performance(
        name=f"E{index:03d}_{title}",
        controls=controls.float(),
        head_R=head_R.float(),
        head_t=head_t.float(),
    )
