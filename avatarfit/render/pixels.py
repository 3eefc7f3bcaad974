"""The covered pixels of a rasterised batch as a sparse list, and the differentiable
quantities recomputed from it: barycentric coordinates, depth and texture.

Both rasterisers only decide *which* face covers each pixel (``pix_to_face``, no
gradient). Everything that a loss differentiates is recomputed here from the winning
faces and the current screen-space vertices, in one place for both backends, only for
the covered pixels. Because the recomputation takes ``pix_to_face`` as an input, a caller
may keep one from an earlier rasterisation while the vertices move little (fitting does,
see :class:`avatarfit.render.renderer.FaceCache`): barycentrics then follow the vertices
exactly, and only the choice of face is stale.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..errors import ShapeError

__all__ = ["PixelFaces", "flat_to_images", "pixel_faces", "unpack_faces", "sample_texture", "scatter_flat",
           "to_fragments"]


@dataclass(frozen=True)
class PixelFaces:
    """Which face covers each pixel of B images of H x W, and where inside it.

    Attributes:
        pix_to_face: ``(B, H, W)`` int64 face index in ``[0, F)``, -1 where empty (no grad).
        index: ``(N,)`` flat indices into ``B * H * W`` of the covered pixels.
        face: ``(N,)`` their face indices.
        bary: ``(N, 3)`` perspective-correct barycentric coordinates, differentiable in
            the screen-space vertices.
        depth: ``(N,)`` camera depth at the pixel centre, differentiable.
    """

    pix_to_face: torch.Tensor
    index: torch.Tensor
    face: torch.Tensor
    bary: torch.Tensor
    depth: torch.Tensor

    @property
    def mask(self) -> torch.Tensor:
        """``(B, 1, H, W)`` 1 where a face covers the pixel (``bary``'s dtype)."""
        return (self.pix_to_face >= 0).to(self.bary.dtype).unsqueeze(1)


def unpack_faces(packed: torch.Tensor, num_faces: int) -> torch.Tensor:
    """PyTorch3D's packed ``pix_to_face`` (``b * F + f``, -1 empty) -> face index ``f`` (-1 empty)."""
    return torch.where(packed >= 0, packed % max(num_faces, 1), packed)


def pixel_faces(verts_screen: torch.Tensor, faces: torch.Tensor, pix_to_face: torch.Tensor) -> PixelFaces:
    """Barycentrics and depth of every covered pixel, from its face and the vertices.

    Pixel ``(i, j)`` is sampled at ``(j + 0.5, i + 0.5)``. Screen-space barycentrics are
    edge functions over twice the signed area, then corrected for perspective with the
    vertices' depths (as PyTorch3D's ``perspective_correct``).

    Args:
        verts_screen: ``(B, V, 3)`` pixel ``u`` (right), ``v`` (down), camera depth ``z``.
        faces: ``(F, 3)`` int64 vertex indices shared by the batch.
        pix_to_face: ``(B, H, W)`` face per pixel in ``[0, F)``, -1 where empty.

    Returns:
        :class:`PixelFaces`.
    """
    if verts_screen.ndim != 3 or verts_screen.shape[-1] != 3:
        raise ShapeError(f"verts_screen: expected shape (B, V, 3), got {tuple(verts_screen.shape)}")
    B = verts_screen.shape[0]
    if pix_to_face.ndim != 3 or pix_to_face.shape[0] != B:
        raise ShapeError(f"pix_to_face: expected shape ({B}, H, W), got {tuple(pix_to_face.shape)}")
    H, W = pix_to_face.shape[1:]
    flat = pix_to_face.reshape(-1)
    index = (flat >= 0).nonzero().squeeze(1)
    face = flat.index_select(0, index)
    item = torch.div(index, H * W, rounding_mode="floor")
    local = index - item * (H * W)
    V = verts_screen.shape[1]
    rows = (faces.index_select(0, face) + (item * V).unsqueeze(1)).reshape(-1)
    py = torch.div(local, W, rounding_mode="floor")
    centres = torch.stack([local - py * W, py]).to(verts_screen.dtype) + 0.5  # (2, N)
    bary, depth = _Barycentrics.apply(verts_screen.reshape(B * V, 3), rows, centres)
    return PixelFaces(pix_to_face.reshape(B, H, W), index, face, bary, depth)


class _Barycentrics(torch.autograd.Function):
    """Perspective-correct barycentrics and depth of pixel centres in their faces, with a
    hand-written backward (a third of the time and memory of autograd's on a CPU).

    Edge ``i`` runs from vertex ``a = i + 1`` to ``b = i + 2`` (mod 3), opposite vertex ``i``;
    its edge function at pixel ``p`` is ``e_i = (x_b - x_a)(p_y - y_a) - (y_b - y_a)(p_x - x_a)``
    (the three sum to twice the signed area). With ``q_i = e_i / z_i`` and ``S = sum q``:
    ``bary_i = q_i / S`` and ``depth = sum e / S`` (the area cancels).
    """

    @staticmethod
    def forward(ctx, verts: torch.Tensor, rows: torch.Tensor, centres: torch.Tensor):
        # verts (M, 3); rows (3N,) vertex rows of each pixel's face; centres (2, N).
        xyz = verts.index_select(0, rows).view(-1, 3, 3).permute(2, 1, 0).contiguous()  # (coord, vertex, N)
        X, Y, Z = xyz.unbind(0)
        px, py = centres[0], centres[1]
        Xa, Ya = X.roll(-1, 0), Y.roll(-1, 0)
        Xb, Yb = X.roll(1, 0), Y.roll(1, 0)
        e = (Xb - Xa) * (py - Ya) - (Yb - Ya) * (px - Xa)  # (3, N)
        q = e / Z
        S = q.sum(0)
        bary = q / S
        depth = e.sum(0) / S
        ctx.save_for_backward(xyz, e, bary, S, depth, rows, centres)
        ctx.num_rows = verts.shape[0]
        return bary.t(), depth

    @staticmethod
    def backward(ctx, g_bary: torch.Tensor, g_depth: torch.Tensor):
        xyz, e, bary, S, depth, rows, centres = ctx.saved_tensors
        X, Y, Z = xyz.unbind(0)
        px, py = centres[0], centres[1]
        gb = g_bary.t() if g_bary is not None else torch.zeros_like(bary)
        gd = g_depth if g_depth is not None else torch.zeros_like(depth)
        G = (gb * bary).sum(0)
        gq = (gb - G - gd * depth) / S  # dL/dq_i
        ge = gq / Z + gd / S  # dL/de_i
        gz = -gq * bary * S / Z  # dL/dz_i = -gq_i q_i / z_i, q_i = bary_i S
        # Vertex k is ``a`` of edge k - 1 and ``b`` of edge k - 2 (mod 3).
        ge_a, ge_b = ge.roll(1, 0), ge.roll(2, 0)
        gx = ge_a * (Y.roll(-1, 0) - py) + ge_b * (py - Y.roll(1, 0))
        gy = ge_a * (px - X.roll(-1, 0)) + ge_b * (X.roll(1, 0) - px)
        g_rows = torch.stack([gx, gy, gz]).permute(2, 1, 0).reshape(-1, 3)  # (3N, 3)
        g_verts = torch.zeros(ctx.num_rows, 3, dtype=g_rows.dtype, device=g_rows.device)
        g_verts.index_add_(0, rows, g_rows)
        return g_verts, None, None


def sample_texture(texture: torch.Tensor, verts_uvs: torch.Tensor, faces_uvs: torch.Tensor,
                   pf: PixelFaces) -> torch.Tensor:
    """Bilinear texture lookup at every covered pixel, as PyTorch3D's ``TexturesUV``
    (``align_corners=True``, border padding, OBJ UVs with v up, texture row 0 at the top).

    Args:
        texture: ``(B, C, T, T')`` one texture per image.
        verts_uvs: ``(U, 2)`` UVs in [0, 1]; faces_uvs: ``(F, 3)`` UV indices per face.
        pf: the images' :class:`PixelFaces`.

    Returns:
        ``(N, C)`` texels of the covered pixels, in the order of ``pf.index``.
    """
    B, C, Th, Tw = texture.shape
    face_uvs = verts_uvs[faces_uvs].to(pf.bary.dtype).reshape(-1, 6)  # (F, 6)
    uv = (face_uvs.index_select(0, pf.face).view(-1, 3, 2) * pf.bary.unsqueeze(-1)).sum(1)  # (N, 2)
    # align_corners=True: u = 0 is the centre of column 0 and u = 1 that of column Tw - 1;
    # v = 1 is row 0 (the top). Border padding clamps the coordinates to the texture.
    x = (uv[:, 0] * (Tw - 1)).clamp(0, Tw - 1)
    y = ((1 - uv[:, 1]) * (Th - 1)).clamp(0, Th - 1)
    # A NaN coordinate (NaN vertices) indexes texel 0 and stays NaN through the weights, so
    # the rendering, not an index error, shows it (fitting then marks the frame failed).
    x0 = x.detach().nan_to_num(0.0).floor().clamp(0, max(Tw - 2, 0))
    y0 = y.detach().nan_to_num(0.0).floor().clamp(0, max(Th - 2, 0))
    fx, fy = (x - x0).unsqueeze(1), (y - y0).unsqueeze(1)
    item = torch.div(pf.index, pf.pix_to_face.shape[1] * pf.pix_to_face.shape[2], rounding_mode="floor")
    base = item * (Th * Tw) + y0.long() * Tw + x0.long()
    dx, dy = min(1, Tw - 1), (Tw if Th > 1 else 0)
    table = texture.permute(0, 2, 3, 1).reshape(B * Th * Tw, C)
    t00 = table.index_select(0, base)
    t01 = table.index_select(0, base + dx)
    t10 = table.index_select(0, base + dy)
    t11 = table.index_select(0, base + dy + dx)
    top = t00 + (t01 - t00) * fx
    bottom = t10 + (t11 - t10) * fx
    return top + (bottom - top) * fy


def scatter_flat(values: torch.Tensor, pf: PixelFaces, background: torch.Tensor) -> torch.Tensor:
    """Covered pixels' ``values (N, C)`` into pixel-major ``(B * H * W, C)`` over
    ``background`` (``(C,)`` or ``(1,)``) where no face is."""
    B, H, W = pf.pix_to_face.shape
    C = values.shape[1]
    out = background.to(values).reshape(1, -1).expand(B * H * W, C)
    return out.index_put((pf.index,), values)


def flat_to_images(flat: torch.Tensor, shape: tuple[int, int, int]) -> torch.Tensor:
    """Pixel-major ``(B * H * W, C)`` -> images ``(B, C, H, W)`` for ``shape = (B, H, W)``."""
    B, H, W = shape
    return flat.view(B, H, W, flat.shape[1]).permute(0, 3, 1, 2).contiguous()


def to_fragments(pf: PixelFaces, num_faces: int, dists: torch.Tensor | None = None):
    """PyTorch3D ``Fragments`` (one face per pixel) of :class:`PixelFaces`: ``pix_to_face``
    packed as ``b * F + f``, ``zbuf``, ``bary_coords`` (-1 where empty) and ``dists``
    (``(N,)`` values of the covered pixels when given, else 0; -1 where empty)."""
    from pytorch3d.renderer.mesh.rasterizer import Fragments

    B, H, W = pf.pix_to_face.shape
    n = B * H * W
    dtype, device = pf.bary.dtype, pf.bary.device
    items = torch.arange(B, device=device).view(B, 1, 1) * num_faces
    packed = torch.where(pf.pix_to_face >= 0, pf.pix_to_face + items, pf.pix_to_face)
    zbuf = torch.full((n,), -1.0, dtype=dtype, device=device).index_put((pf.index,), pf.depth)
    bary = torch.full((n, 3), -1.0, dtype=dtype, device=device).index_put((pf.index,), pf.bary)
    inside = torch.zeros_like(pf.depth) if dists is None else dists
    dists = torch.full((n,), -1.0, dtype=dtype, device=device).index_put((pf.index,), inside)
    return Fragments(pix_to_face=packed.view(B, H, W, 1), zbuf=zbuf.view(B, H, W, 1),
                     bary_coords=bary.view(B, H, W, 1, 3), dists=dists.view(B, H, W, 1))
