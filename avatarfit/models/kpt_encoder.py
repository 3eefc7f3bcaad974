"""Keypoint prior encoder: 274 2D keypoints -> N(mu_p, sigma_p) and context h."""

from __future__ import annotations

import torch
from torch import nn

from .._checks import check_shape
from ..data.ibug import EYES
from ._checks import log_sigma
from .config import KptEncoderConfig

__all__ = ["KptEncoder", "NUM_KEYPOINTS", "align_keypoints"]

NUM_KEYPOINTS = 274


def align_keypoints(keypoints: torch.Tensor) -> torch.Tensor:
    """Keypoints in a frame fixed to the eyes: the midpoint between the two eye centres
    (means of iBUG landmarks 36-41 and 42-47) at the origin, the line through them along
    +x, one unit = their distance. Removes the in-image translation, roll and scale of the
    head, which vary more between frames than the expression moves the points (the head
    turns by degrees and moves by millimetres, an expression moves a keypoint by a
    fraction of a millimetre to a few); the eye corners and lids move little with expression.

    Args:
        keypoints: ``(B, 274, 2)`` as :class:`KptEncoder` takes them (hidden ones at 0).

    Returns:
        ``(B, 274, 2)``, hidden keypoints still 0; a frame with a hidden eye landmark
        (36-47) is returned unchanged (its eye's centre would move with what is hidden).
    """
    check_shape("keypoints", keypoints, (None, NUM_KEYPOINTS, 2))
    visible = keypoints.ne(0).any(-1, keepdim=True).to(keypoints.dtype)  # (B, K, 1)
    centres, seen = [], []
    for eye in EYES:  # the first 68 keypoints are the iBUG landmarks
        w = visible[:, eye]
        n = w.sum(1)  # (B, 1)
        centres.append((keypoints[:, eye] * w).sum(1) / n.clamp_min(1))
        seen.append(n[:, 0] == len(eye))  # an eye's centre from all its landmarks
    axis = centres[1] - centres[0]  # (B, 2)
    distance = axis.norm(dim=-1, keepdim=True)  # (B, 1)
    ok = seen[0] & seen[1] & (distance[:, 0] > 1e-6)
    cos, sin = (axis / distance.clamp_min(1e-6)).unbind(-1)
    x, y = (keypoints - ((centres[0] + centres[1]) / 2)[:, None]).unbind(-1)
    scale = distance.clamp_min(1e-6)  # (B, 1)
    aligned = torch.stack([(cos[:, None] * x + sin[:, None] * y) / scale,
                           (cos[:, None] * y - sin[:, None] * x) / scale], -1)
    return torch.where(ok[:, None, None], aligned * visible, keypoints)


class _ResidualBlock(nn.Module):
    def __init__(self, width: int, dropout: float) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.BatchNorm1d(width), nn.ReLU(), nn.Linear(width, width), nn.Dropout(dropout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.net(x)


class KptEncoder(nn.Module):
    """274x2 -> dense -> residual blocks (BatchNorm, ReLU, dense, dropout) -> dense -> h;
    linear heads -> mu_p, log sigma_p. With ``config.normalise: eyes`` the keypoints are
    first put in the eyes' frame (:func:`align_keypoints`).

    Args:
        config: sizes.
        latent: size of mu_p and sigma_p.

    Shapes:
        keypoints ``(B, 274, 2)`` normalised to [-1, 1] by the image size, hidden ones set
        to 0 -> ``mu (B, latent)``, ``log_sigma (B, latent)``, ``h (B, D)``.
    """

    def __init__(self, config: KptEncoderConfig, latent: int) -> None:
        super().__init__()
        self.config = config
        self.inp = nn.Linear(NUM_KEYPOINTS * 2, config.hidden)
        self.blocks = nn.Sequential(*(_ResidualBlock(config.hidden, config.dropout) for _ in range(config.blocks)))
        self.out = nn.Sequential(nn.ReLU(), nn.Linear(config.hidden, config.features), nn.LeakyReLU(0.2))
        self.mu = nn.Linear(config.features, latent)
        self.log_sigma = nn.Linear(config.features, latent)

    def forward(self, keypoints: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        check_shape("keypoints", keypoints, (None, NUM_KEYPOINTS, 2))
        if self.config.normalise == "eyes":
            keypoints = align_keypoints(keypoints)
        h = self.out(self.blocks(self.inp(keypoints.flatten(1))))
        return self.mu(h), log_sigma(self.log_sigma(h)), h
