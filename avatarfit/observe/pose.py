"""The 6-DoF headset pose: an axis-angle rotation and a translation (mm), head-local ->
headset, with PyTorch3D's rotation conversions."""

from __future__ import annotations

import math

import torch

__all__ = ["pose_to_params", "params_to_pose", "perturb_headset", "pose_error"]


def pose_to_params(R: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``R (B, 3, 3)``, ``t (B, 3)`` -> axis-angle ``(B, 3)`` (radians) and ``t (B, 3)``."""
    from pytorch3d.transforms import matrix_to_axis_angle

    return matrix_to_axis_angle(R), t.clone()


def params_to_pose(axis_angle: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Axis-angle ``(B, 3)`` and ``t (B, 3)`` -> ``R (B, 3, 3)``, ``t (B, 3)``; differentiable."""
    from pytorch3d.transforms import axis_angle_to_matrix

    return axis_angle_to_matrix(axis_angle), t


def perturb_headset(R: torch.Tensor, t: torch.Tensor, rot_deg: float, trans_mm: float,
                    generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Headset poses moved by Gaussian noise: a rotation about a random axis through the
    headset origin with per-axis angle std ``rot_deg`` degrees, and a shift with per-axis
    std ``trans_mm`` (as the HMC tool samples headset poses).

    Args:
        R, t: ``(B, 3, 3)``, ``(B, 3)`` head-local -> headset.

    Returns:
        The perturbed ``R (B, 3, 3)``, ``t (B, 3)``.
    """
    from pytorch3d.transforms import axis_angle_to_matrix

    if rot_deg < 0 or trans_mm < 0:
        raise ValueError(f"rot_deg, trans_mm: expected noise levels >= 0, got {rot_deg} and {trans_mm}")
    B = R.shape[0]
    aa = torch.randn(B, 3, generator=generator, dtype=torch.float64).to(R) * math.radians(rot_deg)
    dt = torch.randn(B, 3, generator=generator, dtype=torch.float64).to(t) * trans_mm
    dR = axis_angle_to_matrix(aa)
    return dR @ R, (dR @ t[..., None]).squeeze(-1) + dt


def pose_error(R: torch.Tensor, t: torch.Tensor, R_ref: torch.Tensor, t_ref: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Rotation angle (degrees) and position error (mm) between two poses ``x -> R x + t``:
    ``(B,)`` each. The position is the frame's origin in the source frame, ``-R^T t`` (for
    headset poses: where the headset sits on the head), so that a rotation about the
    headset's origin costs angle only."""
    from pytorch3d.transforms import matrix_to_axis_angle

    angle = matrix_to_axis_angle(R @ R_ref.transpose(1, 2)).norm(dim=-1)
    origin = -(R.transpose(1, 2) @ t[..., None])[..., 0]
    origin_ref = -(R_ref.transpose(1, 2) @ t_ref[..., None])[..., 0]
    return torch.rad2deg(angle), (origin - origin_ref).norm(dim=-1)
