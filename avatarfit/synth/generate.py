"""Write a synthetic multi-view capture in the Multiface layout."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import yaml

from .._io import write_bytes_atomic, write_png, write_text_atomic
from ..config import to_dict
from ..data.krt import write_krt
from ..data.layout import AVERAGE, Layout
from ..data.obj import format_obj
from ..data.stats import compute_stats, write_stats
from ..data.surface import SurfacePoints, write_surface_points
from ..render.renderer import render_textured
from ..render.unwrap import fill_gutter, rasterize_uv, unwrap_texture
from .dome import make_dome
from .motion import dominant_controls, sample_performance
from .subject import Subject

__all__ = ["SynthConfig", "ensure_capture", "generate_capture", "load_subject", "prepare_output"]

SUBJECTS = ("procedural", "james")


@dataclass(frozen=True)
class SynthConfig:
    """Settings of ``avatarfit synth``.

    Attributes:
        subject: ``"procedural"`` (built in code) or ``"james"`` (real scan, fetched once).
        segments: number of segments (performances).
        frames: frames per segment.
        cameras: number of dome cameras (the first is frontal).
        image_size: ``(H, W)`` of the photos.
        texture_size: T of the unwrapped textures.
        seed: seed of everything random (identity of the procedural head, performances).
        camera_distance: mm from the head.
        field_mm: height of the field of view at the head (mm).
        background: grey level of empty pixels in the photos.
        backend: rasteriser (``auto``, ``bbox`` or ``pytorch3d``).
    """

    subject: str = "procedural"
    segments: int = 2
    frames: int = 12
    cameras: int = 40
    image_size: tuple[int, int] = (384, 256)
    texture_size: int = 512
    seed: int = 0
    camera_distance: float = 1000.0
    field_mm: float = 300.0
    background: float = 0.15
    backend: str = "auto"

    def __post_init__(self) -> None:
        if self.subject not in SUBJECTS:
            raise ValueError(f"subject: expected one of {SUBJECTS}, got {self.subject!r}")
        for name in ("segments", "frames", "cameras"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: expected at least 1, got {getattr(self, name)}")
        if len(self.image_size) != 2 or min(self.image_size) < 8:
            raise ValueError(f"image_size: expected (H, W) of at least 8x8, got {self.image_size}")
        if self.texture_size < 16:
            raise ValueError(f"texture_size: expected at least 16, got {self.texture_size}")


def _texels_per_pixel(subject: Subject, pixels_per_mm: float) -> float:
    """How many texels of the subject's texture fall on one photo pixel (median over faces)."""
    tri = subject.verts[subject.faces]
    uv = subject.verts_uvs[subject.faces_uvs]
    mm = (tri[:, 1] - tri[:, 0]).norm(dim=-1)
    uv_len = (uv[:, 1] - uv[:, 0]).norm(dim=-1)
    ok = (mm > 1e-6) & (uv_len > 1e-9)
    mm_per_uv = float((mm[ok] / uv_len[ok]).median())
    return subject.texture.shape[-1] / (mm_per_uv * pixels_per_mm)


def camera_prefilter(textures: torch.Tensor, texels_per_pixel: float) -> torch.Tensor:
    """Low-pass ``(B, 3, T, T)`` textures to the photo's resolution, as a camera's pixels
    integrate light: without it the photos alias the texture's fine detail."""
    if texels_per_pixel <= 1.0:
        return textures
    T = textures.shape[-1]
    small = max(8, int(round(T / texels_per_pixel)))
    low = torch.nn.functional.interpolate(textures, size=(small, small), mode="area")
    return torch.nn.functional.interpolate(low, size=(T, T), mode="bilinear", align_corners=False)


def load_subject(name: str, seed: int = 0, log=print) -> Subject:
    """The subject ``name`` (``procedural`` with identity ``seed``, or ``james``)."""
    if name == "procedural":
        from .procedural import make_procedural_subject

        return make_procedural_subject(seed)
    if name == "james":
        from .james import load_james

        return load_james(log=log)
    raise ValueError(f"subject: expected one of {SUBJECTS}, got {name!r}")


def prepare_output(out: Path, overwrite: bool) -> None:
    """Refuse a non-empty ``out`` unless ``overwrite``; then remove only what the
    Multiface layout defines (other files in the folder are kept)."""
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"--out: {out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()):
        if not overwrite:
            raise FileExistsError(f"--out: {out} is not empty; pass --overwrite to replace the capture in it")
        for path in Layout.of(out).generated() + [out / "synth.yaml"]:
            if path.is_dir():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()
    out.mkdir(parents=True, exist_ok=True)


