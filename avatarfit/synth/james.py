"""The ``james`` subject: a real textured face scan (BSD licence) that ships inside the
menpo3d source distribution on PyPI.

It is fetched on first use with ``pip download`` (so the package index pip is configured
with is used) into a user cache, and read from the cache afterwards.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import numpy as np
import torch

from .._io import read_png
from ..data.obj import read_obj
from ..errors import AvatarfitError, FormatError
from ..render.mesh_ops import closest_surface_points
from .rig import build_rig
from .subject import Subject

__all__ = ["cache_dir", "fetch_james", "load_james", "read_ljson_landmarks", "MENPO3D_VERSION"]

MENPO3D_VERSION = "0.8.6"
_FILES = ("james.obj", "james.jpg", "james.ljson")
# menpo3d's landmark groups, in file order, and where each goes in the iBUG layout.
_GROUPS = ("chin", "leye", "reye", "leyebrow", "nose", "reyebrow", "mouth")


def cache_dir() -> Path:
    """``$AVATARFIT_CACHE``, else ``$XDG_CACHE_HOME/avatarfit``, else ``~/.cache/avatarfit``."""
    if os.environ.get("AVATARFIT_CACHE"):
        return Path(os.environ["AVATARFIT_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "avatarfit"


def fetch_james(cache: Path | None = None, log=print) -> Path:
    """Return the folder holding ``james.obj``, ``james.jpg`` and ``james.ljson``,
    downloading the menpo3d sdist with pip the first time."""
    target = (cache or cache_dir()) / "subjects" / "james"
    if all((target / f).is_file() for f in _FILES):
        return target
    log(f"avatarfit: fetching the 'james' face scan: menpo3d=={MENPO3D_VERSION} source distribution via pip ...")
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [
            sys.executable, "-m", "pip", "download", "--no-deps", "--no-build-isolation",
            "--no-binary", ":all:", f"menpo3d=={MENPO3D_VERSION}", "-d", tmp, "-q",
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        archives = list(Path(tmp).glob("menpo3d-*.tar.gz"))
        if proc.returncode != 0 or not archives:
            raise AvatarfitError(
                f"could not download menpo3d=={MENPO3D_VERSION} with pip (exit {proc.returncode}):\n"
                f"{proc.stderr.strip()[-2000:]}\n"
                "Use --subject procedural to work offline."
            )
        staging = Path(tempfile.mkdtemp(prefix=".james.", dir=_ensure(target.parent)))
        with tarfile.open(archives[0]) as tar:
            for member in tar.getmembers():
                name = Path(member.name).name
                if name in _FILES and member.name.endswith(f"menpo3d/data/{name}"):
                    data = tar.extractfile(member)
                    (staging / name).write_bytes(data.read())
        missing = [f for f in _FILES if not (staging / f).is_file()]
        if missing:
            raise AvatarfitError(f"{archives[0].name} does not contain {missing}")
        if target.exists():
            for f in target.iterdir():
                f.unlink()
            target.rmdir()
        os.replace(staging, target)
    log(f"avatarfit: saved {', '.join(_FILES)} to {target}")
    return target


def _ensure(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def read_ljson_landmarks(path: Path) -> np.ndarray:
    try:
        data = json.loads(path.read_text())
        group = data["groups"]["LJSON"]
        points = np.asarray(group["landmarks"]["points"], dtype=np.float64)
        labels = {lab["label"]: lab["mask"] for lab in group["labels"]}
    except (KeyError, ValueError, TypeError) as exc:
        raise FormatError(path, f"not a menpo LJSON landmark file ({exc})") from None
    if points.shape != (68, 3) or set(labels) != set(_GROUPS):
        raise FormatError(path, f"expected 68 3D points in groups {_GROUPS}, found {points.shape} and {sorted(labels)}")
    # To iBUG order: jaw, brow (subject's right, -x), brow (left), nose, eye (right), eye (left), mouth.
    def side(a, b):
        return (labels[a], labels[b]) if points[labels[a], 0].mean() < points[labels[b], 0].mean() else (labels[b], labels[a])

    brow_r, brow_l = side("reyebrow", "leyebrow")
    eye_r, eye_l = side("reye", "leye")
    order = labels["chin"] + brow_r + brow_l + labels["nose"] + eye_r + eye_l + labels["mouth"]
    return points[order]


def load_james(texture_size: int = 512, cache: Path | None = None, log=print) -> Subject:
    """Load the james scan (fetching it on first use) and build its rig.

    The scan is re-centred on its landmarks; its texture is resampled to a square
    ``texture_size`` (UVs are normalised, so the mapping is unchanged).
    """
    folder = fetch_james(cache, log=log)
    mesh = read_obj(folder / "james.obj")
    if mesh.verts_uvs is None:
        raise FormatError(folder / "james.obj", "the scan has no texture coordinates")
    landmarks = read_ljson_landmarks(folder / "james.ljson")
    center = landmarks.mean(0)
    verts = torch.from_numpy(mesh.verts - center).float()
    lm = torch.from_numpy(landmarks - center).float()
    tex = read_png(folder / "james.jpg")
    tex = torch.nn.functional.interpolate(tex[None], size=(texture_size, texture_size), mode="area")[0]
    faces = torch.from_numpy(mesh.faces)
    faces_uvs = torch.from_numpy(mesh.faces_uvs)
    verts_uvs = torch.from_numpy(mesh.verts_uvs)
    lm_faces, lm_bary = closest_surface_points(verts, faces, lm)
    lm_rest = (verts[faces[lm_faces]] * lm_bary.unsqueeze(-1)).sum(1)
    rig = build_rig(verts, faces, verts_uvs, faces_uvs, tex, lm_rest)
    return Subject("james", verts, faces, verts_uvs, faces_uvs, tex, lm_faces, lm_bary, rig)
