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
        ``(B, F, 3)`` bool: edge ``k`` of face ``f`` is a silhouette edge in image ``b``.
    """
    nb = neighbour.clamp(min=0)
    front = signed_area > 0  # (B, F)
    same_side = front.unsqueeze(-1) == front[:, nb]  # (B, F, 3)
    turns = torch.where(opposite, ~same_side, same_side)  # the neighbour faces the other way
    return drawn.unsqueeze(-1) & ((neighbour < 0) | ~drawn[:, nb] | turns)


def antialias(values: torch.Tensor, pix_to_face: torch.Tensor, depth: torch.Tensor, verts_screen: torch.Tensor,
              faces: torch.Tensor, silhouette: torch.Tensor, neighbour: torch.Tensor) -> torch.Tensor:
    """Blend the pixel pairs that straddle silhouette edges by where the edges cross them.

    Args:
        values: ``(B * H * W, C)`` the pixels' values (colours over the background and any
            other channel to antialias, e.g. coverage), pixel-major.
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
    B, H, W = pix_to_face.shape
    F = faces.shape[0]
    V = verts_screen.shape[1]
    if not bool(silhouette.any()):
        return values
    item = torch.arange(B, device=pix_to_face.device).view(B, 1, 1)
    flat_nb = neighbour.reshape(-1)
    src = values
    out = values
    flat_screen = verts_screen.reshape(B * V, 3)
    for horizontal in (True, False):
        if horizontal:
            f0, f1, d0, d1 = pix_to_face[:, :, :-1], pix_to_face[:, :, 1:], depth[:, :, :-1], depth[:, :, 1:]
        else:
            f0, f1, d0, d1 = pix_to_face[:, :-1], pix_to_face[:, 1:], depth[:, :-1], depth[:, 1:]
        near0 = d0 <= d1
        f = torch.where(near0, f0, f1)
        g = torch.where(near0, f1, f0)
        # Pairs of faces that share an edge and face the same way are one surface (most pairs
        # with different faces): no outline between their centres.
        fc = f.clamp(min=0)
        shared = ((neighbour[fc] == g.unsqueeze(-1)) & ~silhouette[item, fc]).any(-1)
        cand = (f0 != f1) & (f >= 0) & ~shared
        b, i, j = cand.nonzero().unbind(1)
        if b.numel() == 0:
            continue
        p0 = b * (H * W) + i * W + j
        p1 = p0 + (1 if horizontal else W)
        n0 = near0[b, i, j]
        pn, po = torch.where(n0, p0, p1), torch.where(n0, p1, p0)
        step = torch.where(n0, 1.0, -1.0).to(verts_screen.dtype)  # from the near pixel to the other
        cx, cy = j.to(verts_screen.dtype) + 0.5, i.to(verts_screen.dtype) + 0.5
        if horizontal:
            nx, ny = torch.where(n0, cx, cx + 1), cy
            ox, oy = nx + step, ny
        else:
            nx, ny = cx, torch.where(n0, cy, cy + 1)
            ox, oy = nx, ny + step
        s, weight, found = _crossings(flat_screen, faces, V, b, f[b, i, j], g[b, i, j], (nx, ny), (ox, oy),
                                      silhouette, flat_nb, horizontal)
        if s.numel() == 0:
            continue
        pn, po = pn.index_select(0, found), po.index_select(0, found)
        c_near, c_other = src.index_select(0, pn), src.index_select(0, po)
        diff = (c_near - c_other) * weight.unsqueeze(1)
        w_other = (s - 0.5).clamp(min=0).unsqueeze(1)
        w_near = (0.5 - s).clamp(min=0).unsqueeze(1)
        out = out.index_add(0, po, w_other * diff).index_add(0, pn, -w_near * diff)
    return out


# Faces the walk from a near pixel centre crosses inside one surface before it gives up and
# takes the last edge as the outline (thin faces fanning out at an outline).
_MAX_HOPS = 4


