"""Textured mesh rendering through PyTorch3D with OpenCV cameras.

A renderer is a rasteriser (which face covers each pixel, as PyTorch3D ``Fragments``)
followed by texture sampling with PyTorch3D's ``TexturesUV``. Two rasterisers give the
same ``Fragments``: PyTorch3D's ``MeshRasterizer`` (``backend="pytorch3d"``) and the
bounding-box rasteriser of :mod:`avatarfit.render.raster_bbox` (``backend="bbox"``).
``backend="auto"`` picks PyTorch3D's on CUDA and the bounding-box one on CPU, where it
is one to two orders of magnitude faster (``benchmarks/bench_render.py``).

Textures are ``(B, C, T, T)`` images with row 0 at the top; UVs follow OBJ (v up). The
one vertical flip between the two happens inside ``TexturesUV`` sampling.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from ..errors import ShapeError
from .cameras import check_cameras, project_points, to_pytorch3d
from .raster_bbox import rasterize_screen

__all__ = ["BACKENDS", "RenderOutput", "coverage", "rasterize", "render_textured", "resolve_backend"]

BACKENDS = ("auto", "bbox", "pytorch3d")


def resolve_backend(backend: str, device: torch.device) -> str:
    """Map ``"auto"`` to ``"pytorch3d"`` on CUDA and ``"bbox"`` elsewhere."""
    if backend not in BACKENDS:
        raise ValueError(f"backend: expected one of {BACKENDS}, got {backend!r}")
    if backend == "auto":
        return "pytorch3d" if device.type == "cuda" else "bbox"
    return backend


def _check_mesh(verts: torch.Tensor, faces: torch.Tensor) -> None:
    if verts.ndim != 3 or verts.shape[-1] != 3:
        raise ShapeError(f"verts: expected shape (B, V, 3), got {tuple(verts.shape)}")
    if faces.ndim != 2 or faces.shape[-1] != 3:
        raise ShapeError(f"faces: expected shape (F, 3), got {tuple(faces.shape)}")
    if faces.numel() and (int(faces.min()) < 0 or int(faces.max()) >= verts.shape[1]):
        raise ShapeError(
            f"faces: indices must lie in [0, {verts.shape[1] - 1}] for {verts.shape[1]} vertices, "
            f"found [{int(faces.min())}, {int(faces.max())}]"
        )


def rasterize(
    verts: torch.Tensor,
    faces: torch.Tensor,
    K: torch.Tensor,
    R: torch.Tensor,
    t: torch.Tensor,
    image_size: tuple[int, int],
    *,
    backend: str = "auto",
    cull_backfaces: bool = False,
):
    """Rasterise a batch of meshes that share ``faces``, one camera per mesh.

    Args:
        verts: ``(B, V, 3)`` world vertices.
        faces: ``(F, 3)`` int64.
        K, R, t: ``(B, 3, 3)``, ``(B, 3, 3)``, ``(B, 3)`` OpenCV cameras.
        image_size: ``(H, W)``.
        backend: ``"auto"``, ``"bbox"`` or ``"pytorch3d"``.

    Returns:
        PyTorch3D ``Fragments`` (one face per pixel; see
        :func:`avatarfit.render.raster_bbox.rasterize_screen`).
    """
    _check_mesh(verts, faces)
    check_cameras(K, R, t, batch=verts.shape[0])
    faces = faces.to(verts.device).long()
    backend = resolve_backend(backend, verts.device)
    if backend == "bbox":
        screen = project_points(verts, K, R, t, image_size)
        return rasterize_screen(screen, faces, image_size, cull_backfaces=cull_backfaces)
    from pytorch3d.renderer import MeshRasterizer, RasterizationSettings
    from pytorch3d.structures import Meshes

    meshes = Meshes(verts=verts, faces=faces.unsqueeze(0).expand(verts.shape[0], -1, -1))
    settings = RasterizationSettings(
        image_size=(int(image_size[0]), int(image_size[1])),
        blur_radius=0.0,
        faces_per_pixel=1,
        cull_backfaces=cull_backfaces,
        bin_size=None if verts.is_cuda else 0,
    )
    return MeshRasterizer(cameras=to_pytorch3d(K, R, t, image_size), raster_settings=settings)(meshes)


@dataclass(frozen=True)
class RenderOutput:
    """What :func:`render_textured` returns.

    Attributes:
        image: ``(B, C, H, W)`` in [0, 1] (C = texture channels), background where empty.
        mask: ``(B, 1, H, W)`` 1 where a face covers the pixel, else 0.
        depth: ``(B, 1, H, W)`` camera depth, 0 where empty.
        fragments: the PyTorch3D ``Fragments``.
    """

    image: torch.Tensor
    mask: torch.Tensor
    depth: torch.Tensor
    fragments: Any


@torch.no_grad()
def coverage(verts: torch.Tensor, faces: torch.Tensor, K: torch.Tensor, R: torch.Tensor, t: torch.Tensor,
             image_size: tuple[int, int], *, backend: str = "auto") -> torch.Tensor:
    """Which pixels a batch of meshes covers, one camera per mesh (a tracked mesh's coverage
    is the face mask training and the evaluation score).

    Args:
        verts: ``(B, V, 3)`` world vertices; faces: ``(F, 3)``.
        K, R, t: ``(B, 3, 3)``, ``(B, 3, 3)``, ``(B, 3)`` OpenCV cameras.
        image_size: ``(H, W)``; backend: see :func:`rasterize`.

    Returns:
        ``(B, 1, H, W)``, 1 where a face covers the pixel, else 0 (``verts``' dtype).
    """
    frags = rasterize(verts, faces, K, R, t, image_size, backend=backend)
    return (frags.pix_to_face[..., 0] >= 0).to(verts.dtype)[:, None]


def render_textured(
    verts: torch.Tensor,
    faces: torch.Tensor,
    verts_uvs: torch.Tensor,
    faces_uvs: torch.Tensor,
    texture: torch.Tensor,
    K: torch.Tensor,
    R: torch.Tensor,
    t: torch.Tensor,
    image_size: tuple[int, int],
    *,
    backend: str = "auto",
    background: float | tuple[float, ...] = 0.0,
    cull_backfaces: bool = False,
) -> RenderOutput:
    """Render textured meshes, one camera each; differentiable in verts, texture, K, R, t.

    Args:
        verts: ``(B, V, 3)`` world vertices.
        faces: ``(F, 3)`` vertex indices.
        verts_uvs: ``(U, 2)`` UVs in [0, 1], OBJ convention (v up).
        faces_uvs: ``(F, 3)`` UV indices.
        texture: ``(B, C, T, T)`` texture images, row 0 at the top (C = 1 or 3).
        K, R, t: ``(B, 3, 3)``, ``(B, 3, 3)``, ``(B, 3)`` OpenCV cameras.
        image_size: ``(H, W)``.
        backend: rasteriser, see :func:`rasterize`.
        background: scalar or per-channel value of empty pixels.

    Returns:
        :class:`RenderOutput`.

    Example:
        >>> out = render_textured(verts, faces, uvs, fuvs, tex, K, R, t, (128, 96))  # doctest: +SKIP
        >>> out.image.shape
        torch.Size([B, 3, 128, 96])
    """
    from pytorch3d.renderer import TexturesUV

    _check_mesh(verts, faces)
    B = verts.shape[0]
    if texture.ndim != 4 or texture.shape[0] != B or texture.shape[1] not in (1, 3):
        raise ShapeError(f"texture: expected shape ({B}, 1 or 3, T, T), got {tuple(texture.shape)}")
    if verts_uvs.ndim != 2 or verts_uvs.shape[1] != 2:
        raise ShapeError(f"verts_uvs: expected shape (U, 2), got {tuple(verts_uvs.shape)}")
    if faces_uvs.shape != faces.shape:
        raise ShapeError(f"faces_uvs: expected shape {tuple(faces.shape)} like faces, got {tuple(faces_uvs.shape)}")
    fragments = rasterize(verts, faces, K, R, t, image_size, backend=backend, cull_backfaces=cull_backfaces)
    device = verts.device
    textures = TexturesUV(
        maps=texture.permute(0, 2, 3, 1),
        faces_uvs=faces_uvs.to(device).long().unsqueeze(0).expand(B, -1, -1),
        verts_uvs=verts_uvs.to(device=device, dtype=verts.dtype).unsqueeze(0).expand(B, -1, -1),
    )
    colors = textures.sample_textures(fragments)[..., 0, :]  # (B, H, W, C)
    mask = (fragments.pix_to_face[..., 0] >= 0).to(verts.dtype)  # (B, H, W)
    bg = torch.as_tensor(background, dtype=verts.dtype, device=device).reshape(-1)
    if bg.numel() not in (1, texture.shape[1]):
        raise ShapeError(f"background: expected 1 or {texture.shape[1]} values, got {bg.numel()}")
    image = colors * mask.unsqueeze(-1) + bg * (1.0 - mask.unsqueeze(-1))
    depth = fragments.zbuf[..., 0].clamp_min(0.0) * mask
    return RenderOutput(
        image=image.permute(0, 3, 1, 2).contiguous(),
        mask=mask.unsqueeze(1),
        depth=depth.unsqueeze(1),
        fragments=fragments,
    )
