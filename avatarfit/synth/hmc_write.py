"""Write synthetic HMC views, headset poses, cameras and keypoints to disk (``avatarfit hmc``).

The same samples as :class:`~avatarfit.synth.hmc.SyntheticHmc`; files follow
:mod:`avatarfit.data.layout`. Resumable: a frame whose files all exist is skipped, and a
folder generated with other settings is refused rather than mixed.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import torch
import yaml

from .._io import write_png, write_text_atomic
from ..config import to_dict
from ..data.capture import Capture, FrameRef
from ..data.keypoints import write_keypoints
from ..data.krt import CameraCalib, format_krt
from ..data.layout import HMC_VIEWS, Layout
from ..data.surface import format_surface_points
from .hmc import HmcConfig, HmcSample, SyntheticHmc, check_frame_files
from .hmc_rig import HmcRig, format_rig
from .keypoints import NUM_LANDMARKS, NUM_SURFACE

__all__ = ["HmcRun", "write_hmc", "frame_paths", "format_pose", "sample_cameras"]


@dataclass(frozen=True)
class HmcRun:
    """What :func:`write_hmc` did: frames written and skipped, seconds spent writing,
    the keypoint camera, and the preview path (or ``None``)."""

    written: int
    skipped: int
    seconds: float
    keypoint_camera: str
    preview: Path | None

    @property
    def frames_per_second(self) -> float:
        return self.written / self.seconds if self.seconds > 0 else float("nan")


def frame_paths(layout: Layout, segment: str, frame: str) -> list[Path]:
    """Every file the tool writes for one frame."""
    return [layout.hmc_view(segment, v, frame) for v in HMC_VIEWS] + [
        layout.hmc_cameras(segment, frame),
        layout.keypoints(segment, frame),
        layout.hmc_headset(segment, frame),
    ]


def format_pose(R: torch.Tensor, t: torch.Tensor) -> str:
    """3x4 ``[R|t]`` as three text lines (the Multiface ``_transform.txt`` format)."""
    Rt = torch.cat([R.double(), t.double().view(3, 1)], 1)
    return "\n".join(" ".join(repr(float(x)) for x in row) for row in Rt) + "\n"


def sample_cameras(sample: HmcSample) -> list[CameraCalib]:
    """The sample's three cameras (head-local -> camera) as KRT records."""
    return [
        CameraCalib(name=v, K=sample.K[i].double().numpy(), R=sample.R[i].double().numpy(),
                    t=sample.t[i].double().numpy())
        for i, v in enumerate(HMC_VIEWS)
    ]


def _settings_text(config: HmcConfig, keypoint_camera: str, capture: Capture) -> str:
    return yaml.safe_dump({"hmc": to_dict(config), "keypoint_camera": keypoint_camera,
                           "capture": str(capture.root.resolve())}, sort_keys=False)


def _header_files(hmc: SyntheticHmc, layout: Layout) -> dict[Path, str]:
    """Files shared by all frames and their text."""
    info = {"camera": hmc.keypoint_camera, "image_size": list(hmc.keypoint_size), "landmarks": NUM_LANDMARKS,
            "surface_points": NUM_SURFACE, "rows": "x y visible, pixels of the camera (centres at i + 0.5)"}
    return {
        layout.hmc_rig: format_rig(hmc.rig),
        layout.keypoint_points: format_surface_points(hmc.keypoint_points),
        layout.keypoint_info: yaml.safe_dump(info, sort_keys=False),
        layout.hmc_settings: _settings_text(hmc.config, hmc.keypoint_camera, hmc.capture),
    }


def _check_resumable(headers: dict[Path, str], layout: Layout) -> None:
    """Refuse to add frames to a folder written with other settings."""
    for path, text in headers.items():
        if not path.is_file():
            continue
        old = path.read_text(encoding="utf-8")
        if path == layout.hmc_settings:
            old_d, new_d = yaml.safe_load(old) or {}, yaml.safe_load(text)
            old_d.pop("capture", None), new_d.pop("capture", None)
            same = old_d == new_d
        else:
            same = old == text
        if not same:
            raise FileExistsError(
                f"--out: {path} was written with other settings (rig, keypoints, seed or augmentation differ); "
                f"remove {layout.hmc_dir} and {layout.keypoints_dir}, or pass --overwrite, or choose another --out")


