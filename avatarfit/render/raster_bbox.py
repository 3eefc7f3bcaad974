"""A hard (one face per pixel) rasteriser that tests each face only against the pixels
of its own bounding box, vectorised in torch.

PyTorch3D's CPU rasteriser tests every face against every pixel (its coarse-to-fine
binning is CUDA-only), O(pixels x faces). Here the work is O(sum of bounding-box areas).
Only the choice of which face covers a pixel is non-differentiable; barycentric
coordinates, depth and distances are recomputed in differentiable torch code from the
winning faces, so gradients reach the vertices (and through the projection, the
cameras), exactly as with PyTorch3D's hard rasteriser. The output is PyTorch3D's
``Fragments``, so its textures and shaders consume it unchanged.
"""

from __future__ import annotations

import torch

from ..errors import InvalidValueError, ShapeError
from .pixels import pixel_faces, to_fragments, unpack_faces

__all__ = ["drawn_faces", "face_per_pixel", "rasterize_screen"]

# A face is a sliver, and not drawn, when its height is below this fraction of its longest
# edge (twice its area below SLIVER x longest edge squared): its barycentric gradients grow
# as 1 / height, and float32 cannot tell on which side of it a pixel centre lies.
SLIVER = 1e-4
# PyTorch3D skips faces whose twice-area in NDC units (2 / min(H, W) per pixel) is below
# 1e-8; the same floor is applied here so that both rasterisers draw the same faces.
_P3D_MIN_AREA_NDC = 1e-8


def _edge(ax, ay, bx, by, px, py):
    """Twice the signed area of (a, b, p); positive when p is left of a->b in y-down pixels."""
    return (bx - ax) * (py - ay) - (by - ay) * (px - ax)


