"""The head-mounted camera (HMC) rig: three cameras fixed on a headset, and where the
headset sits on the head.

Frames: *head-local* is the tracked mesh's frame (mm, +y up, +z out of the face). The
*headset* frame moves with the headset; at the nominal pose its origin is between the
eyes and its axes are the head's. The rig file ``hmc/rig.txt`` is a KRT file with

- three camera blocks named ``left_eye``, ``right_eye``, ``mouth`` (the subject's left
  and right); their ``[R|t]`` map **headset** coordinates to camera coordinates and K
  is in pixels of the HMC images;
- an optional block named ``headset`` whose ``[R|t]`` is the nominal pose, mapping
  **head-local** coordinates to headset coordinates (K and distortion unused; identity
  when the block is absent).

Replace the file with your headset's calibration to render your cameras.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..data.krt import CameraCalib, format_krt, read_krt
from ..data.layout import HMC_VIEWS
from ..errors import FormatError, ShapeError
from ..render.cameras import look_at
from .rig import landmark_groups

__all__ = ["HEADSET", "HmcRig", "default_rig", "read_rig", "format_rig", "compose_cameras"]

#: Name of the nominal headset pose block in a rig file.
HEADSET = "headset"

# Geometry of the default headset, for an inter-ocular distance of 63 mm (scaled to the
# subject): camera offsets from the feature they watch, and horizontal fields of view.
_EYE_OFFSET = (4.0, -24.0, 32.0)  # from the eye (x towards the subject's side), mm
_EYE_AIM = (0.0, 2.0, 0.0)  # aim slightly above the eye centre, to see the brow
_EYE_HFOV = 72.0
_MOUTH_OFFSET = (0.0, 20.0, 50.0)  # from the mouth centre, below the nose
_MOUTH_AIM = (0.0, -3.0, 0.0)
_MOUTH_HFOV = 72.0
_IOD = 63.0


@dataclass(frozen=True)
class HmcRig:
    """Three HMC cameras on a headset, and the headset's nominal pose on the head.

    Attributes:
        cameras: the three cameras in :data:`~avatarfit.data.layout.HMC_VIEWS` order;
            extrinsics map headset coordinates to camera coordinates.
        headset_R: ``(3, 3)`` nominal rotation, head-local -> headset.
        headset_t: ``(3,)`` nominal translation, head-local -> headset (mm).
        image_size: ``(H, W)`` of the HMC images (K is in these pixels).
    """

    cameras: tuple[CameraCalib, ...]
    headset_R: np.ndarray
    headset_t: np.ndarray
    image_size: tuple[int, int]

    def __post_init__(self) -> None:
        names = tuple(c.name for c in self.cameras)
        if names != HMC_VIEWS:
            raise ValueError(f"cameras: expected cameras {HMC_VIEWS} in that order, got {names}")
        if len(self.image_size) != 2 or min(self.image_size) < 8:
            raise ValueError(f"image_size: expected (H, W) of at least 8x8, got {self.image_size}")

    def intrinsics(self) -> torch.Tensor:
        """``(3, 3, 3)`` float32: K of each view."""
        return torch.from_numpy(np.stack([c.K for c in self.cameras])).float()

    def extrinsics(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``R (3, 3, 3)`` and ``t (3, 3)`` float32, headset -> camera, per view."""
        R = torch.from_numpy(np.stack([c.R for c in self.cameras])).float()
        t = torch.from_numpy(np.stack([c.t for c in self.cameras])).float()
        return R, t

    def nominal(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Nominal headset pose ``R (3, 3)``, ``t (3,)`` float32, head-local -> headset."""
        return torch.from_numpy(self.headset_R).float(), torch.from_numpy(self.headset_t).float()


def compose_cameras(
    rig: HmcRig, headset_R: torch.Tensor, headset_t: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Extrinsics of the rig's cameras for a headset pose.

    Args:
        headset_R: ``(3, 3)`` head-local -> headset rotation.
        headset_t: ``(3,)`` head-local -> headset translation.

    Returns:
        ``R (3, 3, 3)`` and ``t (3, 3)``: head-local -> camera, per view
        (``x_cam = R_c (R_h x + t_h) + t_c``).
    """
    if headset_R.shape != (3, 3) or headset_t.shape != (3,):
        raise ShapeError(f"headset_R, headset_t: expected shapes (3, 3) and (3,), got "
                         f"{tuple(headset_R.shape)} and {tuple(headset_t.shape)}")
    Rc, tc = rig.extrinsics()
    Rc, tc = Rc.to(headset_R), tc.to(headset_R)
    return Rc @ headset_R, (Rc @ headset_t) + tc


def _intrinsics(hfov_deg: float, image_size: tuple[int, int]) -> np.ndarray:
    H, W = image_size
    f = (W / 2.0) / math.tan(math.radians(hfov_deg) / 2.0)
    return np.array([[f, 0.0, W / 2.0], [0.0, f, H / 2.0], [0.0, 0.0, 1.0]])


def default_rig(landmarks: torch.Tensor, image_size: tuple[int, int] = (240, 320)) -> HmcRig:
    """A generic headset fitted to a face.

    The headset origin sits between the eyes; each eye camera is below, outside and in
    front of its eye looking up at it (about 40 mm away); the mouth camera is below the
    nose looking down at the mouth (about 60 mm away). Distances scale with the
    inter-ocular distance.

    Args:
        landmarks: ``(68, 3)`` head-local landmarks (iBUG order) of the neutral or mean face.
        image_size: ``(H, W)`` of the HMC images; K scales with the width.
    """
    if landmarks.shape != (68, 3):
        raise ShapeError(f"landmarks: expected shape (68, 3), got {tuple(landmarks.shape)}")
    g = {k: v.double() for k, v in landmark_groups(landmarks.detach().cpu().double()).items()}
    origin = (g["eye_left"] + g["eye_right"]) / 2
    scale = float((g["eye_left"] - g["eye_right"]).norm()) / _IOD

    def vec(values, mirror: float = 1.0) -> torch.Tensor:
        return torch.tensor([values[0] * mirror, values[1], values[2]], dtype=torch.float64) * scale

    eye_l, eye_r = g["eye_left"] - origin, g["eye_right"] - origin
    mouth = g["mouth"] - origin
    eyes = torch.stack([eye_l + vec(_EYE_OFFSET), eye_r + vec(_EYE_OFFSET, -1.0), mouth + vec(_MOUTH_OFFSET)])
    targets = torch.stack([eye_l + vec(_EYE_AIM), eye_r + vec(_EYE_AIM), mouth + vec(_MOUTH_AIM)])
    R, t = look_at(eyes, targets, torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64))
    hfov = (_EYE_HFOV, _EYE_HFOV, _MOUTH_HFOV)
    cams = tuple(
        CameraCalib(name=name, K=_intrinsics(hfov[i], image_size), R=R[i].numpy(), t=t[i].numpy())
        for i, name in enumerate(HMC_VIEWS)
    )
    return HmcRig(cams, np.eye(3), -origin.numpy(), tuple(image_size))


