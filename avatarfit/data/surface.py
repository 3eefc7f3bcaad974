"""Points fixed on a mesh surface: one ``face b0 b1 b2`` row per point.

The format of ``landmarks.txt`` (a capture's 68 facial landmarks, iBUG order) and of
``keypoints/points.txt`` (the keypoint definition). Face indices are 0-based into the
capture's topology; barycentric weights are non-negative and sum to 1.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch

from .._io import write_text_atomic
from ..errors import FormatError, ShapeError
from ._text import parse_floats, table_rows

__all__ = ["SurfacePoints", "read_surface_points", "format_surface_points", "write_surface_points"]


@dataclass(frozen=True)
class SurfacePoints:
    """Points given by face and barycentric coordinates.

    Attributes:
        faces: ``(N,)`` int64 face indices.
        bary: ``(N, 3)`` float32 barycentric coordinates.
    """

    faces: torch.Tensor
    bary: torch.Tensor

    def __post_init__(self) -> None:
        if self.faces.ndim != 1 or self.bary.shape != (self.faces.shape[0], 3):
            raise ShapeError(f"faces, bary: expected shapes (N,) and (N, 3), got {tuple(self.faces.shape)} "
                             f"and {tuple(self.bary.shape)}")

    def __len__(self) -> int:
        return int(self.faces.shape[0])

    def cat(self, other: "SurfacePoints") -> "SurfacePoints":
        """These points followed by ``other``'s."""
        return SurfacePoints(torch.cat([self.faces, other.faces]), torch.cat([self.bary, other.bary]))


def read_surface_points(
    path: str | os.PathLike, count: int | None = None, num_faces: int | None = None
) -> SurfacePoints:
    """Read ``face b0 b1 b2`` rows.

    Args:
        path: the text file.
        count: expected number of rows, or ``None`` for any.
        num_faces: faces of the mesh the points live on; indices are checked against it.

    Raises:
        FormatError: naming the file and line of a malformed row, an index out of range,
            weights that are negative or do not sum to 1, or a wrong row count.
    """
    path = Path(path)
    faces, bary = [], []
    for lineno, tokens in table_rows(path, "surface point file", "face b0 b1 b2", comments=True):
        try:
            face = int(tokens[0])
        except ValueError:
            raise FormatError(path, f"expected an integer face index, found {tokens[0]!r}", lineno) from None
        if face < 0 or (num_faces is not None and face >= num_faces):
            bound = f"0..{num_faces - 1}" if num_faces is not None else ">= 0"
            raise FormatError(path, f"face index {face} is outside the mesh's faces ({bound})", lineno)
        b = parse_floats(path, lineno, tokens[1:], "barycentric weight")
        if min(b) < -1e-6 or abs(sum(b) - 1.0) > 1e-4:
            raise FormatError(path, f"expected non-negative barycentric weights summing to 1, found {b}", lineno)
        faces.append(face)
        bary.append(b)
    if count is not None and len(faces) != count:
        raise FormatError(path, f"expected {count} points, found {len(faces)}")
    if not faces:
        raise FormatError(path, "no points found")
    return SurfacePoints(torch.tensor(faces, dtype=torch.int64), torch.tensor(bary, dtype=torch.float32))


def format_surface_points(points: SurfacePoints) -> str:
    """Text of ``points``, one ``face b0 b1 b2`` row each."""
    rows = [f"{int(f)} {b[0]:.8f} {b[1]:.8f} {b[2]:.8f}" for f, b in zip(points.faces.tolist(), points.bary.tolist())]
    return "\n".join(rows) + "\n"


def write_surface_points(path: str | os.PathLike, points: SurfacePoints) -> None:
    """Write ``points`` atomically."""
    write_text_atomic(path, format_surface_points(points))
