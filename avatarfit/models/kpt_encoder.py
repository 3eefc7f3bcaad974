"""Keypoint prior encoder: 274 2D keypoints -> N(mu_p, sigma_p) and context h."""

from __future__ import annotations

import torch
from torch import nn

from ._checks import check_shape, log_sigma
from .config import KptEncoderConfig

__all__ = ["KptEncoder", "NUM_KEYPOINTS"]

NUM_KEYPOINTS = 274


class _ResidualBlock(nn.Module):
    def __init__(self, width: int, dropout: float) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.BatchNorm1d(width), nn.ReLU(), nn.Linear(width, width), nn.Dropout(dropout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.net(x)


class KptEncoder(nn.Module):
    """274x2 -> dense -> residual blocks (BatchNorm, ReLU, dense, dropout) -> dense -> h;
    linear heads -> mu_p, log sigma_p.

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
        h = self.out(self.blocks(self.inp(keypoints.flatten(1))))
        return self.mu(h), log_sigma(self.log_sigma(h)), h