def _depth(bary: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """Perspective-correct depth of pixel centres ``1 / sum(bary_i / z_i)`` from their
    screen-space barycentrics ``(N, 3)`` and vertex depths ``z (N, 3)``: the depth test of
    the coverage pass (the differentiable barycentrics and depth of the winning faces are
    :func:`~avatarfit.render.pixels.pixel_faces`')."""
    return 1.0 / (bary / z).sum(-1, keepdim=True).squeeze(-1)


def _point_segment_dist2(px, py, ax, ay, bx, by):
    dx, dy = bx - ax, by - ay
    len2 = (dx * dx + dy * dy).clamp_min(1e-12)
    s = (((px - ax) * dx + (py - ay) * dy) / len2).clamp(0.0, 1.0)
    ex, ey = ax + s * dx - px, ay + s * dy - py
    return ex * ex + ey * ey


@torch.no_grad()
def drawn_faces(verts_screen: torch.Tensor, faces: torch.Tensor, image_size: tuple[int, int],
                near: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Which faces a rasteriser draws in each image (the same rule for both backends).

    A face is drawn when its three vertices are finite and lie beyond the near plane
    (depth ``> near``; faces that reach it are culled whole, not clipped), and it is not a
    sliver (height at least :data:`SLIVER` times its longest edge) nor smaller than
    PyTorch3D's area floor.

    Args:
        verts_screen: ``(B, V, 3)`` pixel ``u``, ``v`` and camera depth; faces: ``(F, 3)``.
        image_size: ``(H, W)``; near: the near plane's depth.

    Returns:
        ``drawn (B, F)`` bool and ``area (B, F)`` twice the signed screen area (its sign
        is the face's winding on screen: which side the viewer sees).
    """
    tri = verts_screen[:, faces]  # (B, F, 3, 3)
    x, y, z = tri[..., 0], tri[..., 1], tri[..., 2]
    area = _edge(x[..., 0], y[..., 0], x[..., 1], y[..., 1], x[..., 2], y[..., 2])
    ex, ey = x - x.roll(1, -1), y - y.roll(1, -1)
    longest2 = (ex * ex + ey * ey).amax(-1)
    floor = _P3D_MIN_AREA_NDC * (min(int(image_size[0]), int(image_size[1])) / 2.0) ** 2
    drawn = ((z > near).all(-1) & torch.isfinite(tri).flatten(2).all(-1)
             & (area.abs() > torch.clamp(SLIVER * longest2, min=floor)))
    return drawn, area


def face_per_pixel(verts_screen: torch.Tensor, faces: torch.Tensor, image_size: tuple[int, int], *,
                   max_candidates: int = 1 << 22, edge_tolerance: float = 0.0, near: float = 0.0,
                   drawn: torch.Tensor | None = None) -> torch.Tensor:
    """The hard test alone: which face covers each pixel (options as :func:`rasterize_screen`).

    Args:
        verts_screen: ``(B, V, 3)`` pixel ``u``, ``v`` and camera depth; faces: ``(F, 3)``.
        image_size: ``(H, W)``.
        drawn: ``(B, F)`` the faces to draw, when already known (:func:`drawn_faces`).

    Returns:
        ``(B, H, W)`` int64 face index in ``[0, F)`` (not packed), -1 where empty.
    """
    H, W = int(image_size[0]), int(image_size[1])
    B, Fn = verts_screen.shape[0], faces.shape[0]
    vs = verts_screen.detach()
    if drawn is None:
        drawn, _ = drawn_faces(vs, faces, (H, W), near)
    packed = _coverage(vs, faces, drawn, H, W, max_candidates, edge_tolerance)
    return unpack_faces(packed, Fn).view(B, H, W)


@torch.no_grad()
def _coverage(
    vs: torch.Tensor, faces: torch.Tensor, drawn: torch.Tensor, H: int, W: int, max_candidates: int,
    edge_tolerance: float,
) -> torch.Tensor:
    """Winning packed face index per pixel, ``(B * H * W,)`` int64, -1 where empty (no grad)."""
    B, F = vs.shape[0], faces.shape[0]
    device = vs.device
    tri = vs[:, faces].reshape(B * F, 3, 3)
    x, y, z = tri[..., 0], tri[..., 1], tri[..., 2]
    area = _edge(x[:, 0], y[:, 0], x[:, 1], y[:, 1], x[:, 2], y[:, 2])
    valid = drawn.reshape(B * F).clone()  # narrowed below; the caller keeps its own
    # Pixel j is sampled at j + 0.5: it is a candidate when xmin <= j + 0.5 <= xmax.
    i0 = torch.ceil(x.min(-1).values - 0.5).clamp(min=0)
    i1 = torch.floor(x.max(-1).values - 0.5).clamp(max=W - 1)
    j0 = torch.ceil(y.min(-1).values - 0.5).clamp(min=0)
    j1 = torch.floor(y.max(-1).values - 0.5).clamp(max=H - 1)
    width = (i1 - i0 + 1).clamp(min=0)
    height = (j1 - j0 + 1).clamp(min=0)
    valid &= (width > 0) & (height > 0)
    face_ids = valid.nonzero().squeeze(1)
    width = width[face_ids].long()
    height = height[face_ids].long()
    i0 = i0[face_ids].long()
    j0 = j0[face_ids].long()
    counts = width * height

    # Per face, once: screen vertices, depths and signed area as rows of one tensor, and
    # the integer box layout as rows of another. Each (face, pixel) candidate then gathers
    # the rows it needs with 1-D index_select (several times faster on a CPU than gathering
    # (N, k) blocks or indexing per field). Barycentrics use the same formula (edge
    # function / area, as a product with 1 / area) for every face, so shared edges leave no holes.
    t = tri[face_ids]
    packed = torch.cat([t[..., :2].flatten(1), t[..., 2], 1.0 / area[face_ids].unsqueeze(1)], dim=1).T.contiguous()  # (10, n)
    boxes = torch.stack([i0, j0, width, face_ids])  # (4, n) int64

    pix_all, z_all, face_all = [], [], []
    # Split faces into chunks of at most max_candidates (face, pixel) pairs.
    ends = torch.cumsum(counts, 0)
    start_face = 0
    n_faces = face_ids.numel()
    while start_face < n_faces:
        base = ends[start_face - 1] if start_face > 0 else torch.zeros((), dtype=torch.long, device=device)
        stop_face = int(torch.searchsorted(ends, base + max_candidates, right=True))
        stop_face = max(stop_face, start_face + 1)
        sl = slice(start_face, stop_face)
        c = counts[sl]
        local = torch.repeat_interleave(torch.arange(c.numel(), device=device), c)
        pk, bx = packed[:, sl], boxes[:, sl]

        def rows(table, which, index=local):
            return [table[r].index_select(0, index) for r in which]

        x0, y0, x1, y1, x2, y2, inv_a = rows(pk, (0, 1, 2, 3, 4, 5, 9))
        bi0, bj0, w, first = rows(torch.cat([bx[:3], (torch.cumsum(c, 0) - c)[None]]), range(4))
        k = torch.arange(local.numel(), device=device) - first
        py = k // w
        px = bi0 + (k - py * w)
        py = bj0 + py
        pxf = px.to(inv_a.dtype) + 0.5
        pyf = py.to(inv_a.dtype) + 0.5
        b0 = _edge(x1, y1, x2, y2, pxf, pyf) * inv_a
        b1 = _edge(x2, y2, x0, y0, pxf, pyf) * inv_a
        b2 = _edge(x0, y0, x1, y1, pxf, pyf) * inv_a
        if edge_tolerance == 0:
            inside = (b0 > 0) & (b1 > 0) & (b2 > 0)
        else:
            inside = (b0 >= -edge_tolerance) & (b1 >= -edge_tolerance) & (b2 >= -edge_tolerance)
        keep = inside.nonzero().squeeze(1)
        face_local = local.index_select(0, keep)
        bary = torch.stack([b0.index_select(0, keep), b1.index_select(0, keep), b2.index_select(0, keep)], dim=-1)
        z = torch.stack(rows(pk, (6, 7, 8), face_local), dim=-1)
        px, py, fid = px.index_select(0, keep), py.index_select(0, keep), bx[3].index_select(0, face_local)
        pz = _depth(bary, z)
        front = pz > 0
        b = fid[front] // F
        pix_all.append(b * (H * W) + py[front] * W + px[front])
        z_all.append(pz[front])
        face_all.append(fid[front])
        start_face = stop_face

    num_pix = B * H * W
    pix_to_face = torch.full((num_pix,), -1, dtype=torch.long, device=device)
    if not pix_all:
        return pix_to_face
    pix = torch.cat(pix_all)
    zs = torch.cat(z_all)
    fids = torch.cat(face_all)
    if pix.numel() == 0:
        return pix_to_face
    zmin = torch.full((num_pix,), float("inf"), dtype=zs.dtype, device=device)
    zmin.scatter_reduce_(0, pix, zs, reduce="amin")
    win = zs <= zmin[pix]
    big = torch.iinfo(torch.long).max
    best = torch.full((num_pix,), big, dtype=torch.long, device=device)
    best.scatter_reduce_(0, pix[win], fids[win], reduce="amin")
    covered = best != big
    pix_to_face[covered] = best[covered]
    return pix_to_face


def rasterize_screen(
    verts_screen: torch.Tensor,
    faces: torch.Tensor,
    image_size: tuple[int, int],
    *,
    max_candidates: int = 1 << 22,
    edge_tolerance: float = 0.0,
    near: float = 0.0,
):
    """Rasterise triangles given in pixel coordinates.

    Args:
        verts_screen: ``(B, V, 3)``: pixel ``u`` (right), ``v`` (down), camera depth ``z``.
            Faces with a vertex at ``z <= near`` are skipped whole (no clipping), and so
            are slivers (see :func:`drawn_faces`).
        faces: ``(F, 3)`` int64 vertex indices shared by the batch.
        image_size: ``(H, W)``.
        max_candidates: bound on (face, pixel) pairs tested at once (memory).
        edge_tolerance: 0 (default) covers pixels strictly inside a face, as PyTorch3D
            does; a small positive value also covers pixels on (or within this barycentric
            margin of) an edge, ties going to the lowest face index. UV-space
            rasterisation uses it so texels on shared edges and on the UV border belong
            to a face.
        near: the near plane's depth (``z`` units).

    Returns:
        ``pytorch3d.renderer.mesh.rasterizer.Fragments`` with
        ``pix_to_face (B, H, W, 1)`` packed indices ``b * F + f`` (-1 empty),
        ``zbuf (B, H, W, 1)`` depth (-1 empty),
        ``bary_coords (B, H, W, 1, 3)`` perspective-correct (-1 empty) and
        ``dists (B, H, W, 1)`` signed squared distance to the nearest edge in PyTorch3D's
        NDC units (negative inside, -1 empty). All but ``pix_to_face`` are differentiable.
    """
    if verts_screen.ndim != 3 or verts_screen.shape[-1] != 3:
        raise ShapeError(f"verts_screen: expected shape (B, V, 3), got {tuple(verts_screen.shape)}")
    if faces.ndim != 2 or faces.shape[1] != 3:
        raise ShapeError(f"faces: expected shape (F, 3), got {tuple(faces.shape)}")
    H, W = int(image_size[0]), int(image_size[1])
    if H <= 0 or W <= 0:
        raise InvalidValueError(f"image_size: expected positive (H, W), got {tuple(image_size)}")
    faces = faces.to(device=verts_screen.device, dtype=torch.long)
    F = faces.shape[0]

    pf = pixel_faces(verts_screen, faces, face_per_pixel(verts_screen, faces, (H, W), max_candidates=max_candidates,
                                                         edge_tolerance=edge_tolerance, near=near))
    # PyTorch3D's dists: the signed squared distance to the nearest edge, in NDC units.
    item = torch.div(pf.index, H * W, rounding_mode="floor")
    tri = verts_screen[item.unsqueeze(1), faces[pf.face]]  # (N, 3, 3), differentiable
    local = pf.index - item * (H * W)
    px = (local % W).to(tri.dtype) + 0.5
    py = torch.div(local, W, rounding_mode="floor").to(tri.dtype) + 0.5
    d2 = torch.stack(
        [
            _point_segment_dist2(px, py, tri[:, 1, 0], tri[:, 1, 1], tri[:, 2, 0], tri[:, 2, 1]),
            _point_segment_dist2(px, py, tri[:, 2, 0], tri[:, 2, 1], tri[:, 0, 0], tri[:, 0, 1]),
            _point_segment_dist2(px, py, tri[:, 0, 0], tri[:, 0, 1], tri[:, 1, 0], tri[:, 1, 1]),
        ],
        dim=-1,
    ).min(-1).values
    return to_fragments(pf, F, dists=-d2 * (2.0 / min(H, W)) ** 2)
