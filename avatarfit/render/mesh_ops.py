"""Small mesh geometry operations: normals, surface points, closest points."""

from __future__ import annotations

import torch

from ..errors import ShapeError

__all__ = ["vertex_normals", "surface_points", "closest_surface_points"]


def vertex_normals(verts: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """Area-weighted unit vertex normals.

    Args:
        verts: ``(B, V, 3)``; faces: ``(F, 3)`` (counter-clockwise seen from outside).

    Returns:
        ``(B, V, 3)``.
    """
    tri = verts[:, faces]  # (B, F, 3, 3)
    n = torch.cross(tri[:, :, 1] - tri[:, :, 0], tri[:, :, 2] - tri[:, :, 0], dim=-1)
    out = torch.zeros_like(verts)
    for k in range(3):
        out.index_add_(1, faces[:, k], n)
    return torch.nn.functional.normalize(out, dim=-1, eps=1e-12)


def surface_points(verts: torch.Tensor, faces: torch.Tensor, face_idx: torch.Tensor, bary: torch.Tensor) -> torch.Tensor:
    """Points given by face index and barycentric coordinates.

    Args:
        verts: ``(B, V, 3)``; faces: ``(F, 3)``; face_idx: ``(P,)``; bary: ``(P, 3)``.

    Returns:
        ``(B, P, 3)``.
    """
    if face_idx.ndim != 1 or bary.shape != (face_idx.shape[0], 3):
        raise ShapeError(f"face_idx, bary: expected (P,) and (P, 3), got {tuple(face_idx.shape)}, {tuple(bary.shape)}")
    tri = verts[:, faces[face_idx]]  # (B, P, 3, 3)
    return (tri * bary.to(verts).unsqueeze(-1)).sum(-2)


def _closest_on_triangles(p: torch.Tensor, a: torch.Tensor, b: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """Barycentrics of the closest point to ``p (3,)`` on each triangle ``(F, 3)`` (Ericson's method)."""
    ab, ac, ap = b - a, c - a, p - a
    d1, d2 = (ab * ap).sum(-1), (ac * ap).sum(-1)
    bp = p - b
    d3, d4 = (ab * bp).sum(-1), (ac * bp).sum(-1)
    cp = p - c
    d5, d6 = (ab * cp).sum(-1), (ac * cp).sum(-1)
    va = d3 * d6 - d5 * d4
    vb = d5 * d2 - d1 * d6
    vc = d1 * d4 - d3 * d2
    F = a.shape[0]
    bary = torch.zeros(F, 3, dtype=a.dtype)
    denom = (va + vb + vc).clamp_min(1e-20)
    v = vb / denom
    w = vc / denom
    bary[:] = torch.stack([1 - v - w, v, w], -1)
    # Regions outside the triangle, in reverse priority so vertices win last.
    def put(mask, values):
        bary[mask] = values[mask]

    den_bc = ((d4 - d3) + (d5 - d6)).clamp_min(1e-20)
    w_bc = (d4 - d3) / den_bc
    put((va <= 0) & (d4 - d3 >= 0) & (d5 - d6 >= 0), torch.stack([0 * w_bc, 1 - w_bc, w_bc], -1))
    w_ac = d2 / (d2 - d6).clamp_min(1e-20)
    put((vb <= 0) & (d2 >= 0) & (d6 <= 0), torch.stack([1 - w_ac, 0 * w_ac, w_ac], -1))
    v_ab = d1 / (d1 - d3).clamp_min(1e-20)
    put((vc <= 0) & (d1 >= 0) & (d3 <= 0), torch.stack([1 - v_ab, v_ab, 0 * v_ab], -1))
    one = torch.ones_like(d1)
    zero = torch.zeros_like(d1)
    put((d6 >= 0) & (d5 <= d6), torch.stack([zero, zero, one], -1))
    put((d3 >= 0) & (d4 <= d3), torch.stack([zero, one, zero], -1))
    put((d1 <= 0) & (d2 <= 0), torch.stack([one, zero, zero], -1))
    return bary


def closest_surface_points(verts: torch.Tensor, faces: torch.Tensor, points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Closest surface point of a mesh to each query point (brute force, for few points).

    Args:
        verts: ``(V, 3)``; faces: ``(F, 3)``; points: ``(P, 3)``.

    Returns:
        ``face_idx (P,)`` int64 and ``bary (P, 3)`` float32.
    """
    tri = verts[faces].double()
    a, b, c = tri[:, 0], tri[:, 1], tri[:, 2]
    face_idx, barys = [], []
    for p in points.double():
        bary = _closest_on_triangles(p, a, b, c)
        q = bary[:, :1] * a + bary[:, 1:2] * b + bary[:, 2:] * c
        best = int((q - p).square().sum(-1).argmin())
        face_idx.append(best)
        barys.append(bary[best])
    return torch.tensor(face_idx, dtype=torch.long), torch.stack(barys).float()