def write_sample(layout: Layout, sample: HmcSample) -> None:
    """Write one sample's files (each atomically; the headset pose last)."""
    seg, frame = sample.segment, sample.frame
    for i, view in enumerate(HMC_VIEWS):
        write_png(layout.hmc_view(seg, view, frame), sample.views[i])
    write_text_atomic(layout.hmc_cameras(seg, frame), format_krt(sample_cameras(sample)))
    write_keypoints(layout.keypoints(seg, frame), sample.keypoints, sample.visible)
    write_text_atomic(layout.hmc_headset(seg, frame), format_pose(sample.headset_R, sample.headset_t))


def write_hmc(
    capture: Capture | str | os.PathLike,
    out: str | os.PathLike | None = None,
    config: HmcConfig = HmcConfig(),
    *,
    rig: HmcRig | None = None,
    frames: Sequence[FrameRef] | None = None,
    keypoint_camera: str | None = None,
    overwrite: bool = False,
    preview: bool = False,
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> HmcRun:
    """Generate synthetic HMC data for ``frames`` of ``capture`` into ``out``.

    Everything is checked before the first write (missing meshes or textures, the rig,
    the keypoint camera, a folder written with other settings). Frames whose files all
    exist are skipped, so an interrupted run continues where it stopped.

    Args:
        capture: capture (or folder) in the Multiface layout, with ``landmarks.txt``.
        out: folder receiving ``hmc/`` and ``keypoints/`` (default: the capture folder).
        config: generator settings.
        rig: HMC rig (default: fitted to the capture's mean face).
        frames: frames to generate (default: all).
        keypoint_camera: capture camera of the keypoints (default: the most frontal).
        overwrite: remove earlier ``hmc/`` and ``keypoints/`` in ``out`` first.
        preview: write ``hmc/preview.png``, a contact sheet of a few frames.
        progress: show a progress bar (frames/s).
    """
    from tqdm.auto import tqdm

    cap = capture if isinstance(capture, Capture) else Capture(capture)
    frames = list(frames) if frames is not None else cap.frames()
    check_frame_files(cap, frames)
    layout = Layout(Path(out) if out is not None else cap.root)
    if layout.root.exists() and not layout.root.is_dir():
        raise FileExistsError(f"--out: {layout.root} exists and is not a folder")
    if keypoint_camera is None and layout.keypoint_info.is_file() and not overwrite:
        keypoint_camera = (yaml.safe_load(layout.keypoint_info.read_text(encoding="utf-8")) or {}).get("camera")
    hmc = SyntheticHmc(cap, config, rig=rig, frames=frames, keypoint_camera=keypoint_camera)
    headers = _header_files(hmc, layout)
    if overwrite:
        import shutil

        for d in (layout.hmc_dir, layout.keypoints_dir):
            if d.is_dir():
                shutil.rmtree(d)
    else:
        _check_resumable(headers, layout)
    for path, text in headers.items():
        write_text_atomic(path, text)

    todo = [f for f in frames if not all(p.is_file() for p in frame_paths(layout, f.segment, f.frame))]
    skipped = len(frames) - len(todo)
    if skipped:
        log(f"skipping {skipped} of {len(frames)} frames already written in {layout.hmc_dir}")
    bar = tqdm(total=len(todo), desc="hmc", unit="frame", disable=not progress)
    start = time.perf_counter()
    for ref in todo:
        write_sample(layout, hmc.sample(ref.segment, ref.frame))
        bar.update(1)
    seconds = time.perf_counter() - start
    bar.close()
    sheet = None
    if preview:
        from .hmc_preview import write_preview

        sheet = write_preview(cap, layout, frames, hmc.keypoint_camera)
    return HmcRun(len(todo), skipped, seconds, hmc.keypoint_camera, sheet)
