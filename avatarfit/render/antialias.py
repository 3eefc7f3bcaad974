"""Analytic antialiasing of silhouette and occlusion edges, differentiable in where the
edges lie (the method of nvdiffrast's ``antialias``: Laine et al. 2020, "Modular
Primitives for High-Performance Differentiable Rendering", section 4), written in torch
so that it runs on the CPU and the GPU alike and after either rasteriser.

A hard rasteriser's image is a step function of the vertices at outlines: a pixel shows
the face or the background, and no gradient says where the outline lies. Here every pair
of horizontally or vertically adjacent pixels that straddles a *silhouette edge* of the
nearer pixel's face is blended by where that edge crosses the segment between the two
pixel centres. With ``s`` in ``(0, 1)`` the crossing's position from the nearer pixel's
centre, the farther pixel takes ``max(s - 1/2, 0)`` of the nearer pixel's colour (the edge
lies in its half) and the nearer pixel ``max(1/2 - s, 0)`` of the farther one's (the edge
lies in its own half): a box filter of the edge, exact for a straight edge and continuous
in the vertices when a pixel centre changes side. Horizontal pairs handle edges steeper
than 45 degrees and vertical pairs the others, so each edge is counted once. The gradient
reaches the two vertices of the edge through ``s`` (and the colours of both pixels).

A silhouette edge is an edge of a face whose neighbour across it faces the other way on
screen (an outline or an occlusion contour), is not drawn (behind the near plane, a
sliver), or does not exist (a mesh border). The mesh's adjacency comes from its faces
(:func:`face_neighbours`), so shared edges inside a surface are never blended.
"""

from __future__ import annotations

import torch

__all__ = ["antialias", "face_neighbours", "silhouette_edges"]


