"""Normalisation statistics of a capture (``tex_mean.png``, ``tex_var.txt``,
``vert_mean.bin``, ``vert_var.txt``).

Files use Multiface's units: textures in 0..255 (the variance file is in 0..255 squared),
vertices in mm. In memory, textures are in [0, 1]; :class:`NormStats` converts.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import numpy as np
import torch

from .._io import read_png, write_bytes_atomic, write_png, write_text_atomic
from ..errors import FormatError, InvalidValueError
from .layout import Layout

__all__ = ["NormStats", "read_stats", "write_stats", "compute_stats", "read_scalar", "resize_texture",
           "identity_distance"]


@dataclass(frozen=True)
class NormStats:
    """Mean and scalar standard deviation of textures and vertices.

    Attributes:
        tex_mean: ``(3, T, T)`` mean texture in [0, 1].
        tex_std: scalar standard deviation of texel values, in [0, 1] units.
        vert_mean: ``(V, 3)`` mean head-local vertices (mm).
        vert_std: scalar standard deviation of vertex coordinates (mm).
    """

    tex_mean: torch.Tensor
    tex_std: float
    vert_mean: torch.Tensor
    vert_std: float

    def normalise_texture(self, texture: torch.Tensor) -> torch.Tensor:
        """``(..., 3, T, T)`` in [0, 1] -> zero-mean, unit-std texture."""
        return (texture - self.tex_mean.to(texture)) / self.tex_std

    def denormalise_texture(self, texture: torch.Tensor) -> torch.Tensor:
        """Inverse of :meth:`normalise_texture`."""
        return texture * self.tex_std + self.tex_mean.to(texture)

    def normalise_verts(self, verts: torch.Tensor) -> torch.Tensor:
        """``(..., V, 3)`` head-local mm -> normalised vertices."""
        return (verts - self.vert_mean.to(verts)) / self.vert_std

    def denormalise_verts(self, verts: torch.Tensor) -> torch.Tensor:
        """Inverse of :meth:`normalise_verts`."""
        return verts * self.vert_std + self.vert_mean.to(verts)


def resize_texture(texture: torch.Tensor, size: int) -> torch.Tensor:
    """A ``(3, T, T)`` texture at ``size x size``: area averaging down, bilinear up (what
    the models are trained on)."""
    if texture.shape[-1] == size:
        return texture
    mode = "area" if texture.shape[-1] > size else "bilinear"
    kwargs = {} if mode == "area" else {"align_corners": False}
    return torch.nn.functional.interpolate(texture[None], size=(size, size), mode=mode, **kwargs)[0]


def read_scalar(path: Path) -> float:
    """Read a text file holding one finite positive number."""
    if not path.is_file():
        raise FormatError(path, "file not found")
    text = path.read_text(encoding="utf-8", errors="replace").split()
    if len(text) != 1:
        raise FormatError(path, f"expected one number, found {len(text)} tokens", 1)
    try:
        value = float(text[0])
    except ValueError:
        raise FormatError(path, f"expected a number, found {text[0]!r}", 1) from None
    if not math.isfinite(value) or value <= 0:
        raise FormatError(path, f"expected a finite positive variance, found {value}", 1)
    return value


def read_stats(root: str | os.PathLike, num_verts: int | None = None) -> NormStats:
    """Read the four statistics files of a capture folder.

    Args:
        root: capture folder.
        num_verts: if given, ``vert_mean.bin`` must hold exactly this many vertices.
    """
    layout = Layout.of(root)
    tex_mean = read_png(layout.tex_mean)
    if tex_mean.shape[1] != tex_mean.shape[2]:
        raise FormatError(layout.tex_mean, f"expected a square texture, found {tex_mean.shape[2]}x{tex_mean.shape[1]}")
    if not layout.vert_mean.is_file():
        raise FormatError(layout.vert_mean, "file not found")
    raw = layout.vert_mean.read_bytes()
    expected = None if num_verts is None else num_verts * 12
    if (expected is not None and len(raw) != expected) or len(raw) % 12 or not raw:
        want = f"{expected} bytes ({num_verts} vertices x 3 float32)" if expected else "a multiple of 12 bytes"
        raise FormatError(layout.vert_mean, f"expected {want}, found {len(raw)} bytes")
    vert_mean = torch.from_numpy(np.frombuffer(raw, dtype="<f4").reshape(-1, 3).copy())
    return NormStats(
        tex_mean=tex_mean,
        tex_std=math.sqrt(read_scalar(layout.tex_var)) / 255.0,
        vert_mean=vert_mean,
        vert_std=math.sqrt(read_scalar(layout.vert_var)),
    )


def write_stats(root: str | os.PathLike, stats: NormStats) -> None:
    """Write the four statistics files atomically (Multiface units)."""
    layout = Layout.of(root)
    write_png(layout.tex_mean, stats.tex_mean)
    write_text_atomic(layout.tex_var, f"{(stats.tex_std * 255.0) ** 2:.8f}\n")
    write_bytes_atomic(layout.vert_mean, stats.vert_mean.detach().cpu().numpy().astype("<f4").tobytes())
    write_text_atomic(layout.vert_var, f"{stats.vert_std ** 2:.8f}\n")


def compute_stats(textures: Iterable[torch.Tensor], verts: Iterable[torch.Tensor]) -> NormStats:
    """Compute statistics in one pass over the frames.

    Args:
        textures: average textures, each ``(3, T, T)`` in [0, 1].
        verts: head-local vertices, each ``(V, 3)``.
    """
    tex_mean, tex_var = _moments(textures)
    v_mean, v_var = _moments(verts)
    return NormStats(tex_mean=tex_mean.float(), tex_std=math.sqrt(tex_var), vert_mean=v_mean.float(), vert_std=math.sqrt(v_var))


def _moments(arrays: Iterable[torch.Tensor]) -> tuple[torch.Tensor, float]:
    """Per-element mean and the scalar variance about it (as Multiface's var files hold)."""
    total = squares = None
    n = 0
    for a in arrays:
        a = a.double()
        total = a.clone() if total is None else total + a
        squares = a.square() if squares is None else squares + a.square()
        n += 1
    if n == 0:
        raise InvalidValueError("compute_stats: needs at least one texture and one vertex array")
    mean = total / n
    return mean, float((squares / n - mean.square()).mean().clamp_min(1e-8))


def identity_distance(mean_a: torch.Tensor, mean_b: torch.Tensor) -> tuple[float, float]:
    """How far two subjects' mean meshes are apart, for telling subjects apart.

    Args:
        mean_a, mean_b: ``(V, 3)`` mean head-local meshes (mm) on the same topology.

    Returns:
        ``(median vertex distance, tolerance)`` in mm, the distance taken after aligning
        ``mean_b`` rigidly onto ``mean_a`` (two sessions' head frames may differ by a small
        rotation and shift). The median ignores the minority of vertices that expressions
        move (mouth, eyelids, brows), so two captures of one subject score near 0
        (measured on procedural subjects: 0.02 mm between two captures of one identity
        with other performances, 3.3-4.3 mm between identities). The tolerance is 1 % of
        ``mean_a``'s RMS radius (about 0.85 mm for a head): beyond it the meshes are of
        different people.
    """
    if mean_a.shape != mean_b.shape or mean_a.ndim != 2 or mean_a.shape[-1] != 3:
        raise ValueError(f"mean_a, mean_b: expected two (V, 3) meshes, got {tuple(mean_a.shape)} and "
                         f"{tuple(mean_b.shape)}")
    a, b = mean_a.double(), mean_b.double()
    # Rigidly aligned first (two sessions' head frames may differ by a small rotation and
    # shift, which is not a change of identity): Kabsch on every vertex, then again on the
    # half that the first alignment matched best, so moved vertices do not tilt it.
    keep = torch.ones(a.shape[0], dtype=torch.bool)
    for _ in range(2):
        ca, cb = a[keep].mean(0), b[keep].mean(0)
        u, _, vt = torch.linalg.svd((b[keep] - cb).T @ (a[keep] - ca))
        d = float(torch.sign(torch.linalg.det(u @ vt)))
        rot = u @ torch.diag(torch.tensor([1.0, 1.0, d], dtype=a.dtype)) @ vt
        dist = ((b - cb) @ rot + ca - a).norm(dim=-1)
        keep = dist <= dist.median()
    median = float(dist.median())
    radius = float((a - a.mean(0)).norm(dim=-1).pow(2).mean().sqrt())
    return median, 0.01 * radius
