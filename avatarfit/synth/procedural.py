"""A procedural head built in code: no download, a seed picks the identity.

The face is a displaced ellipsoid cap on a regular grid (UV = grid coordinates, no
seams, about 11k triangles). A band of grid rows collapsed onto the lip line at rest
opens into a mouth cavity (teeth, dark interior, tongue) when the jaw opens. The 68
landmarks follow the iBUG layout.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ..render.mesh_ops import closest_surface_points
from .rig import JawBand, build_rig
from .subject import Subject

__all__ = ["make_procedural_subject"]

_LIP_Y = -42.0
_BAND_ROWS = 6


def _identity(seed: int) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    u = lambda lo, hi: float(rng.uniform(lo, hi))  # noqa: E731
    return {
        "a": 72 * u(0.94, 1.06),
        "b": 105 * u(0.95, 1.05),
        "c": 90 * u(0.95, 1.05),
        "nose": u(0.85, 1.15),
        "eye_dx": u(-3, 3),
        "lips": u(0.8, 1.2),
        "chin": u(0.7, 1.3),
        "cheek": u(0.7, 1.3),
        "tone": u(0.0, 1.0),
        "hue": u(-0.03, 0.03),
        "iris": u(0.0, 1.0),
        "hair": u(0.0, 1.0),
        "noise_seed": int(rng.integers(0, 2**31 - 1)),
    }


def _g(x, y, cx, cy, sx, sy=None):
    sy = sx if sy is None else sy
    return np.exp(-((x - cx) ** 2) / (2 * sx * sx) - ((y - cy) ** 2) / (2 * sy * sy))


def _smooth(x):
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3 - 2 * x)


def _surface(phi: np.ndarray, theta: np.ndarray, p: dict[str, float]) -> np.ndarray:
    """Head surface at azimuth ``phi`` and elevation ``theta`` (radians): ``(..., 3)``."""
    a, b, c = p["a"], p["b"], p["c"]
    x = a * np.sin(phi) * np.cos(theta)
    y = b * np.sin(theta)
    z = c * np.cos(phi) * np.cos(theta)
    front = _smooth((np.cos(phi) * np.cos(theta) - 0.35) / 0.4)
    ex = 31 + p["eye_dx"]
    ax = np.abs(x)
    nose_profile = _smooth((y + 22) / 10) * _smooth((30 - y) / 15) * (0.35 + 0.65 * np.clip(1 - (y + 18) / 50, 0, 1))
    dz = (
        22 * p["nose"] * np.exp(-(x**2) / (2 * (6 + 0.1 * np.clip(-y, 0, 30)) ** 2)) * nose_profile
        + 6 * p["nose"] * _g(x, y, 0, -14, 7)
        - 9 * _g(ax, y, ex, 22, 11)
        + 4 * _g(ax, y, ex, 22, 6)
        + 4 * _g(x, y, 0, 38, 35, 5)
        + 5 * p["cheek"] * _g(ax, y, 44, 2, 12)
        + 5 * p["lips"] * _g(x, y, 0, _LIP_Y + 4, 18, 3.5)
        + 5 * p["lips"] * _g(x, y, 0, _LIP_Y - 5, 17, 4)
        - 2 * _g(x, y, 0, _LIP_Y, 20, 1.5)
        + 6 * p["chin"] * _g(x, y, 0, -80, 14)
    )
    return np.stack([x, y, z + dz * front], -1)


def _landmarks_xy(p: dict[str, float]) -> np.ndarray:
    """68 iBUG landmarks as (x, y) on the face; index 0 is on the subject's right (-x)."""
    pts = []
    for k in range(17):  # jaw, right ear to left ear through the chin
        a = math.pi * k / 16
        pts.append((-math.cos(a) * 66, 8 - math.sin(a) * 98))
    for k in range(5):  # right brow, outer to inner
        pts.append((-52 + 9.5 * k, 36 + 5 * math.sin(math.pi * (k + 0.5) / 5)))
    for k in range(5):  # left brow, inner to outer
        pts.append((14 + 9.5 * k, 36 + 5 * math.sin(math.pi * (4.5 - k) / 5)))
    pts += [(0, 26), (0, 14), (0, 2), (0, -12)]  # nose bridge to tip
    pts += [(-12, -20), (-6, -22), (0, -23), (6, -22), (12, -20)]  # nostrils
    ex = 31 + p["eye_dx"]
    eye = [(-12, 0), (-4, 4), (4, 4), (12, 0), (4, -3.5), (-4, -3.5)]  # outer, top, top, inner, bottom, bottom
    pts += [(-ex - dx, 22 + dy) for dx, dy in eye]  # right eye: outer corner first
    pts += [(ex + dx, 22 + dy) for dx, dy in [eye[3], eye[2], eye[1], eye[0], eye[5], eye[4]]]
    L = _LIP_Y
    pts += [(-24, L), (-16, L + 5), (-7, L + 7.5), (0, L + 6.5), (7, L + 7.5), (16, L + 5)]
    pts += [(24, L), (16, L - 7), (7, L - 9.5), (0, L - 10), (-7, L - 9.5), (-16, L - 7)]
    pts += [(-20, L), (-8, L + 1.5), (0, L + 1.5), (8, L + 1.5), (20, L), (8, L - 1.5), (0, L - 1.5), (-8, L - 1.5)]
    return np.asarray(pts, dtype=np.float64)