def face_neighbours(faces: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The face across each edge of each face.

    Edge ``k`` of a face joins its vertices ``k + 1`` and ``k + 2`` (mod 3), opposite vertex ``k``.

    Args:
        faces: ``(F, 3)`` int64 vertex indices.

    Returns:
        ``neighbour (F, 3)`` int64, the other face on edge ``k`` or -1 where the edge has
        no other face or more than one (a border or a non-manifold edge, both treated as
        outlines); ``opposite (F, 3)`` bool, True where the neighbour runs the edge the
        other way (consistent winding, so "faces the other way" means a change of the sign
        of the screen area).
    """
    F = faces.shape[0]
    device = faces.device
    a, b = faces.roll(-1, 1), faces.roll(-2, 1)  # edge k: vertex k + 1 -> vertex k + 2
    lo, hi = torch.minimum(a, b).reshape(-1), torch.maximum(a, b).reshape(-1)
    n = lo.numel()
    neighbour = torch.full((n,), -1, dtype=torch.long, device=device)
    opposite = torch.zeros(n, dtype=torch.bool, device=device)
    if n < 2:
        return neighbour.view(F, 3), opposite.view(F, 3)
    key = lo * (int(hi.max()) + 1) + hi
    key, order = torch.sort(key, stable=True)
    same = key[1:] == key[:-1]  # (n - 1,)
    pad = torch.zeros(n + 1, dtype=torch.bool, device=device)
    pad[1:n] = same
    pair = pad[1:n] & ~pad[:n - 1] & ~pad[2:]  # slot i and i + 1 hold exactly one edge's two faces
    i = pair.nonzero().squeeze(1)
    first, second = order[i], order[i + 1]
    neighbour[first] = torch.div(second, 3, rounding_mode="floor")
    neighbour[second] = torch.div(first, 3, rounding_mode="floor")
    fwd = a.reshape(-1) < b.reshape(-1)
    opp = fwd[first] != fwd[second]
    opposite[first] = opp
    opposite[second] = opp
    return neighbour.view(F, 3), opposite.view(F, 3)


def silhouette_edges(signed_area: torch.Tensor, drawn: torch.Tensor, neighbour: torch.Tensor,
                     opposite: torch.Tensor) -> torch.Tensor:
    """Which edges of which drawn faces are outlines in each image.

    Args:
        signed_area: ``(B, F)`` twice the faces' signed screen areas.
        drawn: ``(B, F)`` bool, the faces the rasteriser may draw.
        neighbour, opposite: :func:`face_neighbours` of the faces.

    Returns:
        ``(B, F, 3)`` bool: edge ``k`` of face ``f`` is a silhouette edge in image ``b`` (a
        view of an edge-major ``(F, 3, B)`` tensor, the layout :func:`antialias` gathers
        from: rows of B images are several times faster to gather on a CPU than columns).
    """
    B, F = drawn.shape
    nb = neighbour.clamp(min=0).reshape(-1)
    front = (signed_area > 0).T.contiguous()  # (F, B)
    drawn_t = drawn.T.contiguous()
    turns = (front.unsqueeze(1) == front.index_select(0, nb).view(F, 3, B)) ^ opposite.unsqueeze(-1)
    sil = drawn_t.unsqueeze(1) & ((neighbour < 0).unsqueeze(-1) | ~drawn_t.index_select(0, nb).view(F, 3, B) | turns)
    return sil.permute(2, 0, 1)


def antialias(values: torch.Tensor, pix_to_face: torch.Tensor, depth: torch.Tensor, verts_screen: torch.Tensor,
              faces: torch.Tensor, silhouette: torch.Tensor, neighbour: torch.Tensor) -> torch.Tensor:
    """Blend the pixel pairs that straddle silhouette edges by where the edges cross them.

    Args:
        values: ``(B * H * W, C)`` the pixels' values (colours over the background and any
            other channel to antialias, e.g. the mask), pixel-major.
        pix_to_face: ``(B, H, W)`` face per pixel in ``[0, F)``, -1 where empty (no grad).
        depth: ``(B, H, W)`` camera depth of the pixel's face, ``inf`` where empty (no grad).
        verts_screen: ``(B, V, 3)`` pixel ``u``, ``v``, depth of the vertices (the gradient
            of the edge positions flows into the first two).
        faces: ``(F, 3)`` int64.
        silhouette: ``(B, F, 3)`` bool from :func:`silhouette_edges`.
        neighbour: ``(F, 3)`` from :func:`face_neighbours`.

    Returns:
        ``(B * H * W, C)`` antialiased values.
    """
    sil_t = silhouette.permute(1, 2, 0).contiguous()  # (F, 3, B): free for silhouette_edges' output
    B, H, W = pix_to_face.shape
    V = verts_screen.shape[1]
    if not bool(sil_t.any()):
        return values
    F = faces.shape[0]
    # The walk crosses at most _MAX_HOPS faces: a pair of pixels can only reach an outline
    # from a face that many faces away from one, or from the background. Pixels of other
    # faces (most of them) take no part.
    near_outline = sil_t[:, 0] | sil_t[:, 1] | sil_t[:, 2]  # (F, B)
    nb, has_nb = neighbour.clamp(min=0).reshape(-1), (neighbour >= 0).unsqueeze(-1)
    for _ in range(_MAX_HOPS - 1):
        g = near_outline.index_select(0, nb).view(F, 3, B) & has_nb
        near_outline = near_outline | g[:, 0] | g[:, 1] | g[:, 2]
    near_flat = near_outline.reshape(-1)  # face f of image b at f * B + b
    items = torch.arange(B, device=pix_to_face.device).view(B, 1, 1)
    part = near_flat[(pix_to_face * B + items).clamp(min=0)] | (pix_to_face < 0)  # (B, H, W)
    # Every horizontally or vertically adjacent pair of pixels with different faces that
    # takes part, as flat indices (p0, p1) and whether the pair is horizontal.
    pairs = []
    for horizontal, sl0, sl1 in ((True, (slice(None), slice(None), slice(None, -1)),
                                  (slice(None), slice(None), slice(1, None))),
                                 (False, (slice(None), slice(None, -1)), (slice(None), slice(1, None)))):
        f0, f1 = pix_to_face[sl0], pix_to_face[sl1]
        b, i, j = ((f0 != f1) & (part[sl0] | part[sl1])).nonzero().unbind(1)
        p0 = b * (H * W) + i * W + j
        pairs.append((p0, p0 + (1 if horizontal else W), torch.full_like(p0, horizontal, dtype=torch.bool)))
    p0, p1, horizontal = (torch.cat(x) for x in zip(*pairs))
    # (1-D index_select throughout: several times faster on a CPU than advanced indexing.)
    flat_face, flat_depth = pix_to_face.reshape(-1), depth.reshape(-1)
    n0 = flat_depth.index_select(0, p0) <= flat_depth.index_select(0, p1)
    pn, po = torch.where(n0, p0, p1), torch.where(n0, p1, p0)  # the nearer pixel (covered) and the other
    face, other_face = flat_face.index_select(0, pn), flat_face.index_select(0, po)
    item = torch.div(pn, H * W, rounding_mode="floor")
    # Pairs whose faces share an edge that is not an outline are one surface: no outline
    # lies between their centres.
    sil_flat = sil_t.reshape(-1)  # edge k of face f in image b at (3 f + k) B + b
    own = ((face * 3).unsqueeze(1) + torch.arange(3, device=face.device)) * B + item.unsqueeze(1)  # (N, 3)
    same_surface = ((neighbour.index_select(0, face) == other_face.unsqueeze(1))
                    & ~sil_flat[own]).any(1)
    reach = near_flat.index_select(0, face * B + item) | (other_face < 0)
    keep = (~same_surface & reach).nonzero().squeeze(1)
    if keep.numel() == 0:
        return values
    pn, po, face, other_face, item = (x.index_select(0, keep) for x in (pn, po, face, other_face, item))
    horizontal = horizontal.index_select(0, keep)
    screen = verts_screen.detach().reshape(B * V, 3)[:, :2]

    def centre(p):
        local = p - item * (H * W)
        y = torch.div(local, W, rounding_mode="floor")
        return torch.stack([local - y * W, y], 1).to(screen.dtype) + 0.5  # (N, 2) x, y

    near, other = centre(pn), centre(po)
    with torch.no_grad():
        hit, hit_face, hit_k = _walk(screen, faces, V, B, item, face, other_face, near, other, sil_flat,
                                     neighbour.reshape(-1))
    if hit.numel() == 0:
        return values
    # The crossing, differentiable in the outline edge's two vertices (its sign cancels).
    rows = item.index_select(0, hit) * V
    flat_faces = faces.reshape(-1)
    a = flat_faces.index_select(0, hit_face * 3 + (hit_k + 1) % 3) + rows
    b = flat_faces.index_select(0, hit_face * 3 + (hit_k + 2) % 3) + rows
    xy = verts_screen.reshape(B * V, 3)[:, :2]
    va, vb = xy.index_select(0, a), xy.index_select(0, b)
    e = vb - va
    cn, co = near.index_select(0, hit), other.index_select(0, hit)
    e_near = e[:, 0] * (cn[:, 1] - va[:, 1]) - e[:, 1] * (cn[:, 0] - va[:, 0])
    e_other = e[:, 0] * (co[:, 1] - va[:, 1]) - e[:, 1] * (co[:, 0] - va[:, 0])
    s = e_near / (e_near - e_other)
    # Each pass's share of the edge: cos^2 of the edge's angle to the pass's normal direction
    # (the horizontal and vertical pairs together count each edge once, continuously in its slope).
    ex2, ey2 = e[:, 0] ** 2, e[:, 1] ** 2
    weight = torch.where(horizontal.index_select(0, hit), ey2, ex2) / (ex2 + ey2).clamp_min(1e-20)
    pn, po = pn.index_select(0, hit), po.index_select(0, hit)
    c_near, c_other = values.index_select(0, pn), values.index_select(0, po)
    diff = (c_near - c_other) * weight.unsqueeze(1)
    w_other = (s - 0.5).clamp(min=0).unsqueeze(1)
    w_near = (0.5 - s).clamp(min=0).unsqueeze(1)
    return values.index_add(0, torch.cat([po, pn]), torch.cat([w_other * diff, -w_near * diff]))


# Faces the walk from a near pixel centre crosses inside one surface before it gives up and
# takes the last edge as the outline (thin faces fanning out at an outline).
_MAX_HOPS = 4


def _walk(screen, faces, V, B, item, face, other_face, near, other, sil_flat, flat_nb):
    """Where the segment from each pair's near pixel centre to the other one crosses an
    outline (no gradient).

    The walk starts in the near pixel's face and leaves it through the edge the segment
    meets first. A silhouette edge there is the outline. Through any other edge it goes on
    into the neighbour (the same surface), and stops with no outline if that is the other
    pixel's face or the segment ends inside it; after ``_MAX_HOPS`` faces the last edge is
    taken as the outline.

    Returns:
        ``hit (M,)`` the pairs with an outline, ``face (M,)`` the face and ``k (M,)`` the edge.
    """
    idx = torch.arange(item.numel(), device=item.device)
    points = torch.stack([near, other], 1)  # (N, 2 points, 2)
    hits, hit_faces, hit_ks = [], [], []
    for hop in range(_MAX_HOPS):
        rows = (faces.index_select(0, face) + (item * V).unsqueeze(1)).reshape(-1)
        xy = screen.index_select(0, rows).view(-1, 3, 2)
        a = xy.roll(-1, 1)  # edge k runs from vertex k + 1 ...
        e = xy.roll(-2, 1) - a  # ... to vertex k + 2
        d = points.unsqueeze(2) - a.unsqueeze(1)  # (N, 2, 3, 2)
        ef = e[:, None, :, 0] * d[..., 1] - e[:, None, :, 1] * d[..., 0]  # (N, 2, 3) edge functions
        area = e[:, 0, 0] * (xy[:, 0, 1] - a[:, 0, 1]) - e[:, 0, 1] * (xy[:, 0, 0] - a[:, 0, 0])  # 2 x signed area
        ef = ef * torch.sign(area).view(-1, 1, 1)
        en, eo = ef[:, 0], ef[:, 1]
        leaves, enters = (en > 0) & (eo < 0), (en < 0) & (eo > 0)
        den = en - eo
        cross = en / torch.where(den == 0, torch.ones_like(den), den)
        s_exit, k = torch.where(leaves, cross, torch.full_like(cross, 2.0)).min(1)
        s_entry = torch.where(enters, cross, torch.full_like(cross, -1.0)).amax(1)
        passes = (s_exit < 2.0) & (s_exit > s_entry)  # the segment leaves this face before the other centre
        edge = face * 3 + k
        nxt = flat_nb.index_select(0, edge)
        sil = sil_flat.index_select(0, edge * B + item) | (nxt < 0)
        last = hop == _MAX_HOPS - 1
        inside = nxt != other_face
        hit = (passes & (sil | (inside if last else torch.zeros_like(sil)))).nonzero().squeeze(1)
        hits.append(idx.index_select(0, hit))
        hit_faces.append(face.index_select(0, hit))
        hit_ks.append(k.index_select(0, hit))
        if last:
            break
        go = (passes & ~sil & inside).nonzero().squeeze(1)
        if go.numel() == 0:
            break
        idx, item, face, other_face, points = (v.index_select(0, go) for v in (idx, item, nxt, other_face, points))
    return torch.cat(hits), torch.cat(hit_faces), torch.cat(hit_ks)
