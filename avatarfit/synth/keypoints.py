"""2D keypoint targets: 68 landmarks plus 206 surface points, projected with visibility.

The 274 points are fixed per subject as face index + barycentric weights on the
tracked mesh: the capture's 68 landmarks (``landmarks.txt``), then 206 triangle
centroids spread evenly over the face by farthest-point sampling on the mean mesh.
"""

from __future__ import annotations

import torch

from ..data.surface import SurfacePoints
from ..errors import ShapeError
from ..render.cameras import project_points
from ..render.mesh_ops import surface_points
from ..render.renderer import rasterize
from .rig import landmark_groups

__all__ = ["NUM_LANDMARKS", "NUM_SURFACE", "NUM_KEYPOINTS", "face_surface_points", "keypoint_definition",
           "project_keypoints"]

NUM_LANDMARKS = 68
NUM_SURFACE = 206
NUM_KEYPOINTS = NUM_LANDMARKS + NUM_SURFACE


def _face_region(verts: torch.Tensor, faces: torch.Tensor, landmarks: torch.Tensor) -> torch.Tensor:
    """Boolean ``(F,)``: faces on the front of the face between the jaw line and the forehead."""
    tri = verts[faces]
    cross = torch.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0], dim=-1)
    area = cross.norm(dim=-1) / 2
    normal_z = cross[:, 2] / cross.norm(dim=-1).clamp_min(1e-12)
    centroid = tri.mean(1)
    g = landmark_groups(landmarks)
    brow_y = float(torch.maximum(g["brow_left"][1], g["brow_right"][1]))
    eye_y = float((g["eye_left"][1] + g["eye_right"][1]) / 2)
    top = brow_y + 0.6 * max(brow_y - eye_y, 1e-3)
    x = centroid[:, 0]
    y = centroid[:, 1]
    return (
        (area > 0.05 * area[area > 0].median())
        & (normal_z > 0.35)
        & (x >= g["jaw_right"][0]) & (x <= g["jaw_left"][0])
        & (y >= g["chin"][1]) & (y <= top)
    )


def face_surface_points(
    verts: torch.Tensor, faces: torch.Tensor, landmarks: torch.Tensor, count: int = NUM_SURFACE
) -> SurfacePoints:
    """Triangle centroids spread evenly over the face (farthest-point sampling).

    Args:
        verts: ``(V, 3)`` head-local vertices of the neutral or mean face.
        faces: ``(F, 3)``.
        landmarks: ``(68, 3)`` head-local landmarks on ``verts`` (iBUG order); they
            bound the face region (jaw line to above the brows, front-facing).
        count: number of points.

    Returns:
        ``count`` points; deterministic for a mesh (sampling starts at the nose tip).
    """
    if verts.ndim != 2 or verts.shape[1] != 3:
        raise ShapeError(f"verts: expected shape (V, 3), got {tuple(verts.shape)}")
    if landmarks.shape != (NUM_LANDMARKS, 3):
        raise ShapeError(f"landmarks: expected shape ({NUM_LANDMARKS}, 3), got {tuple(landmarks.shape)}")
    verts = verts.double()
    landmarks = landmarks.double()
    candidates = torch.nonzero(_face_region(verts, faces, landmarks)).squeeze(1)
    if candidates.numel() < count:
        raise ValueError(f"verts: only {candidates.numel()} front-facing triangles in the face region, "
                         f"fewer than the {count} keypoints asked for")
    centroids = verts[faces[candidates]].mean(1)
    chosen = [int((centroids - landmarks[30]).norm(dim=-1).argmin())]
    dist = (centroids - centroids[chosen[0]]).norm(dim=-1)
    for _ in range(count - 1):
        nxt = int(dist.argmax())
        chosen.append(nxt)
        dist = torch.minimum(dist, (centroids - centroids[nxt]).norm(dim=-1))
    idx = candidates[torch.tensor(chosen)]
    return SurfacePoints(idx.long(), torch.full((count, 3), 1.0 / 3.0))


def keypoint_definition(verts: torch.Tensor, faces: torch.Tensor, landmarks: SurfacePoints) -> SurfacePoints:
    """The 274 keypoints: ``landmarks`` (68) followed by :func:`face_surface_points` (206).

    Args:
        verts: ``(V, 3)`` head-local vertices of the mean face.
        faces: ``(F, 3)``.
    """
    if len(landmarks) != NUM_LANDMARKS:
        raise ShapeError(f"landmarks: expected {NUM_LANDMARKS} points, got {len(landmarks)}")
    lm = surface_points(verts[None].float(), faces, landmarks.faces, landmarks.bary)[0]
    return landmarks.cat(face_surface_points(verts, faces, lm))


def project_keypoints(
    verts: torch.Tensor,
    faces: torch.Tensor,
    points: SurfacePoints,
    K: torch.Tensor,
    R: torch.Tensor,
    t: torch.Tensor,
    image_size: tuple[int, int],
    *,
    backend: str = "auto",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Project surface points and decide their visibility with the depth buffer.

    A point is visible when it projects inside the image onto a covered pixel whose
    depth is not in front of the point by more than a tolerance (three pixel footprints
    plus 0.5 mm, which absorbs depth changes across one pixel on slanted surfaces).

    Args:
        verts: ``(B, V, 3)`` vertices in the cameras' world frame.
        faces: ``(F, 3)``.
        points: the N points.
        K, R, t: ``(B, 3, 3)``, ``(B, 3, 3)``, ``(B, 3)`` OpenCV cameras.
        image_size: ``(H, W)``.

    Returns:
        ``xy (B, N, 2)`` continuous pixel coordinates (pixel centres at ``i + 0.5``) and
        ``visible (B, N)`` bool.
    """
    H, W = image_size
    p3 = surface_points(verts, faces, points.faces.to(verts.device), points.bary.to(verts))
    uvz = project_points(p3, K, R, t, image_size)
    xy, z = uvz[..., :2], uvz[..., 2]
    frags = rasterize(verts, faces, K, R, t, image_size, backend=backend)
    zbuf = frags.zbuf[..., 0]  # (B, H, W), -1 where empty
    col = xy[..., 0].floor().long()
    row = xy[..., 1].floor().long()
    inside = (col >= 0) & (col < W) & (row >= 0) & (row < H) & (z > 0)
    b = torch.arange(verts.shape[0], device=verts.device)[:, None].expand_as(col)
    depth = zbuf[b, row.clamp(0, H - 1), col.clamp(0, W - 1)]
    focal = torch.minimum(K[:, 0, 0], K[:, 1, 1])[:, None]
    tol = 3.0 * z.abs() / focal + 0.5
    visible = inside & (depth > 0) & (z <= depth + tol)
    return xy, visible