def _crossings(flat_screen, faces, V, b, face, other_face, near, other, silhouette, flat_nb, horizontal):
    """Where the segment from each pair's near pixel centre to the other one crosses an
    outline.

    The walk starts in the near pixel's face and leaves it through the edge the segment
    meets first. A silhouette edge there is the outline. Through any other edge it goes on
    into the neighbour (the same surface), and stops with no outline if that is the other
    pixel's face or the segment ends inside it; after ``_MAX_HOPS`` faces the last edge is
    taken as the outline.

    Returns:
        ``s (M,)`` the crossing in (0, 1) from the near centre (differentiable in the edge's
        vertices), ``weight (M,)`` the pass's share of the edge (``cos^2`` of its angle to
        the pass's normal direction: the horizontal and vertical passes together count each
        edge once, and the split is continuous in its slope), ``found (M,)`` the pairs.
    """
    nx, ny = near
    ox, oy = other
    idx = torch.arange(b.numel(), device=b.device)
    found_s, found_w, found_i = [], [], []
    for hop in range(_MAX_HOPS):
        rows = (faces.index_select(0, face) + (b * V).unsqueeze(1)).reshape(-1)
        xy = flat_screen.index_select(0, rows)[:, :2].view(-1, 3, 2)
        X, Y = xy[..., 0], xy[..., 1]  # (N, 3)
        Xa, Ya, Xb, Yb = X.roll(-1, 1), Y.roll(-1, 1), X.roll(-2, 1), Y.roll(-2, 1)
        ex, ey = Xb - Xa, Yb - Ya
        e_near = ex * (ny.unsqueeze(1) - Ya) - ey * (nx.unsqueeze(1) - Xa)
        e_other = ex * (oy.unsqueeze(1) - Ya) - ey * (ox.unsqueeze(1) - Xa)
        sign = torch.sign((ex * (Y - Ya) - ey * (X - Xa)).detach().sum(1, keepdim=True))  # winding: 2 x area
        en, eo = e_near * sign, e_other * sign
        den, deo = en.detach(), eo.detach()
        leaves, enters = (den > 0) & (deo < 0), (den < 0) & (deo > 0)
        either = leaves | enters
        cross = torch.where(either, den / (den - deo).where(either, torch.ones_like(den)), torch.zeros_like(den))
        s_exit, k = torch.where(leaves, cross, torch.full_like(cross, 2.0)).min(1)
        s_entry = torch.where(enters, cross, torch.full_like(cross, -1.0)).amax(1)
        passes = (s_exit < 2.0) & (s_exit > s_entry)  # the segment leaves this face before the other centre
        edge = face * 3 + k
        nxt = flat_nb.index_select(0, edge)
        sil = silhouette.reshape(silhouette.shape[0], -1)[b, edge] | (nxt < 0)
        last = hop == _MAX_HOPS - 1
        hit = (passes & (sil | (last & (nxt != other_face)))).nonzero().squeeze(1)
        if hit.numel():
            kk = k.index_select(0, hit).unsqueeze(1)
            a_n, a_o = en.index_select(0, hit).gather(1, kk), eo.index_select(0, hit).gather(1, kk)
            gx, gy = ex.index_select(0, hit).gather(1, kk), ey.index_select(0, hit).gather(1, kk)
            lx, ly = (gx * gx, gy * gy) if horizontal else (gy * gy, gx * gx)
            found_s.append((a_n / (a_n - a_o)).squeeze(1))
            found_w.append((ly / (lx + ly).clamp_min(1e-20)).squeeze(1))
            found_i.append(idx.index_select(0, hit))
        go = (passes & ~sil & (nxt != other_face)).nonzero().squeeze(1)
        if go.numel() == 0 or last:
            break
        idx, b, face, other_face = (v.index_select(0, go) for v in (idx, b, nxt, other_face))
        nx, ny, ox, oy = (v.index_select(0, go) for v in (nx, ny, ox, oy))
    if not found_s:
        empty = torch.zeros(0, dtype=flat_screen.dtype, device=b.device)
        return empty, empty, torch.zeros(0, dtype=torch.long, device=b.device)
    return torch.cat(found_s), torch.cat(found_w), torch.cat(found_i)
