"""OpenCV cameras and their conversion to PyTorch3D, in exactly one place.

Convention (OpenCV / Multiface): intrinsics ``K`` in pixels; extrinsics ``[R | t]`` map
world to camera; camera x right, y down, z forward. A pixel's continuous coordinates
``(u, v) = (fx X/Z + cx, fy Y/Z + cy)``; pixel ``(row i, column j)`` covers
``[j, j+1) x [i, i+1)`` and is sampled at its centre ``(j + 0.5, i + 0.5)``, which is what
PyTorch3D's rasteriser does with cameras from ``cameras_from_opencv_projection``.
"""

from __future__ import annotations

import torch

from .._checks import check_shape
from ..errors import ShapeError

__all__ = ["NEAR_PLANE", "check_cameras", "to_pytorch3d", "project_points", "camera_centers", "look_at"]

_MIN_DEPTH = 1e-4  # smallest depth divided by in projections (world units, mm)
# The renderers' near plane (mm): a face with a vertex at this depth or closer to the camera
# is not drawn, by either rasteriser (an HMC camera sits tens of mm from the face).
NEAR_PLANE = 1.0


def check_cameras(K: torch.Tensor, R: torch.Tensor, t: torch.Tensor, batch: int | None = None) -> int:
    """Check ``K (B, 3, 3)``, ``R (B, 3, 3)``, ``t (B, 3)``; return B."""
    check_shape("K", K, (None, 3, 3))
    check_shape("R", R, (None, 3, 3))
    check_shape("t", t, (None, 3))
    n = K.shape[0]
    if R.shape[0] != n or t.shape[0] != n:
        raise ShapeError(f"cameras: K, R, t disagree on the batch size ({n}, {R.shape[0]}, {t.shape[0]})")
    if batch is not None and n != batch:
        raise ShapeError(f"cameras: wrong number ({n}) of cameras for {batch} meshes")
    return n


def to_pytorch3d(K: torch.Tensor, R: torch.Tensor, t: torch.Tensor, image_size: tuple[int, int]):
    """Build PyTorch3D ``PerspectiveCameras`` (screen-space) from OpenCV cameras.

    Args:
        K: ``(B, 3, 3)`` intrinsics in pixels.
        R: ``(B, 3, 3)`` world-to-camera rotations.
        t: ``(B, 3)`` world-to-camera translations.
        image_size: ``(H, W)`` in pixels.

    Returns:
        ``pytorch3d.renderer.PerspectiveCameras`` (differentiable in K, R, t).
    """
    from pytorch3d.utils import cameras_from_opencv_projection

    n = check_cameras(K, R, t)
    size = torch.tensor([list(image_size)], dtype=K.dtype, device=K.device).expand(n, 2)
    return cameras_from_opencv_projection(R=R, tvec=t, camera_matrix=K, image_size=size)


def project_points(
    points: torch.Tensor, K: torch.Tensor, R: torch.Tensor, t: torch.Tensor, image_size: tuple[int, int]
) -> torch.Tensor:
    """Project world points to pixels through PyTorch3D cameras.

    Args:
        points: ``(B, P, 3)`` world points.
        K, R, t: ``(B, 3, 3)``, ``(B, 3, 3)``, ``(B, 3)`` OpenCV cameras.
        image_size: ``(H, W)``.

    Returns:
        ``(B, P, 3)``: continuous pixel coordinates ``u`` (right), ``v`` (down), and the
        depth ``z`` along the camera's optical axis (same unit as the world).
    """
    if points.ndim != 3 or points.shape[-1] != 3:
        raise ShapeError(f"points: expected shape (B, P, 3), got {tuple(points.shape)}")
    check_cameras(K, R, t, batch=points.shape[0])
    cam = points @ R.transpose(1, 2) + t[:, None]
    z = cam[..., 2:]
    # Points at or behind the camera plane (the rasteriser skips their faces) are divided by a
    # small positive depth instead, so that neither they nor their gradients become Inf/NaN.
    safe = torch.where(z > _MIN_DEPTH, z, torch.full_like(z, _MIN_DEPTH))
    xy = (cam @ K.transpose(1, 2))[..., :2] / safe
    return torch.cat([xy, z], dim=-1)


def camera_centers(R: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Camera centres in world coordinates, ``-R^T t``: ``(B, 3)``."""
    return -(R.transpose(-1, -2) @ t.unsqueeze(-1)).squeeze(-1)


def look_at(eye: torch.Tensor, target: torch.Tensor, up: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """OpenCV extrinsics of cameras at ``eye`` looking at ``target``.

    Args:
        eye, target: ``(B, 3)`` world points; up: ``(3,)`` or ``(B, 3)`` world up direction
            (the image's up, so camera -y points along it).

    Returns:
        ``R (B, 3, 3)``, ``t (B, 3)`` world-to-camera.
    """
    z = torch.nn.functional.normalize(target - eye, dim=-1)
    down = -up.expand_as(z)
    y = torch.nn.functional.normalize(down - (down * z).sum(-1, keepdim=True) * z, dim=-1)
    x = torch.cross(y, z, dim=-1)
    R = torch.stack([x, y, z], dim=-2)
    t = -(R @ eye.unsqueeze(-1)).squeeze(-1)
    return R, t
