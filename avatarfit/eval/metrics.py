"""Image metrics."""

from __future__ import annotations

import torch

from ..errors import ShapeError

__all__ = ["psnr"]


def psnr(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None, max_value: float = 1.0) -> torch.Tensor:
    """Peak signal-to-noise ratio in dB, per image.

    Args:
        pred, target: ``(B, C, H, W)`` in [0, max_value].
        mask: optional ``(B, 1, H, W)``; only pixels where it is > 0 count.

    Returns:
        ``(B,)``.
    """
    if pred.shape != target.shape or pred.ndim != 4:
        raise ShapeError(f"pred, target: expected equal shapes (B, C, H, W), got {tuple(pred.shape)} and {tuple(target.shape)}")
    err = (pred - target).square()
    if mask is None:
        mse = err.flatten(1).mean(1)
    else:
        if mask.shape != (pred.shape[0], 1, *pred.shape[2:]):
            raise ShapeError(f"mask: expected shape {(pred.shape[0], 1, *pred.shape[2:])}, got {tuple(mask.shape)}")
        m = (mask > 0).to(err.dtype)
        mse = (err * m).flatten(1).sum(1) / (m.flatten(1).sum(1) * pred.shape[1]).clamp_min(1)
    return 10 * torch.log10(max_value**2 / mse.clamp_min(1e-12))
