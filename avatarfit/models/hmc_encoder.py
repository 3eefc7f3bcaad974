"""HMC prior encoder: three head-mounted-camera views -> N(mu_p, sigma_p) and context h."""

from __future__ import annotations

import math

import torch
from torch import nn

from .._checks import check_shape
from ._checks import EqualizedLinear, conv_tower, log_sigma
from .config import HmcEncoderConfig

__all__ = ["HmcEncoder"]


class HmcEncoder(nn.Module):
    """One conv block per view -> per-view features h*_v; attention over the views with
    weights ``W_A (D, 3)`` (initialised N(0, 1)) -> h; linear heads -> mu_p, log sigma_p.

    The attention score of view v is ``<h*_v, W_A[:, v]> / sqrt(D)`` (the scaling keeps
    initial scores of order 1); weights are a softmax over the views.

    Args:
        config: sizes.
        latent: size of mu_p and sigma_p.

    Shapes:
        views ``(B, 3, 1, H, W)`` in [0, 1] (resized to ``config.input_size`` inside) ->
        ``mu (B, latent)``, ``log_sigma (B, latent)``, ``h (B, D)``.
    """

    def __init__(self, config: HmcEncoderConfig, latent: int) -> None:
        super().__init__()
        self.config = config
        D = config.features
        h, w = config.input_size
        n = len(config.channels)
        if config.head == "flatten":
            reduce, flat = nn.Flatten(), config.channels[-1] * (h >> n) * (w >> n)
        else:
            reduce, flat = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten()), config.channels[-1]
        self.towers = nn.ModuleList(
            nn.Sequential(conv_tower(1, config.channels), reduce, EqualizedLinear(flat, D), nn.LeakyReLU(0.2))
            for _ in range(3)
        )
        self.attention = nn.Parameter(torch.randn(D, 3))
        self.mu = nn.Linear(D, latent)
        self.log_sigma = nn.Linear(D, latent)

    def forward(self, views: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        check_shape("views", views, (None, 3, 1, None, None))
        size = tuple(self.config.input_size)
        feats = []
        for v, tower in enumerate(self.towers):
            x = views[:, v]
            if tuple(x.shape[-2:]) != size:
                x = nn.functional.interpolate(x, size=size, mode="area")
            if self.config.normalise == "image":
                mean = x.mean((-2, -1), keepdim=True)
                x = (x - mean) / x.std((-2, -1), keepdim=True).clamp_min(1e-3)
            else:
                x = x * 2.0 - 1.0
            feats.append(tower(x))
        hstar = torch.stack(feats, 1)  # (B, 3, D)
        scores = (hstar * self.attention.T.unsqueeze(0)).sum(-1) / math.sqrt(hstar.shape[-1])
        h = (scores.softmax(1).unsqueeze(-1) * hstar).sum(1)
        return self.mu(h), log_sigma(self.log_sigma(h)), h
