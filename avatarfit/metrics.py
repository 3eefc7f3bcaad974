"""Image, geometry and latent-code metrics."""

from __future__ import annotations

import torch

from .errors import ShapeError

__all__ = ["psnr", "ssim", "l1", "geometry_error", "keypoint_distance", "r_squared"]


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
    mse = _masked_mean((pred - target).square(), mask)
    return 10 * torch.log10(max_value**2 / mse.clamp_min(1e-12))


def _masked_mean(values: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Mean of ``(B, C, H, W)`` per image over the pixels where ``mask (B, 1, H, W)`` is > 0
    (every pixel without a mask; 0 for an empty mask)."""
    if mask is None:
        return values.flatten(1).mean(1)
    if mask.shape != (values.shape[0], 1, *values.shape[2:]):
        raise ShapeError(f"mask: expected shape {(values.shape[0], 1, *values.shape[2:])}, got {tuple(mask.shape)}")
    m = (mask > 0).to(values.dtype)
    return (values * m).flatten(1).sum(1) / (m.flatten(1).sum(1) * values.shape[1]).clamp_min(1)


def ssim(pred: torch.Tensor, target: torch.Tensor, window_size: int = 11,
         mask: torch.Tensor | None = None) -> torch.Tensor:
    """Structural similarity per image (kornia's, Gaussian window), averaged over pixels.

    Args:
        pred, target: ``(B, C, H, W)`` in [0, 1].
        mask: optional ``(B, 1, H, W)``; the SSIM map is averaged over the pixels where it
            is > 0 (each pixel's window still sees its neighbours).

    Returns:
        ``(B,)``.
    """
    from kornia.metrics import ssim as kornia_ssim

    if pred.shape != target.shape or pred.ndim != 4:
        raise ShapeError(f"pred, target: expected equal shapes (B, C, H, W), got {tuple(pred.shape)} and {tuple(target.shape)}")
    return _masked_mean(kornia_ssim(pred, target, window_size), mask)


def l1(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean absolute error per image: ``(B, C, H, W)`` -> ``(B,)``."""
    if pred.shape != target.shape or pred.ndim != 4:
        raise ShapeError(f"pred, target: expected equal shapes (B, C, H, W), got {tuple(pred.shape)} and {tuple(target.shape)}")
    return (pred - target).abs().flatten(1).mean(1)


def geometry_error(verts: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean per-vertex Euclidean distance (the unit of the vertices, mm for Multiface).

    Args:
        verts, target: ``(B, V, 3)``.

    Returns:
        ``(B,)``.
    """
    if verts.shape != target.shape or verts.ndim != 3 or verts.shape[-1] != 3:
        raise ShapeError(f"verts, target: expected equal shapes (B, V, 3), got {tuple(verts.shape)} and {tuple(target.shape)}")
    return (verts - target).norm(dim=-1).mean(-1)


def keypoint_distance(points: torch.Tensor, target: torch.Tensor, visible: torch.Tensor) -> torch.Tensor:
    """Mean distance in pixels over the visible keypoints (NaN for a frame with none).

    Args:
        points, target: ``(B, K, 2)`` pixels; visible: ``(B, K)`` bool.

    Returns:
        ``(B,)``.
    """
    if points.shape != target.shape or points.ndim != 3 or visible.shape != points.shape[:2]:
        raise ShapeError(f"points, target, visible: expected (B, K, 2), (B, K, 2), (B, K), got {tuple(points.shape)}, "
                         f"{tuple(target.shape)}, {tuple(visible.shape)}")
    d = (points - target).norm(dim=-1)
    v = visible.to(d.dtype)
    return (d * v).sum(1) / v.sum(1)


def r_squared(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Coefficient of determination of predicted codes, pooled over dimensions (each
    weighted by its variance): ``1 - sum (pred - target)^2 / sum (target - mean)^2``, the
    mean over the N frames of ``target``. 1 is exact, 0 is no better than predicting the
    frames' mean code, below 0 is worse.

    Args:
        pred, target: ``(N, L)``, N >= 2.

    Returns:
        A scalar.
    """
    if pred.shape != target.shape or target.ndim != 2 or target.shape[0] < 2:
        raise ShapeError(f"pred, target: expected two (N, L) tensors with N >= 2, got {tuple(pred.shape)} and "
                         f"{tuple(target.shape)}")
    total = ((target - target.mean(0)) ** 2).sum()
    return 1.0 - ((pred - target) ** 2).sum() / total.clamp_min(torch.finfo(target.dtype).tiny)

