"""Pieces shared by the models: the conv tower, bounded log sigmas and the equalised linear
layer."""

from __future__ import annotations

import torch


def conv_tower(in_channels: int, channels: tuple[int, ...]) -> torch.nn.Sequential:
    """Stride-2 ``Conv2d(k=4, p=1)`` + ``LeakyReLU(0.2)`` per entry of ``channels``."""
    layers: list[torch.nn.Module] = []
    for c in channels:
        layers += [torch.nn.Conv2d(in_channels, c, 4, 2, 1), torch.nn.LeakyReLU(0.2)]
        in_channels = c
    return torch.nn.Sequential(*layers)


#: Bounds of a predicted log standard deviation (sigma in [1e-3, 150]).
LOG_SIGMA_MIN, LOG_SIGMA_MAX = -7.0, 5.0


def log_sigma(raw: torch.Tensor) -> torch.Tensor:
    """Bound a predicted log standard deviation to (-7, 5) smoothly:
    ``lo + softplus(raw - lo) - softplus(raw - hi)`` (softplus of sharpness 2).

    It equals ``raw`` within 0.01 on [-5, 3] (within 0.1 on [-6.2, 4.2]), stays
    inside the bounds, and its gradient ``sigmoid(raw - lo) - sigmoid(raw - hi)`` is never
    zero, so a sigma pushed against a bound can come back (a hard clamp's gradient is 0
    there, and nothing pulls the raw value back).
    """
    f = torch.nn.functional.softplus
    return LOG_SIGMA_MIN + f(raw - LOG_SIGMA_MIN, beta=2.0) - f(raw - LOG_SIGMA_MAX, beta=2.0)


class EqualizedLinear(torch.nn.Linear):
    """``Linear`` whose weights are stored N(0, 1) and scaled by ``1 / sqrt(fan_in)`` at run
    time (equalised learning rate, Karras et al. 2018). With Adam, a plain ``Linear`` of
    large fan-in (DAM's geometry encoder sees V x 3 inputs, ~16-22k) moves its outputs by
    about ``lr * fan_in`` per step and diverges; this one moves them by ``lr * sqrt(fan_in)``."""

    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__(in_features, out_features)
        torch.nn.init.normal_(self.weight)
        torch.nn.init.zeros_(self.bias)
        self.scale = in_features ** -0.5

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # The scale applied to the (B, out) product, not to the (out, in) weight: the same
        # function, without an (out, in) tensor made and differentiated every call (the
        # DAM encoder's geometry layer is 256 x V*3: two 4.5M-element passes per step).
        return torch.nn.functional.linear(x, self.weight) * self.scale + self.bias
