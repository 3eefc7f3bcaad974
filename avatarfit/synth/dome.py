"""A capture dome: cameras on a frontal arc around the head, looking at it."""

from __future__ import annotations

import math

import numpy as np
import torch

from ..data.krt import CameraCalib
from ..render.cameras import look_at

__all__ = ["make_dome", "FRONTAL_CAMERA"]

#: Name of the frontal camera (the first one of every dome).
FRONTAL_CAMERA = "400000"


def make_dome(
    num_cameras: int = 40,
    image_size: tuple[int, int] = (384, 256),
    distance: float = 1000.0,
    field_mm: float = 300.0,
    max_azimuth_deg: float = 70.0,
    max_elevation_deg: float = 30.0,
) -> list[CameraCalib]:
    """Cameras on a spherical cap in front of the head (+z), all looking at the origin.

    The first camera is frontal; the rest follow a Fibonacci spiral over the cap.
    Names are 6-digit ids like Multiface's (``400000``, ``400001``, ...).

    Args:
        num_cameras: N >= 1.
        image_size: ``(H, W)`` in pixels.
        distance: camera distance to the origin (mm).
        field_mm: height of the field of view at the origin (mm); sets the focal length.
    """
    if num_cameras < 1:
        raise ValueError(f"num_cameras: expected at least 1, got {num_cameras}")
    H, W = image_size
    f = H * distance / field_mm
    K = np.array([[f, 0.0, W / 2.0], [0.0, f, H / 2.0], [0.0, 0.0, 1.0]])
    az = [0.0]
    el = [0.0]
    golden = math.pi * (3 - math.sqrt(5))
    n = num_cameras - 1
    for i in range(n):
        r = math.sqrt((i + 0.5) / n)
        a = golden * i
        az.append(math.radians(max_azimuth_deg) * r * math.cos(a))
        el.append(math.radians(max_elevation_deg) * r * math.sin(a))
    az_t = torch.tensor(az, dtype=torch.float64)
    el_t = torch.tensor(el, dtype=torch.float64)
    eye = distance * torch.stack([torch.sin(az_t) * torch.cos(el_t), torch.sin(el_t), torch.cos(az_t) * torch.cos(el_t)], -1)
    R, t = look_at(eye, torch.zeros_like(eye), torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64))
    return [
        CameraCalib(name=f"{400000 + i:06d}", K=K.copy(), R=R[i].numpy(), t=t[i].numpy())
        for i in range(num_cameras)
    ]
