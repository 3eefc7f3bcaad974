"""Lazy read access to a capture in the Multiface layout (see :mod:`avatarfit.data.layout`)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from .._io import png_size, read_png
from ..errors import FormatError
from ._text import check_rotation
from .krt import CameraCalib, read_krt
from .layout import AVERAGE, Layout
from .obj import ObjMesh, read_obj
from .stats import NormStats, read_stats
from .surface import SurfacePoints, read_surface_points

__all__ = ["Capture", "FrameRef", "Topology", "read_frame_list", "read_transform"]


@dataclass(frozen=True, order=True)
class FrameRef:
    """One frame of a capture: its segment, its 6-digit frame id, and the line of
    ``frame_list.txt`` that lists it."""

    segment: str
    frame: str
    line: int = 0


@dataclass(frozen=True)
class Topology:
    """Mesh topology shared by every frame of a capture.

    Attributes:
        faces: ``(F, 3)`` int64 vertex indices.
        verts_uvs: ``(U, 2)`` float32 UVs (OBJ convention, v up).
        faces_uvs: ``(F, 3)`` int64 UV indices.
        num_verts: V.
    """

    faces: torch.Tensor
    verts_uvs: torch.Tensor
    faces_uvs: torch.Tensor
    num_verts: int

    @classmethod
    def from_obj(cls, mesh: ObjMesh, path: Path) -> "Topology":
        if mesh.verts_uvs is None or mesh.faces_uvs is None:
            raise FormatError(path, "the mesh has no texture coordinates ('f v/vt' records)")
        return cls(
            faces=torch.from_numpy(mesh.faces),
            verts_uvs=torch.from_numpy(mesh.verts_uvs),
            faces_uvs=torch.from_numpy(mesh.faces_uvs),
            num_verts=int(mesh.verts.shape[0]),
        )


def read_frame_list(path: Path) -> list[FrameRef]:
    """Parse ``frame_list.txt``: one ``SEGMENT FRAME`` pair a line (blank lines skipped)."""
    if not path.is_file():
        raise FormatError(path, "frame list not found")
    frames = []
    seen = set()
    for lineno, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), start=1):
        tokens = line.split()
        if not tokens:
            continue
        if len(tokens) != 2:
            raise FormatError(path, f"expected 'SEGMENT FRAME', found {line.strip()!r}", lineno)
        segment, frame = tokens
        if not frame.isdigit():
            raise FormatError(path, f"expected a numeric frame id, found {frame!r}", lineno)
        if (segment, frame) in seen:
            raise FormatError(path, f"frame {segment} {frame} is listed twice", lineno)
        seen.add((segment, frame))
        frames.append(FrameRef(segment, frame, lineno))
    if not frames:
        raise FormatError(path, "no frame listed")
    return frames


def read_transform(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Read a 3x4 ``[R | t]`` text file; returns ``R (3, 3)`` and ``t (3,)`` float64."""
    if not path.is_file():
        raise FormatError(path, "head pose file not found")
    rows = [line for line in path.read_text(encoding="utf-8", errors="replace").splitlines() if line.strip()]
    if len(rows) != 3:
        raise FormatError(path, f"expected 3 rows of 4 numbers, found {len(rows)} rows")
    values = []
    for lineno, row in enumerate(rows, start=1):
        tokens = row.split()
        if len(tokens) != 4:
            raise FormatError(path, f"expected 4 numbers, found {len(tokens)}", lineno)
        try:
            values.append([float(t) for t in tokens])
        except ValueError:
            raise FormatError(path, f"expected numbers, found {row.strip()!r}", lineno) from None
    Rt = np.asarray(values, dtype=np.float64)
    if not np.isfinite(Rt).all():
        raise FormatError(path, "non-finite value in head pose")
    check_rotation(path, 1, Rt[:, :3], "head pose rotation")
    return Rt[:, :3].copy(), Rt[:, 3].copy()