def _xy_to_angles(xy: np.ndarray, p: dict[str, float]) -> tuple[np.ndarray, np.ndarray]:
    theta = np.arcsin(np.clip(xy[:, 1] / p["b"], -0.99, 0.99))
    phi = np.arcsin(np.clip(xy[:, 0] / (p["a"] * np.cos(theta)), -0.99, 0.99))
    return phi, theta


def _paint(p, x, y, phi, band, band_frac, size):
    """Albedo at texels with base-surface coordinates ``x, y`` (mm): ``(T, T, 3)``."""
    rng = np.random.default_rng(p["noise_seed"])
    light = np.array([0.93, 0.76, 0.64])
    dark = np.array([0.50, 0.34, 0.25])
    skin = light + (dark - light) * p["tone"] + np.array([p["hue"], 0, -p["hue"]])
    # Low-frequency mottling and pores, from smoothed noise on the texel grid.
    def noise(scale, amp):
        n = max(2, size // scale)
        coarse = rng.standard_normal((n, n, 3))
        idx = np.linspace(0, n - 1, size)
        i0 = np.floor(idx).astype(int)
        i1 = np.minimum(i0 + 1, n - 1)
        f = (idx - i0)[:, None, None]
        rows = coarse[i0] * (1 - f) + coarse[i1] * f
        f = (idx - i0)[None, :, None]
        return amp * (rows[:, i0] * (1 - f) + rows[:, i1] * f)

    img = skin[None, None, :] * (1 + noise(32, 0.05) + noise(4, 0.025))
    ax = np.abs(x)
    ex = 31 + p["eye_dx"]
    # Blush and the shadow under the chin.
    img = img * (1 - 0.08 * _g(ax, y, 42, -10, 14)[..., None] * np.array([-0.5, 1, 1]))
    img = img * (1 - 0.25 * _smooth((-95 - y) / 20)[..., None])
    hair = np.array([0.10, 0.07, 0.05]) + p["hair"] * np.array([0.35, 0.22, 0.10])
    # Eyebrows: arcs above the eyes.
    arch = 36 + 5 * np.sin(np.pi * np.clip((ax - 14) / 38, 0, 1))
    brow = _smooth((2.6 - np.abs(y - arch)) / 1.2) * _smooth((ax - 12) / 3) * _smooth((54 - ax) / 4)
    img = img * (1 - brow[..., None]) + hair * brow[..., None]
    # Eyes: sclera, iris, pupil, lash line.
    ez = ((ax - ex) / 12.5) ** 2 + ((y - 22) / 4.3) ** 2
    sclera = _smooth((1 - ez) / 0.15)
    iris_col = np.array([0.25, 0.35, 0.55]) * (1 - p["iris"]) + np.array([0.35, 0.22, 0.10]) * p["iris"]
    r = np.hypot(ax - ex, y - 22)
    img = img * (1 - sclera[..., None]) + np.array([0.92, 0.9, 0.87]) * sclera[..., None]
    iris = _smooth((4.6 - r) / 0.6) * sclera
    img = img * (1 - iris[..., None]) + iris_col * iris[..., None]
    pupil = _smooth((2.0 - r) / 0.4) * sclera
    img = img * (1 - pupil[..., None]) + 0.03 * pupil[..., None]
    lash = _smooth((0.25 - np.abs(ez - 1.0)) / 0.15) * (y > 21)
    img = img * (1 - 0.8 * lash[..., None])
    # Lips and nostrils.
    L = _LIP_Y
    upper = (y >= L) & (y <= L + 7.5 * np.clip(1 - (x / 25) ** 2, 0, 1))
    lower = (y < L) & (y >= L - 10 * np.clip(1 - (x / 25) ** 2, 0, 1))
    lips = (upper | lower) & (ax < 25)
    lip_col = skin * np.array([0.85, 0.52, 0.55])
    img = np.where(lips[..., None], lip_col, img)
    nostril = _smooth((1 - ((ax - 6) / 3.5) ** 2 - ((y + 20) / 2) ** 2) / 0.3)
    img = img * (1 - 0.7 * nostril[..., None])
    # Hair on top and at the sides.
    hairline = _smooth((y - 66 - 6 * np.cos(x / 20)) / 3) + _smooth((np.abs(phi) - np.radians(82)) / 0.08) * (y > -10)
    hairline = np.clip(hairline, 0, 1)
    img = img * (1 - hairline[..., None]) + (hair * (1 + noise(8, 0.2)))[..., :] * hairline[..., None]
    # Mouth interior band: teeth, dark, tongue.
    interior = np.where(
        band_frac[..., None] < 0.3,
        np.array([0.93, 0.92, 0.86]),
        np.where(band_frac[..., None] < 0.7, np.array([0.12, 0.03, 0.04]), np.array([0.62, 0.25, 0.28])),
    )
    img = np.where(band[..., None], interior, img)
    return np.clip(img, 0, 1)


def make_procedural_subject(seed: int = 0, columns: int = 80, rows: int = 66, texture_size: int = 512) -> Subject:
    """Build the procedural head.

    Args:
        seed: identity seed (shape, skin tone, eye and hair colour, skin detail).
        columns, rows: grid resolution (faces = 2 (columns - 1) (rows + band - 1)).
        texture_size: T of the albedo texture.
    """
    p = _identity(seed)
    theta_min, theta_max = math.radians(-65), math.radians(78)
    theta_lip = math.asin(_LIP_Y / p["b"])
    n_below = max(2, round((rows - 1) * (theta_lip - theta_min) / (theta_max - theta_min)))
    n_above = max(2, rows - 1 - n_below)
    # Row table: geometric elevation and mouth-band fraction (-1 outside the band).
    thetas = list(np.linspace(theta_min, theta_lip, n_below + 1))  # ... lower-lip edge
    fracs = [-1.0] * len(thetas)
    fracs[-1] = 1.0
    for k in range(_BAND_ROWS):
        thetas.append(theta_lip)
        fracs.append(1.0 - (k + 1) / (_BAND_ROWS + 1))
    thetas += list(np.linspace(theta_lip, theta_max, n_above + 1))  # upper-lip edge ...
    fracs += [0.0] + [-1.0] * n_above
    thetas = np.asarray(thetas)
    fracs = np.asarray(fracs)
    n_rows = len(thetas)
    phis = np.linspace(math.radians(-105), math.radians(105), columns)
    PHI, THETA = np.meshgrid(phis, thetas)  # (n_rows, columns)
    verts = _surface(PHI, THETA, p).reshape(-1, 3)
    us, vs = np.meshgrid(np.linspace(0, 1, columns), np.linspace(0, 1, n_rows))
    uvs = np.stack([us, vs], -1).reshape(-1, 2)
    r, c = np.meshgrid(np.arange(n_rows - 1), np.arange(columns - 1), indexing="ij")
    a = (r * columns + c).ravel()
    b, cc, d = a + 1, a + columns + 1, a + columns
    faces = np.concatenate([np.stack([a, b, cc], -1), np.stack([a, cc, d], -1)])

    # Texture: texel -> grid coordinates -> base surface position.
    T = texture_size
    col_f = np.linspace(0, columns - 1, T)
    row_f = (1 - np.linspace(0, 1, T)) * (n_rows - 1)  # image row 0 = v 1 = top row
    phi_t = np.interp(col_f, np.arange(columns), phis)[None, :].repeat(T, 0)
    theta_t = np.interp(row_f, np.arange(n_rows), thetas)[:, None].repeat(T, 1)
    row_idx = np.clip(np.rint(row_f).astype(int), 0, n_rows - 1)
    band_t = ((fracs[row_idx] > 0) & (fracs[row_idx] < 1))[:, None].repeat(T, 1)
    band_frac = np.interp(row_f, np.arange(n_rows), np.where(fracs < 0, 0, fracs))[:, None].repeat(T, 1)
    xt = p["a"] * np.sin(phi_t) * np.cos(theta_t)
    yt = p["b"] * np.sin(theta_t)
    texture = _paint(p, xt, yt, phi_t, band_t & (np.abs(xt) < 24), 1 - band_frac, T)

    verts_t = torch.from_numpy(verts).float()
    faces_t = torch.from_numpy(faces).long()
    uvs_t = torch.from_numpy(uvs).float()
    tex_t = torch.from_numpy(texture.transpose(2, 0, 1).copy()).float()

    # Landmarks: on the surface, snapped to the mesh (off the collapsed mouth band).
    xy = _landmarks_xy(p)
    phi_l, theta_l = _xy_to_angles(xy, p)
    lm3 = torch.from_numpy(_surface(phi_l, theta_l, p)).float()
    lm_faces, lm_bary = closest_surface_points(verts_t, faces_t, lm3)

    # Mouth band: slit inside the mouth, blending to a closed surface at the corners.
    band_rows = np.nonzero(fracs >= 0)[0]
    idx = (band_rows[:, None] * columns + np.arange(columns)[None, :]).ravel()
    x_band = verts[idx, 0]
    open_w = _smooth((22 - np.abs(x_band)) / 6)
    f = np.repeat(fracs[band_rows], columns)
    jaw_band = JawBand(
        index=torch.from_numpy(idx).long(),
        fraction=torch.from_numpy(0.5 + open_w * (f - 0.5)).float(),
        depth=torch.from_numpy(18.0 * open_w * np.sin(np.pi * f)).float(),
    )
    lm_rest = (verts_t[faces_t[lm_faces]] * lm_bary.unsqueeze(-1)).sum(1)
    rig = build_rig(verts_t, faces_t, uvs_t, faces_t, tex_t, lm_rest, jaw_band=jaw_band)
    return Subject(
        name=f"procedural-{seed}",
        verts=verts_t,
        faces=faces_t,
        verts_uvs=uvs_t,
        faces_uvs=faces_t.clone(),
        texture=tex_t,
        landmark_faces=lm_faces,
        landmark_bary=lm_bary,
        rig=rig,
    )
