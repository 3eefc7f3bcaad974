"""Wavefront OBJ meshes with separate position and UV indices.

Only what a tracked face mesh needs is read: ``v``, ``vt`` and ``f`` records (polygons
are fan-triangulated; normals and other records are ignored). UVs follow OBJ: v points
up. Positions and UV indices are kept separate so UV seams do not change the vertex count
(a trimesh load would split vertices on seams and break the topology of ``.bin`` files).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .._io import write_text_atomic
from ..errors import FormatError
from ._text import parse_floats

__all__ = ["ObjMesh", "read_obj", "write_obj", "format_obj"]


@dataclass(frozen=True)
class ObjMesh:
    """A triangle mesh read from an OBJ file.

    Attributes:
        verts: ``(V, 3)`` float32 positions.
        faces: ``(F, 3)`` int64 position indices, 0-based.
        verts_uvs: ``(U, 2)`` float32 texture coordinates, or ``None``.
        faces_uvs: ``(F, 3)`` int64 UV indices, 0-based, or ``None``.
    """

    verts: np.ndarray
    faces: np.ndarray
    verts_uvs: np.ndarray | None
    faces_uvs: np.ndarray | None


def _floats(path: Path, lineno: int, tokens: list[str], lo: int, hi: int, what: str) -> list[float]:
    if not lo <= len(tokens) <= hi:
        expected = f"{lo}" if lo == hi else f"{lo} to {hi}"
        raise FormatError(path, f"'{what}' needs {expected} numbers, found {len(tokens)}", lineno)
    return parse_floats(path, lineno, tokens, f"'{what}'")


def _index(path: Path, lineno: int, token: str, count: int, what: str) -> int:
    try:
        idx = int(token)
    except ValueError:
        raise FormatError(path, f"face: expected an integer {what} index, found {token!r}", lineno) from None
    resolved = idx - 1 if idx > 0 else count + idx
    if idx == 0 or not 0 <= resolved < count:
        raise FormatError(
            path, f"face: {what} index {idx} out of range (the file defines {count} {what}s before this line)", lineno
        )
    return resolved


def read_obj(path: str | os.PathLike) -> ObjMesh:
    """Read positions, UVs and triangles from an OBJ file.

    Raises:
        FormatError: naming the file and line of a malformed record, a face index out
            of range, faces that mix corners with and without UVs, or a file without faces.
    """
    path = Path(path)
    if not path.is_file():
        raise FormatError(path, "OBJ file not found")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise FormatError(path, f"not a text file ({exc})") from None
    verts: list[list[float]] = []
    uvs: list[list[float]] = []
    faces: list[tuple[int, int, int]] = []
    faces_uv: list[tuple[int, int, int]] = []
    has_uv: bool | None = None
    for lineno, line in enumerate(text.splitlines(), start=1):
        tokens = line.split()
        if not tokens or tokens[0].startswith("#"):
            continue
        key, args = tokens[0], tokens[1:]
        if key == "v":
            # 'v x y z' optionally followed by w or r g b; only x y z are used.
            if len(args) not in (3, 4, 6, 7):
                raise FormatError(path, f"'v' needs 3 numbers (optionally w or r g b), found {len(args)}", lineno)
            verts.append(_floats(path, lineno, args[:3], 3, 3, "v"))
        elif key == "vt":
            uvs.append(_floats(path, lineno, args, 2, 3, "vt")[:2])
        elif key == "f":
            if len(args) < 3:
                raise FormatError(path, f"face needs at least 3 corners, found {len(args)}", lineno)
            corner_v, corner_t = [], []
            for corner in args:
                parts = corner.split("/")
                corner_v.append(_index(path, lineno, parts[0], len(verts), "vertex"))
                with_uv = len(parts) > 1 and parts[1] != ""
                if has_uv is None:
                    has_uv = with_uv
                elif has_uv != with_uv:
                    raise FormatError(path, "faces mix corners with and without texture coordinates", lineno)
                if with_uv:
                    corner_t.append(_index(path, lineno, parts[1], len(uvs), "texture coordinate"))
            for k in range(1, len(corner_v) - 1):
                faces.append((corner_v[0], corner_v[k], corner_v[k + 1]))
                if has_uv:
                    faces_uv.append((corner_t[0], corner_t[k], corner_t[k + 1]))
    if not faces:
        raise FormatError(path, "no face ('f' record) found")
    return ObjMesh(
        verts=np.asarray(verts, dtype=np.float32).reshape(-1, 3),
        faces=np.asarray(faces, dtype=np.int64).reshape(-1, 3),
        verts_uvs=np.asarray(uvs, dtype=np.float32).reshape(-1, 2) if has_uv else None,
        faces_uvs=np.asarray(faces_uv, dtype=np.int64).reshape(-1, 3) if has_uv else None,
    )


def format_obj(
    verts: np.ndarray, faces: np.ndarray, verts_uvs: np.ndarray | None = None, faces_uvs: np.ndarray | None = None
) -> str:
    """Return OBJ text for a mesh (1-based ``f v/vt`` records when UVs are given).

    Args:
        verts: ``(V, 3)``; faces: ``(F, 3)`` 0-based; verts_uvs: ``(U, 2)``; faces_uvs: ``(F, 3)``.
    """
    verts = np.asarray(verts, dtype=np.float64).reshape(-1, 3)
    faces = np.asarray(faces, dtype=np.int64).reshape(-1, 3) + 1
    lines = [f"v {x:.6f} {y:.6f} {z:.6f}" for x, y, z in verts]
    if verts_uvs is not None and faces_uvs is not None:
        lines += [f"vt {u:.6f} {v:.6f}" for u, v in np.asarray(verts_uvs, dtype=np.float64).reshape(-1, 2)]
        fuv = np.asarray(faces_uvs, dtype=np.int64).reshape(-1, 3) + 1
        lines += [f"f {a}/{d} {b}/{e} {c}/{f}" for (a, b, c), (d, e, f) in zip(faces.tolist(), fuv.tolist())]
    else:
        lines += [f"f {a} {b} {c}" for a, b, c in faces.tolist()]
    return "\n".join(lines) + "\n"


def write_obj(
    path: str | os.PathLike,
    verts: np.ndarray,
    faces: np.ndarray,
    verts_uvs: np.ndarray | None = None,
    faces_uvs: np.ndarray | None = None,
) -> None:
    """Write an OBJ file atomically (see :func:`format_obj`)."""
    write_text_atomic(path, format_obj(verts, faces, verts_uvs, faces_uvs))