class Capture:
    """A capture folder in the Multiface layout.

    Opening reads only ``KRT`` and ``frame_list.txt``; meshes, textures, photos and
    statistics are read when asked for. Every reader raises :class:`FormatError` naming
    the file (and line) when something is missing or malformed.

    Example (``CAPTURE``: a capture folder, such as ``avatarfit synth --out CAPTURE`` writes):
        >>> cap = Capture(CAPTURE)
        >>> ref = cap.frames()[0]
        >>> cap.vertices(ref.segment, ref.frame).shape == (cap.topology.num_verts, 3)  # head-local mm
        True
    """

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise FormatError(self.root, "capture folder not found")
        self.layout = Layout(self.root)
        self.cameras: dict[str, CameraCalib] = read_krt(self.layout.krt)
        self._frames = read_frame_list(self.layout.frame_list)
        self._lines = {(f.segment, f.frame): f.line for f in self._frames}
        self._image_sizes: dict[str, tuple[int, int]] = {}

    def __repr__(self) -> str:
        return (
            f"Capture({str(self.root)!r}: {len(self.segments)} segments, {len(self._frames)} frames, "
            f"{len(self.cameras)} cameras)"
        )

    # -- index -------------------------------------------------------------------------
    @property
    def camera_names(self) -> list[str]:
        return list(self.cameras)

    @property
    def segments(self) -> list[str]:
        """Segment names in order of first appearance in the frame list."""
        return list(dict.fromkeys(f.segment for f in self._frames))

    def frames(self, segment: str | None = None) -> list[FrameRef]:
        """Frames in frame-list order, all or of one segment."""
        if segment is None:
            return list(self._frames)
        if segment not in self.segments:
            raise ValueError(f"segment: {segment!r} is not in {self.layout.frame_list} (segments: {self.segments})")
        return [f for f in self._frames if f.segment == segment]

    def has_frame(self, segment: str, frame: str) -> bool:
        """Whether ``frame_list.txt`` lists the frame."""
        return (segment, frame) in self._lines

    def _check_frame(self, segment: str, frame: str) -> None:
        if (segment, frame) not in self._lines:
            raise ValueError(f"frame: {segment} {frame} is not listed in {self.layout.frame_list}")

    def _check_camera(self, camera: str) -> CameraCalib:
        if camera not in self.cameras:
            raise ValueError(f"camera: {camera!r} is not in {self.layout.krt} (cameras: {self.camera_names})")
        return self.cameras[camera]

    def _missing(self, path: Path, segment: str, frame: str) -> FormatError:
        line = self._lines[(segment, frame)]
        return FormatError(path, f"missing, though frame {segment} {frame} is listed in {self.layout.frame_list} line {line}")

    # -- geometry ----------------------------------------------------------------------
    @cached_property
    def topology(self) -> Topology:
        """Faces and UVs, read from the first frame's OBJ that exists."""
        for ref in self._frames:
            path = self.layout.mesh_obj(ref.segment, ref.frame)
            if path.is_file():
                return Topology.from_obj(read_obj(path), path)
        first = self._frames[0]
        raise self._missing(self.layout.mesh_obj(first.segment, first.frame), first.segment, first.frame)

    @cached_property
    def landmarks(self) -> SurfacePoints:
        """The subject's 68 facial landmarks (iBUG order) as points on the tracked mesh,
        from ``landmarks.txt``. Multiface does not ship them: write the file for a real
        capture (face index and barycentric weights per row)."""
        path = self.layout.landmarks
        if not path.is_file():
            raise FormatError(path, "missing: the capture has no landmark file (68 rows 'face b0 b1 b2' on the "
                              "tracked mesh, iBUG order; avatarfit synth writes one, real captures need one made)")
        return read_surface_points(path, count=68, num_faces=int(self.topology.faces.shape[0]))

    def vertices(self, segment: str, frame: str) -> torch.Tensor:
        """Tracked mesh vertices, head-local mm: ``(V, 3)`` float32."""
        self._check_frame(segment, frame)
        path = self.layout.mesh_bin(segment, frame)
        if not path.is_file():
            raise self._missing(path, segment, frame)
        raw = path.read_bytes()
        num_verts = self.topology.num_verts
        if len(raw) != num_verts * 12:
            raise FormatError(
                path, f"expected {num_verts * 12} bytes ({num_verts} vertices x 3 float32), found {len(raw)} bytes"
            )
        return torch.from_numpy(np.frombuffer(raw, dtype="<f4").reshape(num_verts, 3).copy())

    def head_pose(self, segment: str, frame: str) -> tuple[torch.Tensor, torch.Tensor]:
        """Head pose, head-local to world: ``R_f (3, 3)`` and ``t_f (3,)`` float32."""
        self._check_frame(segment, frame)
        path = self.layout.transform(segment, frame)
        if not path.is_file():
            raise self._missing(path, segment, frame)
        R, t = read_transform(path)
        return torch.from_numpy(R).float(), torch.from_numpy(t).float()

    def world_vertices(self, segment: str, frame: str, local: torch.Tensor | None = None) -> torch.Tensor:
        """Vertices in world coordinates, ``R_f v + t_f``: ``(V, 3)``.

        ``local``: the frame's head-local vertices ``(V, 3)`` when already read (or edited).
        """
        R, t = self.head_pose(segment, frame)
        return (self.vertices(segment, frame) if local is None else local) @ R.T + t

    def view_vector(self, segment: str, frame: str, camera: str) -> torch.Tensor:
        """Unit vector to the camera centre in the head frame, ``R_f^T (c - t_f)``: ``(3,)``."""
        cam = self._check_camera(camera)
        R, t = self.head_pose(segment, frame)
        center = torch.from_numpy(cam.center).float()
        v = R.T @ (center - t)
        return v / v.norm().clamp_min(1e-8)

    def frontal_camera(self) -> str:
        """The camera that sees the face most frontally in the first listed frame: the one
        whose direction from the head is closest to the head's forward axis (+z)."""
        first = self._frames[0]
        R, t = self.head_pose(first.segment, first.frame)
        forward = R[:, 2].double().numpy()
        best, best_cos = self.camera_names[0], -2.0
        for name, cam in self.cameras.items():
            d = cam.center - t.double().numpy()
            cos = float(d @ forward) / max(float(np.linalg.norm(d)), 1e-12)
            if cos > best_cos:
                best, best_cos = name, cos
        return best

    # -- images ------------------------------------------------------------------------
    @cached_property
    def stats(self) -> NormStats:
        """Normalisation statistics (read on first use)."""
        return read_stats(self.root, num_verts=self.topology.num_verts)

    @cached_property
    def texture_size(self) -> int:
        """T, from ``tex_mean.png`` (or the first average texture when there are no stats)."""
        if self.layout.tex_mean.is_file():
            path = self.layout.tex_mean
        else:
            ref = self._frames[0]
            path = self.layout.texture(ref.segment, AVERAGE, ref.frame)
            if not path.is_file():
                raise self._missing(path, ref.segment, ref.frame)
        h, w = png_size(path)
        if h != w:
            raise FormatError(path, f"expected a square texture, found {w}x{h}")
        return h

    def texture(self, segment: str, frame: str, camera: str = AVERAGE) -> torch.Tensor:
        """Unwrapped texture ``(3, T, T)`` in [0, 1], row 0 at the top (v = 1).

        ``camera='average'`` (default) gives the average over cameras, the DAM's input.
        """
        self._check_frame(segment, frame)
        if camera != AVERAGE:
            self._check_camera(camera)
        path = self.layout.texture(segment, camera, frame)
        if not path.is_file():
            raise self._missing(path, segment, frame)
        tex = read_png(path)
        size = self.texture_size
        if tex.shape[1:] != (size, size):
            raise FormatError(path, f"expected a {size}x{size} texture (as tex_mean.png), found {tex.shape[2]}x{tex.shape[1]}")
        return tex

    def tracked(self, refs: Sequence[FrameRef]) -> tuple[torch.Tensor, torch.Tensor]:
        """The frames' average unwrapped textures ``(B, 3, T, T)`` and tracked meshes
        ``(B, V, 3)`` head-local mm: what the DAM encoder sees
        (:meth:`~avatarfit.avatar.Avatar.encode`)."""
        textures = torch.stack([self.texture(r.segment, r.frame) for r in refs])
        return textures, torch.stack([self.vertices(r.segment, r.frame) for r in refs])

    def image_size(self, camera: str) -> tuple[int, int]:
        """``(H, W)`` of a camera's photos, read from the header of its first photo."""
        self._check_camera(camera)
        if camera not in self._image_sizes:
            for ref in self._frames:
                path = self.layout.image(ref.segment, camera, ref.frame)
                if path.is_file():
                    self._image_sizes[camera] = png_size(path)
                    break
            else:
                raise FormatError(self.root / "images", f"no photo of camera {camera!r} found")
        return self._image_sizes[camera]

    def photo(self, segment: str, frame: str, camera: str) -> torch.Tensor:
        """Photo ``(3, H, W)`` in [0, 1]."""
        self._check_frame(segment, frame)
        self._check_camera(camera)
        path = self.layout.image(segment, camera, frame)
        if not path.is_file():
            raise self._missing(path, segment, frame)
        image = read_png(path)
        expected = self.image_size(camera)
        if tuple(image.shape[1:]) != expected:
            raise FormatError(path, f"expected {expected[1]}x{expected[0]} like camera {camera}'s other photos, "
                              f"found {image.shape[2]}x{image.shape[1]}")
        return image

    def camera_tensors(self, camera: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``K (3, 3)``, ``R (3, 3)``, ``t (3,)`` of a camera as float32 tensors."""
        cam = self._check_camera(camera)
        return (torch.from_numpy(cam.K).float(), torch.from_numpy(cam.R).float(), torch.from_numpy(cam.t).float())

    def validate(self, photos: bool = True, textures: bool = True) -> None:
        """Read every listed file once; raise the first :class:`FormatError` found."""
        _ = self.topology
        for ref in self._frames:
            self.vertices(ref.segment, ref.frame)
            self.head_pose(ref.segment, ref.frame)
            if textures:
                self.texture(ref.segment, ref.frame)
            if photos:
                for cam in self.cameras:
                    self.photo(ref.segment, ref.frame, cam)
        if self.layout.tex_mean.is_file():
            _ = self.stats