def generate_capture(
    out: str | os.PathLike,
    config: SynthConfig = SynthConfig(),
    *,
    subject: Subject | None = None,
    overwrite: bool = False,
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> Path:
    """Render a synthetic capture into ``out`` in the Multiface layout.

    Writes photos, tracked meshes (``.bin``, ``.obj``, head pose), per-camera unwrapped
    textures (0 = unseen), average textures, statistics, ``landmarks.txt``, ``KRT`` and, last,
    ``frame_list.txt`` (so an interrupted run leaves no loadable half capture), plus
    ``synth.yaml`` with the resolved settings. Deterministic for a seed.

    Returns:
        The capture folder.
    """
    from tqdm.auto import tqdm

    out = Path(out)
    prepare_output(out, overwrite)
    layout = Layout(out)
    if subject is None:
        subject = load_subject(config.subject, config.seed, log=log)
    gen = torch.Generator().manual_seed(config.seed)
    H, W = config.image_size
    cams = make_dome(config.cameras, (H, W), config.camera_distance, config.field_mm)
    write_krt(layout.krt, cams)
    K = torch.from_numpy(np.stack([c.K for c in cams])).float()
    R = torch.from_numpy(np.stack([c.R for c in cams])).float()
    t = torch.from_numpy(np.stack([c.t for c in cams])).float()
    uvr = rasterize_uv(subject.verts_uvs, subject.faces_uvs, config.texture_size)
    gutter = ~uvr.valid.view(1, config.texture_size, config.texture_size)
    faces = subject.faces
    verts_uvs_np = subject.verts_uvs.numpy()
    faces_uvs_np = subject.faces_uvs.numpy()

    prefilter = _texels_per_pixel(subject, H / config.field_mm)
    dominant = dominant_controls(config.segments, len(subject.rig.names), gen)
    performances = [sample_performance(i + 1, config.frames, subject.rig.names, gen, dominant=d)
                    for i, d in enumerate(dominant)]
    frame_lines = []
    averages, local_verts = [], []
    total = config.segments * config.frames
    bar = tqdm(total=total, desc="synth", unit="frame", disable=not progress)
    frame_id = 0
    for perf in performances:
        verts_local, textures = subject.pose(perf.controls)
        textures = camera_prefilter(textures, prefilter)
        for i in range(config.frames):
            frame = f"{frame_id:06d}"
            frame_id += 1
            v_local = verts_local[i]
            v_world = v_local @ perf.head_R[i].T + perf.head_t[i]
            tex = textures[i]
            photos, depths = [], []
            for start in range(0, len(cams), 8):
                sl = slice(start, start + 8)
                n = K[sl].shape[0]
                r = render_textured(
                    v_world.expand(n, -1, -1), faces, subject.verts_uvs, subject.faces_uvs,
                    tex.expand(n, -1, -1, -1), K[sl], R[sl], t[sl], (H, W),
                    backend=config.backend, background=config.background, antialias=False,
                )
                photos.append(r.image)
                depths.append(r.depth)
            photos_t = torch.cat(photos)
            depth_t = torch.cat(depths)
            # Quantise first so textures are unwrapped from the photos as written.
            photos_t = torch.round(photos_t.clamp(0, 1) * 255) / 255
            unwrapped, seen = unwrap_texture(uvr, v_world, faces, photos_t, depth_t, K, R, t)
            count = seen.float().sum(0)
            average = unwrapped.sum(0) / count.clamp_min(1)
            # Pad the seen region into the UV gutter so bilinear sampling shows no seams.
            # Texels inside charts but seen by no camera stay 0.
            average = torch.where(gutter, fill_gutter(average[None], count > 0)[0], average)
            for c, cam in enumerate(cams):
                write_png(layout.image(perf.name, cam.name, frame), photos_t[c])
                write_png(layout.texture(perf.name, cam.name, frame), unwrapped[c])
            write_png(layout.texture(perf.name, AVERAGE, frame), average)
            write_bytes_atomic(layout.mesh_bin(perf.name, frame), v_local.numpy().astype("<f4").tobytes())
            Rt = torch.cat([perf.head_R[i], perf.head_t[i].unsqueeze(-1)], 1).double().numpy()
            write_text_atomic(layout.transform(perf.name, frame), "\n".join(" ".join(f"{x:.9g}" for x in row) for row in Rt) + "\n")
            write_text_atomic(layout.mesh_obj(perf.name, frame), format_obj(v_local.numpy(), faces.numpy(), verts_uvs_np, faces_uvs_np))
            averages.append(torch.round(average.clamp(0, 1) * 255) / 255)
            local_verts.append(v_local)
            frame_lines.append(f"{perf.name} {frame}")
            bar.update(1)
    bar.close()
    write_stats(out, compute_stats(averages, local_verts))
    write_surface_points(layout.landmarks, SurfacePoints(subject.landmark_faces, subject.landmark_bary))
    write_text_atomic(out / "synth.yaml", yaml.safe_dump({"synth": to_dict(config), "subject": subject.name}, sort_keys=False))
    write_text_atomic(layout.frame_list, "\n".join(frame_lines) + "\n")
    return out


def ensure_capture(out: str | os.PathLike, config: SynthConfig, *, progress: bool = True,
                   log: Callable[[str], None] = print) -> bool:
    """Generate the capture ``config`` describes into ``out`` unless ``out`` already holds
    it (a finished capture whose ``synth.yaml`` has the same settings); returns whether it
    was reused. A folder with other settings is generated afresh."""
    out = Path(out)
    saved = out / "synth.yaml"
    if (out / "frame_list.txt").is_file() and saved.is_file():
        written = (yaml.safe_load(saved.read_text(encoding="utf-8")) or {}).get("synth")
        if written == yaml.safe_load(yaml.safe_dump(to_dict(config))):
            return True
    generate_capture(out, config, overwrite=True, progress=progress, log=log)
    return False
