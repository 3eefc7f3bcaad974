"""Build an expression rig from a mesh and its 68 landmarks (iBUG order).

The rig is linear: each control adds vertex offsets and texture offsets, defined by
smooth regions around landmarks, so the same builder serves the real scan and the
procedural head. Lengths scale with the subject's inter-ocular distance.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..data.ibug import BROWS, EYES, INNER_LOWER, INNER_UPPER, JAW, MOUTH
from ..render.mesh_ops import vertex_normals
from ..render.unwrap import rasterize_uv
from .subject import CONTROLS, ExpressionRig

__all__ = ["JawBand", "build_rig", "landmark_groups"]


@dataclass(frozen=True)
class JawBand:
    """Vertices inside the mouth (collapsed onto the lip line at rest) that open into a
    cavity when the jaw opens.

    Attributes:
        index: ``(N,)`` vertex indices.
        fraction: ``(N,)`` in [0, 1]: 0 follows the upper lip, 1 the lower lip.
        depth: ``(N,)`` how far each vertex sinks into the head at full opening (mm).
    """

    index: torch.Tensor
    fraction: torch.Tensor
    depth: torch.Tensor


def landmark_groups(landmarks: torch.Tensor) -> dict[str, torch.Tensor]:
    """Key points of a face from its ``(68, 3)`` landmarks, sides by x (+x = subject's left)."""
    eye_a, eye_b = landmarks[EYES[0]].mean(0), landmarks[EYES[1]].mean(0)
    eye_left, eye_right = (eye_a, eye_b) if eye_a[0] > eye_b[0] else (eye_b, eye_a)
    brow_a, brow_b = landmarks[BROWS[0]].mean(0), landmarks[BROWS[1]].mean(0)
    brow_left, brow_right = (brow_a, brow_b) if brow_a[0] > brow_b[0] else (brow_b, brow_a)
    mouth = landmarks[MOUTH]
    corner_left = mouth[mouth[:, 0].argmax()]
    corner_right = mouth[mouth[:, 0].argmin()]
    jaw = landmarks[JAW]
    return {
        "eye_left": eye_left,
        "eye_right": eye_right,
        "eye_halfwidth": (landmarks[EYES[0]][:, 0].max() - landmarks[EYES[0]][:, 0].min()) / 2,
        "brow_left": brow_left,
        "brow_right": brow_right,
        "mouth": mouth.mean(0),
        "mouth_halfwidth": (corner_left[0] - corner_right[0]) / 2,
        "lip_line": (landmarks[INNER_UPPER].mean(0) + landmarks[INNER_LOWER].mean(0)) / 2,
        "corner_left": corner_left,
        "corner_right": corner_right,
        "nose_tip": landmarks[30],
        "chin": jaw[jaw[:, 1].argmin()],
        "jaw_left": jaw[jaw[:, 0].argmax()],
        "jaw_right": jaw[jaw[:, 0].argmin()],
    }


def _gauss(points: torch.Tensor, center: torch.Tensor, sigma: float) -> torch.Tensor:
    return torch.exp(-(points - center).square().sum(-1) / (2 * sigma * sigma))


def _smoothstep(x: torch.Tensor) -> torch.Tensor:
    x = x.clamp(0.0, 1.0)
    return x * x * (3 - 2 * x)


def _rotate_x(points: torch.Tensor, pivot: torch.Tensor, angle: float) -> torch.Tensor:
    c, s = math.cos(angle), math.sin(angle)
    p = points - pivot
    y = c * p[:, 1] - s * p[:, 2]
    z = s * p[:, 1] + c * p[:, 2]
    return torch.stack([p[:, 0], y, z], -1) + pivot


def build_rig(
    verts: torch.Tensor,
    faces: torch.Tensor,
    verts_uvs: torch.Tensor,
    faces_uvs: torch.Tensor,
    texture: torch.Tensor,
    landmarks: torch.Tensor,
    jaw_band: JawBand | None = None,
) -> ExpressionRig:
    """Build the rig of :data:`avatarfit.synth.subject.CONTROLS`.

    Args:
        verts: ``(V, 3)`` rest vertices (head-local, +y up, +z forward, +x subject's left).
        faces, verts_uvs, faces_uvs: topology.
        texture: ``(3, T, T)`` albedo.
        landmarks: ``(68, 3)`` rest landmarks, iBUG order.
        jaw_band: optional mouth-interior vertices (see :class:`JawBand`).
    """
    g = landmark_groups(landmarks)
    s = float((g["eye_left"] - g["eye_right"]).norm()) / 65.0  # face scale, 1 for a 65 mm inter-ocular distance
    V = verts.shape[0]
    T = texture.shape[-1]
    normals = vertex_normals(verts.unsqueeze(0), faces)[0]

    # Rest positions of texels, for texture regions.
    uvr = rasterize_uv(verts_uvs, faces_uvs, T)
    fidx = uvr.face.clamp_min(0)
    texel = (verts[faces[fidx]] * uvr.bary.unsqueeze(-1)).sum(1)  # (T*T, 3)
    texel_valid = uvr.valid.float()
    base = texture.reshape(3, -1).T  # (T*T, 3), texel order matches uvr

    def tex_delta(per_texel: torch.Tensor) -> torch.Tensor:
        return (per_texel * texel_valid.unsqueeze(-1)).T.reshape(3, T, T)

    # Skin colour: around the cheeks.
    cheek_l = (g["corner_left"] + g["eye_left"]) / 2 + torch.tensor([8 * s, 0, 0])
    cheek_r = (g["corner_right"] + g["eye_right"]) / 2 - torch.tensor([8 * s, 0, 0])
    near_cheek = (_gauss(texel, cheek_l, 8 * s) + _gauss(texel, cheek_r, 8 * s)) * texel_valid > 0.3
    skin = base[near_cheek].median(0).values if near_cheek.any() else base[uvr.valid].median(0).values

    vd = {name: torch.zeros(V, 3) for name in CONTROLS}
    td = {}

    # jaw_open: rotate everything below the lip line about a pivot near the ears.
    lip = g["lip_line"]
    pivot = torch.tensor([0.0, float(lip[1]) + 35 * s, float(lip[2]) - 85 * s])
    below = _smoothstep((lip[1] - verts[:, 1]) / (4 * s) + 0.5)
    lateral = torch.exp(-((verts[:, 0] - lip[0]).abs() - 45 * s).clamp_min(0).square() / (2 * (20 * s) ** 2))
    front = _smoothstep((verts[:, 2] - pivot[2]) / (30 * s))
    w_jaw = below * lateral * front
    full = _rotate_x(verts, pivot, math.radians(20.0)) - verts
    vd["jaw_open"] = full * w_jaw.unsqueeze(-1)
    if jaw_band is not None:
        i = jaw_band.index
        lower = full[i] * (lateral[i] * front[i]).unsqueeze(-1)
        sink = torch.zeros_like(lower)
        sink[:, 2] = -jaw_band.depth
        vd["jaw_open"][i] = jaw_band.fraction.unsqueeze(-1) * lower + sink
    in_mouth = (
        torch.exp(-(texel[:, 1] - lip[1]).square() / (2 * (2.5 * s) ** 2))
        * _smoothstep((g["mouth_halfwidth"] + 2 * s - (texel[:, 0] - lip[0]).abs()) / (4 * s))
        * _smoothstep((texel[:, 2] - (lip[2] - 25 * s)) / (10 * s))
    )
    interior = torch.tensor([0.20, 0.05, 0.06])
    td["jaw_open"] = tex_delta((interior - base) * 0.9 * in_mouth.unsqueeze(-1))

    # Smiles: mouth corner out, up and back; the cheek flushes.
    for side, sign in (("left", 1.0), ("right", -1.0)):
        corner = g[f"corner_{side}"]
        w = _gauss(verts, corner, 14 * s)
        vd[f"smile_{side}"] = w.unsqueeze(-1) * torch.tensor([sign * 5 * s, 5 * s, -3 * s])
        flush_center = corner + torch.tensor([sign * 12 * s, 14 * s, 0.0])
        flush = _gauss(texel, flush_center, 13 * s).unsqueeze(-1)
        td[f"smile_{side}"] = tex_delta(base * torch.tensor([0.05, -0.18, -0.16]) * flush)

    # Lip pucker: lips forward, mouth narrower, lips darker.
    m = g["mouth"]
    w = _gauss(verts, m, 12 * s).unsqueeze(-1)
    pucker = torch.stack([-(verts[:, 0] - m[0]) * 0.35, torch.zeros(V), torch.full((V,), 7 * s)], -1)
    vd["lip_pucker"] = w * pucker
    lips = _gauss(texel, m, 9 * s).unsqueeze(-1)
    td["lip_pucker"] = tex_delta(base * torch.tensor([-0.05, -0.25, -0.2]) * lips)

    # Brow raise: brows up, forehead wrinkles.
    w = torch.maximum(_gauss(verts, g["brow_left"], 16 * s), _gauss(verts, g["brow_right"], 16 * s))
    vd["brow_raise"] = w.unsqueeze(-1) * torch.tensor([0.0, 6 * s, 0.0])
    brow_y = float((g["brow_left"][1] + g["brow_right"][1]) / 2)
    brow_z = float((g["brow_left"][2] + g["brow_right"][2]) / 2)
    height = texel[:, 1] - brow_y
    forehead = (
        _smoothstep((height - 6 * s) / (6 * s))
        * _smoothstep((45 * s - height) / (8 * s))
        * _smoothstep((50 * s - (texel[:, 0] - lip[0]).abs()) / (10 * s))
        * _smoothstep((texel[:, 2] - (brow_z - 30 * s)) / (10 * s))
    )
    wrinkles = 0.5 + 0.5 * torch.cos(2 * math.pi * height / (7 * s))
    td["brow_raise"] = tex_delta(-0.22 * base * (forehead * wrinkles).unsqueeze(-1))

    # Blinks: upper lid down over the eye; the eye's texels become eyelid skin.
    lid = skin * 0.85
    for side in ("left", "right"):
        e = g[f"eye_{side}"]
        hw = float(g["eye_halfwidth"]) + 2 * s
        d = verts - e
        w_lid = (
            torch.exp(-d[:, 0].square() / (2 * hw * hw))
            * torch.exp(-(d[:, 1] - 3 * s).square() / (2 * (4 * s) ** 2))
            * _smoothstep((d[:, 2] + 15 * s) / (8 * s))
        )
        vd[f"blink_{side}"] = w_lid.unsqueeze(-1) * torch.tensor([0.0, -4 * s, 1.0 * s])
        dt = texel - e
        eye = (
            _smoothstep(1.2 - (dt[:, 0] / hw).square() - (dt[:, 1] / (6 * s)).square())
            * _smoothstep((dt[:, 2] + 12 * s) / (6 * s))
        )
        crease = torch.exp(-(dt[:, 1] + 1 * s).square() / (2 * (0.8 * s) ** 2)) * eye
        target = lid * (1 - 0.5 * crease.unsqueeze(-1))
        td[f"blink_{side}"] = tex_delta((target - base) * eye.unsqueeze(-1))

    # Cheek puff: cheeks out along their normals, skin lighter where stretched.
    puff = torch.zeros(V)
    shine = torch.zeros(texel.shape[0])
    for side in ("left", "right"):
        c = (g[f"corner_{side}"] + g[f"jaw_{side}"]) / 2
        puff = torch.maximum(puff, _gauss(verts, c, 16 * s))
        shine = torch.maximum(shine, _gauss(texel, c, 16 * s))
    vd["cheek_puff"] = (puff * 7 * s).unsqueeze(-1) * normals
    td["cheek_puff"] = tex_delta(0.08 * shine.unsqueeze(-1) * torch.ones(3))

    return ExpressionRig(
        names=CONTROLS,
        vert_deltas=torch.stack([vd[n] for n in CONTROLS]).float(),
        tex_deltas=torch.stack([td[n] for n in CONTROLS]).float(),
    )
