"""Re-render a capture's tracked mesh with its own textures and compare with its photos."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..data.capture import Capture
from ..data.layout import AVERAGE
from ..render.renderer import RenderOutput, render_textured
from ..metrics import psnr

__all__ = ["ViewComparison", "render_capture_view", "compare_view", "comparison_strip"]


def render_capture_view(
    capture: Capture, segment: str, frame: str, camera: str, *,
    texture: str = AVERAGE, backend: str = "auto", background: float = 0.15,
) -> RenderOutput:
    """Render frame ``segment/frame`` of ``capture`` from ``camera`` with its tracked mesh
    and its ``texture`` (``"average"`` or a camera's unwrapped texture); batch of one."""
    top = capture.topology
    K, R, t = capture.camera_tensors(camera)
    verts = capture.world_vertices(segment, frame)
    tex = capture.texture(segment, frame, texture)
    return render_textured(
        verts[None], top.faces, top.verts_uvs, top.faces_uvs, tex[None], K[None], R[None], t[None],
        capture.image_size(camera), backend=backend, background=background, antialias=False,
    )


@dataclass(frozen=True)
class ViewComparison:
    """A rendering next to the photo: ``photo``, ``render`` ``(3, H, W)``, ``mask`` ``(1, H, W)``,
    PSNR over the whole image and over the face (``psnr_face``), in dB."""

    photo: torch.Tensor
    render: torch.Tensor
    mask: torch.Tensor
    psnr: float
    psnr_face: float


def compare_view(capture: Capture, segment: str, frame: str, camera: str, **kwargs) -> ViewComparison:
    """Render a view (see :func:`render_capture_view`) and score it against the photo."""
    out = render_capture_view(capture, segment, frame, camera, **kwargs)
    photo = capture.photo(segment, frame, camera)
    return ViewComparison(
        photo=photo,
        render=out.image[0],
        mask=out.mask[0],
        psnr=float(psnr(out.image, photo[None])[0]),
        psnr_face=float(psnr(out.image, photo[None], out.mask)[0]),
    )


def comparison_strip(photo: torch.Tensor, render: torch.Tensor, error_gain: float = 4.0) -> torch.Tensor:
    """Photo | rendering | absolute error x ``error_gain``, side by side: ``(3, H, 3W)``."""
    error = ((render - photo).abs() * error_gain).clamp(0, 1)
    return torch.cat([photo, render, error], dim=-1)
