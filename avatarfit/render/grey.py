"""The infrared-like grey of head-mounted cameras: a weighted sum of the colour channels
(skin is bright in IR), one definition for the synthetic HMC tool and for rendering HMC
views of a code."""

from __future__ import annotations

from typing import Sequence

import torch

from ..errors import ShapeError

__all__ = ["IR_WEIGHTS", "grey_weights", "to_grey"]

#: Weights of R, G, B in the infrared-like grey (normalised to sum to 1 where used).
IR_WEIGHTS: tuple[float, float, float] = (0.6, 0.3, 0.1)


def grey_weights(weights: Sequence[float] | torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """``(3,)`` channel weights normalised to sum to 1, with ``like``'s dtype and device."""
    w = torch.as_tensor(weights).to(like)
    if w.shape != (3,):
        raise ShapeError(f"weights: expected 3 channel weights (R, G, B), got shape {tuple(w.shape)}")
    return w / w.sum()


def to_grey(rgb: torch.Tensor, weights: Sequence[float] | torch.Tensor = IR_WEIGHTS) -> torch.Tensor:
    """``(..., 3, H, W)`` colour -> ``(..., 1, H, W)`` grey ``sum_c w_c rgb_c / sum_c w_c``."""
    if rgb.ndim < 3 or rgb.shape[-3] != 3:
        raise ShapeError(f"rgb: expected shape (..., 3, H, W), got {tuple(rgb.shape)}")
    return (rgb * grey_weights(weights, rgb).view(3, 1, 1)).sum(-3, keepdim=True)
