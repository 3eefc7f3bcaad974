"""What a prior encoder sees of a frame, made in one place for training and fitting.

A conditional prior is trained on observations made one way (the synthetic-HMC tool's
views at some size, augmented or clean, under some rig and seed; or the files
``avatarfit hmc`` wrote; or 2D keypoints) and must be observed the same way when it is
fitted. :class:`Observer` makes them, and its :meth:`Observer.record` goes into the avatar
file (``info["observation"]``) so that fitting rebuilds the same observer
(:meth:`Observer.from_record`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from .._io import read_png
from ..config import from_dict, to_dict
from ..data.capture import Capture, FrameRef
from ..data.keypoints import normalise_keypoints, read_keypoints
from ..data.layout import HMC_VIEWS, Layout
from ..errors import FormatError
from .hmc import HmcConfig, SyntheticHmc

__all__ = ["Observer"]

SOURCES = ("memory", "files")


class Observer:
    """Observations of a capture's frames for a prior conditioned on ``condition``.

    Args:
        capture: the capture.
        condition: ``hmc`` (three views ``(3, 1, h, w)``) or ``kpt`` (274 normalised
            keypoints ``(274, 2)``, hidden ones at 0).
        source: ``memory`` (the HMC tool in memory, with ``hmc``) or ``files`` (PNG views and
            keypoint files in ``hmc_dir``, default the capture folder).
        hmc: the tool's settings for ``memory``.
        hmc_dir: folder holding ``hmc/`` and ``keypoints/`` for ``files``.

    Raises:
        ValueError: an unknown condition or source.
    """

    def __init__(self, capture: Capture, condition: str, source: str = "memory", hmc: HmcConfig | None = None,
                 hmc_dir: str | None = None) -> None:
        if condition not in ("hmc", "kpt"):
            raise ValueError(f"condition: expected 'hmc' or 'kpt', got {condition!r}")
        if source not in SOURCES:
            raise ValueError(f"observation source: expected one of {SOURCES}, got {source!r}")
        self.capture = capture
        self.condition = condition
        self.source = source
        self.hmc_config = hmc if hmc is not None else HmcConfig()
        self.hmc_dir = hmc_dir
        self._hmc: SyntheticHmc | None = None
        self._kpt_size: tuple[int, int] | None = None

    @property
    def hmc(self) -> SyntheticHmc:
        """The in-memory HMC tool (built on first use)."""
        if self._hmc is None:
            self._hmc = SyntheticHmc(self.capture, self.hmc_config)
        return self._hmc

    def record(self) -> dict[str, Any]:
        """How observations are made, as plain data (for the avatar file)."""
        return {"condition": self.condition, "source": self.source,
                "hmc": to_dict(self.hmc_config) if self.source == "memory" else None, "hmc_dir": self.hmc_dir}

    @classmethod
    def from_record(cls, capture: Capture, record: dict[str, Any], where: str = "observation") -> "Observer":
        """The observer a :meth:`record` describes.

        Raises:
            ValueError: a record with missing or wrong fields (naming ``where``).
        """
        if not isinstance(record, dict) or record.get("source") not in SOURCES or "condition" not in record:
            raise ValueError(f"{where}: expected a record with condition and source (memory or files), got {record!r}")
        hmc = record.get("hmc")
        config = from_dict(HmcConfig, hmc, f"{where}.hmc") if isinstance(hmc, dict) else None
        return cls(capture, str(record["condition"]), str(record["source"]), config, record.get("hmc_dir"))

    def _files_layout(self) -> Layout:
        """Where ``files`` observations are: ``hmc_dir``, else the capture folder."""
        return Layout(Path(self.hmc_dir) if self.hmc_dir else self.capture.root)

    def check(self, refs: list[FrameRef]) -> None:
        """Raise :class:`FormatError` naming the first observation file of ``refs`` that is
        missing (and how many are), before any work; nothing to check in memory."""
        if self.source == "memory":
            return
        layout = self._files_layout()
        missing = []
        for ref in refs:
            paths = ([layout.hmc_view(ref.segment, v, ref.frame) for v in HMC_VIEWS] if self.condition == "hmc"
                     else [layout.keypoints(ref.segment, ref.frame)])
            missing += [p for p in paths if not p.is_file()]
        if missing:
            what = "HMC views" if self.condition == "hmc" else "keypoint files"
            raise FormatError(missing[0], f"missing: observations from files (hmc_source: files) need the {what} "
                              f"`avatarfit hmc --capture {self.capture.root} --out {layout.root}` writes for every "
                              f"frame ({len(missing)} files missing over {len(refs)} frames)")

    def observe(self, ref: FrameRef, draw: int = 0) -> torch.Tensor:
        """The observation of one frame: ``(3, 1, h, w)`` views or ``(274, 2)`` keypoints.

        ``draw`` k > 0: the frame's k-th independent draw of headset pose and augmentation
        (HMC views in memory only; keypoints do not depend on it; fitting observes draw 0).
        """
        if draw and self.source != "memory":
            raise ValueError(f"draw {draw}: observations read from files have one draw per frame")
        if self.source == "memory":
            if self.condition == "hmc":
                return self.hmc.sample(ref.segment, ref.frame, draw).views
            xy, vis = self.hmc.keypoints(ref.segment, ref.frame)
            return normalise_keypoints(xy, vis, self.hmc.keypoint_size)
        layout = self._files_layout()
        if self.condition == "hmc":
            return torch.stack([read_png(layout.hmc_view(ref.segment, v, ref.frame), channels=1) for v in HMC_VIEWS])
        xy, vis = read_keypoints(layout.keypoints(ref.segment, ref.frame), count=274)
        return normalise_keypoints(xy, vis, self._keypoint_size(layout))

    def _keypoint_size(self, layout: Layout) -> tuple[int, int]:
        """Image size of the camera recorded in ``keypoints/keypoints.yaml`` (read once)."""
        if self._kpt_size is None:
            import yaml

            path = layout.keypoint_info
            try:
                info = yaml.safe_load(path.read_text(encoding="utf-8")) if path.is_file() else {}
            except yaml.YAMLError as exc:
                raise FormatError(path, f"not valid YAML ({exc})") from None
            self._kpt_size = self.capture.image_size(str((info or {}).get("camera", self.capture.frontal_camera())))
        return self._kpt_size
