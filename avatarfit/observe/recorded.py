"""HMC views recorded in files: a headset recording, or what ``avatarfit hmc`` wrote.

The folder ``DIR`` holds ``hmc/`` (the layout of :mod:`avatarfit.data.layout`)::

    DIR/hmc/rig.txt                     the headset's cameras (KRT; see avatarfit.synth.hmc_rig)
    DIR/hmc/{seg}/{view}/{frame}.png    one grey image per view: left_eye, right_eye, mouth
    DIR/hmc/{seg}/{frame}_headset.txt   optional 3x4 [R|t] head-local -> headset: where the fit starts

Every image of a recording has the size the rig's intrinsics are for (read from the first
image); ``left_eye`` is the camera watching the subject's left eye. A frame without a
headset file starts from the rig's nominal headset pose. Nothing else is needed: no
tracked mesh, photo or face mask (a capture of the same frames adds them as ground truth).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import torch
import torch.nn.functional as F

from .._io import png_size, read_png
from ..data.capture import FrameRef, read_transform
from ..data.layout import HMC_VIEWS, Layout
from ..errors import FormatError
from ..synth.hmc_rig import HmcRig, read_rig

__all__ = ["RecordedHmc", "prepare_views"]


def _natural(name: str) -> tuple:
    return tuple(int(p) if p.isdigit() else p for p in re.split(r"(\d+)", name))


class RecordedHmc:
    """The recorded HMC views of a folder holding ``hmc/`` (module docstring).

    Args:
        root: the folder holding ``hmc/`` (``avatarfit hmc --out``, training's ``data.hmc_dir``).
        rig: a rig file instead of ``root/hmc/rig.txt`` (KRT, K in pixels of the recorded images).

    Raises:
        FileNotFoundError: no ``hmc/`` folder, no frame in it, or no rig file.
        FormatError: a rig that is not one (naming the file).
    """

    def __init__(self, root: str | os.PathLike, rig: str | os.PathLike | None = None) -> None:
        self.layout = Layout(Path(root))
        hmc = self.layout.hmc_dir
        if not hmc.is_dir():
            raise FileNotFoundError(f"--hmc-dir {root}: no hmc/ folder in it (expected {hmc}/SEG/left_eye/FRAME.png, "
                                    "right_eye, mouth, as avatarfit hmc --out writes)")
        frames = []
        for seg in sorted((p for p in hmc.iterdir() if (p / HMC_VIEWS[0]).is_dir()), key=lambda p: _natural(p.name)):
            stems = sorted((p.stem for p in (seg / HMC_VIEWS[0]).glob("*.png")), key=_natural)
            frames += [FrameRef(seg.name, s) for s in stems]
        if not frames:
            raise FileNotFoundError(f"--hmc-dir {root}: no recorded frame in {hmc} (expected "
                                    f"{hmc}/SEG/{HMC_VIEWS[0]}/FRAME.png)")
        self._frames = frames
        first = frames[0]
        self.image_size = png_size(self.layout.hmc_view(first.segment, HMC_VIEWS[0], first.frame))
        self.rig_path = Path(rig) if rig is not None else self.layout.hmc_rig
        if not self.rig_path.is_file():
            raise FileNotFoundError(f"{'--rig' if rig is not None else '--hmc-dir'}: the rig file {self.rig_path} "
                                    "does not exist (KRT with cameras left_eye, right_eye, mouth; pass --rig FILE)")
        self.rig: HmcRig = read_rig(self.rig_path, self.image_size)

    @property
    def root(self) -> Path:
        return self.layout.root

    def frames(self) -> list[FrameRef]:
        """Recorded frames (those with a ``left_eye`` image), segments and frames in natural order."""
        return list(self._frames)

    def check(self, refs: list[FrameRef]) -> None:
        """Raise :class:`FormatError` naming the first missing or wrongly sized image of
        ``refs`` (and how many), or a headset file that is not a 3x4 pose, before any work."""
        missing = [self.layout.hmc_view(r.segment, v, r.frame) for r in refs for v in HMC_VIEWS
                   if not self.layout.hmc_view(r.segment, v, r.frame).is_file()]
        if missing:
            raise FormatError(missing[0], f"missing: --hmc-dir needs the three views {', '.join(HMC_VIEWS)} of every "
                              f"fitted frame ({len(missing)} images missing over {len(refs)} frames)")
        for r in refs:
            for v in HMC_VIEWS:
                path = self.layout.hmc_view(r.segment, v, r.frame)
                size = png_size(path)
                if size != self.image_size:
                    raise FormatError(path, f"expected a {self.image_size[0]}x{self.image_size[1]} image like "
                                      f"the recording's first (the rig's K is for that size), found "
                                      f"{size[0]}x{size[1]}")
            self.headset(r)

    def views(self, ref: FrameRef) -> torch.Tensor:
        """``(3, 1, h, w)`` grey views in [0, 1], in :data:`~avatarfit.data.layout.HMC_VIEWS` order."""
        return torch.stack([read_png(self.layout.hmc_view(ref.segment, v, ref.frame), channels=1) for v in HMC_VIEWS])

    def headset(self, ref: FrameRef) -> tuple[torch.Tensor, torch.Tensor]:
        """The headset pose the fit starts from, head-local -> headset: ``R (3, 3)``, ``t (3,)``
        (the frame's ``_headset.txt``, else the rig's nominal pose)."""
        path = self.layout.hmc_headset(ref.segment, ref.frame)
        if not path.is_file():
            return self.rig.nominal()
        R, t = read_transform(path)
        return torch.from_numpy(R).float(), torch.from_numpy(t).float()


def prepare_views(views: torch.Tensor, size: tuple[int, int] | None) -> torch.Tensor:
    """Recorded views as a prior encoder trained on ``size`` views sees them: ``(B, 3, 1, h, w)``
    -> ``(B, 3, 1, H, W)`` (area averaging down, bilinear up; unchanged at that size or
    for ``size=None``)."""
    if size is None or tuple(views.shape[-2:]) == tuple(size):
        return views
    B = views.shape[0]
    flat = views.flatten(0, 1)
    down = size[0] < flat.shape[-2]
    out = F.interpolate(flat, size=tuple(size), mode="area") if down else \
        F.interpolate(flat, size=tuple(size), mode="bilinear", align_corners=False)
    return out.clamp(0, 1).view(B, 3, 1, *size)