def format_rig(rig: HmcRig) -> str:
    """KRT text of the rig: the three cameras, then the ``headset`` block."""
    headset = CameraCalib(name=HEADSET, K=np.eye(3), R=rig.headset_R, t=rig.headset_t)
    return format_krt(list(rig.cameras) + [headset])


def read_rig(path: str | os.PathLike, image_size: tuple[int, int]) -> HmcRig:
    """Read a rig file (see the module docstring).

    Args:
        path: KRT file.
        image_size: ``(H, W)`` of the HMC images the file's K matrices are for.

    Raises:
        FormatError: naming the file when cameras are missing or misnamed, or the
            headset rotation is not a rotation.
    """
    path = Path(path)
    blocks = read_krt(path)
    cams = {k: v for k, v in blocks.items() if k != HEADSET}
    if len(cams) < len(HMC_VIEWS):
        raise FormatError(path, f"expected {len(HMC_VIEWS)} HMC cameras named {', '.join(HMC_VIEWS)} "
                          f"(plus an optional '{HEADSET}' block), found {len(cams)}: {list(cams)}")
    missing = [v for v in HMC_VIEWS if v not in cams]
    if missing:
        raise FormatError(path, f"expected cameras named {', '.join(HMC_VIEWS)}; missing {missing}, found {list(cams)}")
    head = blocks.get(HEADSET)
    R = head.R if head is not None else np.eye(3)
    t = head.t if head is not None else np.zeros(3)
    return HmcRig(tuple(cams[v] for v in HMC_VIEWS), R, t, tuple(image_size))
