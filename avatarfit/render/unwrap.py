"""Texture unwrapping: sample photos into UV space, with visibility from the depth buffer."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..errors import InvalidValueError, ShapeError
from .cameras import camera_centers, project_points
from .mesh_ops import vertex_normals
from .raster_bbox import rasterize_screen

__all__ = ["UVRaster", "rasterize_uv", "unwrap_texture"]


@dataclass(frozen=True)
class UVRaster:
    """Which face and where on it each texel of a ``T x T`` texture lies.

    Texel (row i, column j) sits at ``u = j / (T - 1)``, ``v = 1 - i / (T - 1)``: the
    sampling grid of PyTorch3D's ``TexturesUV`` (``align_corners=True``).

    Attributes:
        face: ``(T * T,)`` int64 face index, -1 for texels outside every face.
        bary: ``(T * T, 3)`` barycentric coordinates (0 outside).
        size: T.
    """

    face: torch.Tensor
    bary: torch.Tensor
    size: int

    @property
    def valid(self) -> torch.Tensor:
        return self.face >= 0


def rasterize_uv(verts_uvs: torch.Tensor, faces_uvs: torch.Tensor, size: int) -> UVRaster:
    """Rasterise the UV layout (``(U, 2)`` UVs, ``(F, 3)`` UV faces) into a ``size x size`` grid."""
    if verts_uvs.ndim != 2 or verts_uvs.shape[1] != 2:
        raise ShapeError(f"verts_uvs: expected shape (U, 2), got {tuple(verts_uvs.shape)}")
    if size < 2:
        raise InvalidValueError(f"size: expected at least 2, got {size}")
    uv = verts_uvs.float()
    screen = torch.stack([uv[:, 0] * (size - 1) + 0.5, (1.0 - uv[:, 1]) * (size - 1) + 0.5, torch.ones_like(uv[:, 0])], -1)
    frags = rasterize_screen(screen.unsqueeze(0), faces_uvs.long(), (size, size), edge_tolerance=1e-5)
    face = frags.pix_to_face.reshape(-1)
    bary = frags.bary_coords.reshape(-1, 3).clamp_min(0.0)
    bary = bary / bary.sum(-1, keepdim=True).clamp_min(1e-12) * (face >= 0).unsqueeze(-1)
    return UVRaster(face=face, bary=bary, size=size)


def unwrap_texture(
    uvr: UVRaster,
    verts: torch.Tensor,
    faces: torch.Tensor,
    photos: torch.Tensor,
    depth: torch.Tensor,
    K: torch.Tensor,
    R: torch.Tensor,
    t: torch.Tensor,
    *,
    depth_tolerance: float = 3.0,
    min_cosine: float = 0.1,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Unwrap photos of one mesh into its UV space.

    Args:
        uvr: texel-to-surface map from :func:`rasterize_uv`.
        verts: ``(V, 3)`` world vertices of the frame.
        faces: ``(F, 3)``.
        photos: ``(C, 3, H, W)`` one photo per camera.
        depth: ``(C, 1, H, W)`` rendered depth of the same mesh (0 where empty).
        K, R, t: ``(C, 3, 3)``, ``(C, 3, 3)``, ``(C, 3)`` the cameras.
        depth_tolerance: a texel is visible when its depth exceeds the depth buffer by
            less than this (world units, mm).
        min_cosine: and when the surface faces the camera at least this much.

    Returns:
        ``textures (C, 3, T, T)`` with 0 at unseen texels, and ``seen (C, 1, T, T)`` bool.
    """
    C, _, H, W = photos.shape
    T = uvr.size
    valid = uvr.valid
    fidx = uvr.face.clamp_min(0)
    tri = verts[faces[fidx]]  # (N, 3, 3)
    points = (tri * uvr.bary.unsqueeze(-1)).sum(1)  # (N, 3)
    normals = vertex_normals(verts.unsqueeze(0), faces)[0][faces[fidx]]
    normals = F.normalize((normals * uvr.bary.unsqueeze(-1)).sum(1), dim=-1, eps=1e-12)
    proj = project_points(points.unsqueeze(0).expand(C, -1, -1), K, R, t, (H, W))  # (C, N, 3)
    u, v, z = proj[..., 0], proj[..., 1], proj[..., 2]
    col = u.floor().long()
    row = v.floor().long()
    inside = (col >= 0) & (col < W) & (row >= 0) & (row < H) & (z > 0)
    flat = (row.clamp(0, H - 1) * W + col.clamp(0, W - 1))
    zbuf = torch.gather(depth.reshape(C, -1), 1, flat)
    centers = camera_centers(R, t)  # (C, 3)
    to_cam = F.normalize(centers.unsqueeze(1) - points.unsqueeze(0), dim=-1)
    facing = (to_cam * normals.unsqueeze(0)).sum(-1) > min_cosine
    seen = inside & (zbuf > 0) & (z <= zbuf + depth_tolerance) & facing & valid.unsqueeze(0)
    grid = torch.stack([u / W * 2 - 1, v / H * 2 - 1], -1).unsqueeze(1).to(photos.dtype)  # (C, 1, N, 2)
    # Sample only covered pixels: bilinear weights renormalised over the mesh's mask, so
    # the background does not bleed into texels at the silhouette.
    covered = (depth > 0).to(photos.dtype)
    sample = lambda img: F.grid_sample(img, grid, mode="bilinear", padding_mode="zeros", align_corners=False)  # noqa: E731
    weight = sample(covered)[:, :, 0]  # (C, 1, N)
    seen = seen & (weight[:, 0] > 1e-3)
    colors = sample(photos * covered)[:, :, 0:1] / weight.clamp_min(1e-3).unsqueeze(2)
    # Seen texels stay >= 1/255 so that 0 keeps meaning 'unseen' after 8-bit quantisation.
    colors = colors[:, :, 0].clamp(1.0 / 255.0, 1.0) * seen.unsqueeze(1)  # (C, 3, N)
    return colors.reshape(C, 3, T, T), seen.reshape(C, 1, T, T)


def fill_gutter(texture: torch.Tensor, inside: torch.Tensor, iterations: int = 4) -> torch.Tensor:
    """Pad UV charts outward: texels outside every chart take the mean of their filled
    neighbours, ``iterations`` texels deep, so bilinear sampling at a chart's border does
    not blend in the empty gutter (dark seams). Texels inside charts are unchanged.

    Args:
        texture: ``(B, C, T, T)``.
        inside: ``(T, T)`` or ``(B, 1, T, T)`` bool, True for texels inside a chart
            (or, more strictly, seen).

    Returns:
        ``(B, C, T, T)``.
    """
    B, C, T, _ = texture.shape
    known = inside.reshape(-1, 1, T, T).expand(B, 1, T, T).to(texture.dtype)
    out = texture * known
    kernel = torch.ones(1, 1, 3, 3, dtype=texture.dtype, device=texture.device)
    for _ in range(iterations):
        count = F.conv2d(known, kernel, padding=1)
        total = F.conv2d(out.reshape(B * C, 1, T, T), kernel, padding=1).reshape(B, C, T, T)
        grow = (known == 0) & (count > 0)
        out = torch.where(grow, total / count.clamp_min(1), out)
        known = torch.where(grow, torch.ones_like(known), known)
    return out
