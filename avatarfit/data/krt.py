"""The Multiface ``KRT`` camera file.

Per camera, 9 lines: the camera id; 3 lines of the intrinsic matrix K (pixels); one line
of 5 distortion coefficients (read, kept, unused by the renderer); 3 lines of the 3x4
world-to-camera extrinsics ``[R | t]``; a blank line. Cameras follow OpenCV: x right,
y down, z forward.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .._io import write_text_atomic
from ..errors import FormatError
from ._text import check_rotation, parse_floats

__all__ = ["CameraCalib", "read_krt", "write_krt", "format_krt"]


@dataclass(frozen=True)
class CameraCalib:
    """One calibrated camera.

    Attributes:
        name: camera id as written in the KRT file.
        K: ``(3, 3)`` float64 intrinsics in pixels.
        R: ``(3, 3)`` float64 world-to-camera rotation.
        t: ``(3,)`` float64 world-to-camera translation (units of the world, mm).
        dist: ``(5,)`` distortion coefficients (unused by the renderer).
    """

    name: str
    K: np.ndarray
    R: np.ndarray
    t: np.ndarray
    dist: np.ndarray = field(default_factory=lambda: np.zeros(5))

    @property
    def center(self) -> np.ndarray:
        """Camera centre in world coordinates, ``-R^T t``, shape ``(3,)``."""
        return -self.R.T @ self.t


def _numbers(path: Path, lineno: int, text: str, count: int, what: str) -> list[float]:
    tokens = text.split()
    if len(tokens) != count:
        raise FormatError(path, f"expected {count} numbers ({what}), found {len(tokens)}: {text.strip()!r}", lineno)
    return parse_floats(path, lineno, tokens, what)


def read_krt(path: str | os.PathLike) -> dict[str, CameraCalib]:
    """Read a KRT file.

    Returns:
        Cameras by id, in file order.

    Raises:
        FormatError: naming the file and line of a missing line, a non-numeric or
            non-finite value, a rotation that is not orthonormal (see
            :func:`check_rotation`), a repeated camera id, or an empty file.
    """
    path = Path(path)
    if not path.is_file():
        raise FormatError(path, "KRT file not found")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise FormatError(path, f"not a text file ({exc})") from None
    cameras: dict[str, CameraCalib] = {}
    i = 0
    n = len(lines)
    while i < n:
        if not lines[i].strip():
            i += 1
            continue
        header_line = i + 1
        tokens = lines[i].split()
        if len(tokens) != 1:
            raise FormatError(path, f"expected a camera id (one token), found {lines[i].strip()!r}", header_line)
        name = tokens[0]
        if name in cameras:
            raise FormatError(path, f"camera {name!r} appears twice", header_line)
        block = []
        for k in range(1, 8):
            if i + k >= n or not lines[i + k].strip():
                raise FormatError(
                    path,
                    f"camera {name!r}: block ends after {k - 1} of 7 lines "
                    "(expected 3 lines of K, 1 of distortion, 3 of [R|t])",
                    i + k + 1 if i + k < n else n + 1,
                )
            block.append(lines[i + k])
        K = [_numbers(path, i + 2 + r, block[r], 3, f"row {r + 1} of K") for r in range(3)]
        dist = _numbers(path, i + 5, block[3], 5, "distortion coefficients")
        Rt = [_numbers(path, i + 6 + r, block[4 + r], 4, f"row {r + 1} of [R|t]") for r in range(3)]
        Rt_arr = np.asarray(Rt, dtype=np.float64)
        check_rotation(path, i + 6, Rt_arr[:, :3], f"camera {name!r} [R|t]")
        cameras[name] = CameraCalib(
            name=name,
            K=np.asarray(K, dtype=np.float64),
            R=Rt_arr[:, :3].copy(),
            t=Rt_arr[:, 3].copy(),
            dist=np.asarray(dist, dtype=np.float64),
        )
        i += 8
    if not cameras:
        raise FormatError(path, "no camera found")
    return cameras


def format_krt(cameras: list[CameraCalib] | dict[str, CameraCalib]) -> str:
    """Return the KRT text for ``cameras`` (full float precision)."""
    if isinstance(cameras, dict):
        cameras = list(cameras.values())
    out = []
    for cam in cameras:
        out.append(cam.name)
        out.extend(" ".join(repr(float(v)) for v in row) for row in np.asarray(cam.K))
        out.append(" ".join(repr(float(v)) for v in np.asarray(cam.dist).reshape(5)))
        Rt = np.concatenate([np.asarray(cam.R), np.asarray(cam.t).reshape(3, 1)], axis=1)
        out.extend(" ".join(repr(float(v)) for v in row) for row in Rt)
        out.append("")
    return "\n".join(out) + "\n"


def write_krt(path: str | os.PathLike, cameras: list[CameraCalib] | dict[str, CameraCalib]) -> None:
    """Write cameras to a KRT file atomically."""
    write_text_atomic(path, format_krt(cameras))
