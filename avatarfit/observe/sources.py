"""Targets from a capture's frames, with ground truth attached (the bridge between the
data and the fitting: it reads captures and makes synthetic HMC samples), or from
recorded HMC views (:class:`~avatarfit.observe.recorded.RecordedHmc`).

The frontal camera is the capture's most frontal one (the keypoint camera of the HMC
tool). HMC views and keypoints come from :class:`~avatarfit.synth.hmc.SyntheticHmc`
(made in memory, the same as ``avatarfit hmc`` writes for the same settings and seed),
or, with ``recorded``, HMC views from files.
"""

from __future__ import annotations

import dataclasses
import zlib
from pathlib import Path
from typing import Sequence

import torch

from .._io import png_size
from ..data.capture import Capture, FrameRef
from ..data.keypoints import normalise_keypoints
from ..data.layout import HMC_VIEWS, Layout
from ..synth.hmc import HmcConfig, SyntheticHmc
from .pose import perturb_headset
from .recorded import RecordedHmc, prepare_views
from .targets import (TARGET_KINDS, FrontalTarget, GroundTruth, HMCTarget, KeypointTarget, MaskedFrontalTarget,
                      eye_mouth_mask)

__all__ = ["TargetSource"]


def _frame_seed(seed: int, name: str) -> int:
    """A seed of its own for each frame, from the user's seed and the frame's name."""
    return (int(seed) * 1_000_003 + zlib.crc32(name.encode("utf-8"))) % (2**63)


class TargetSource:
    """Builds batches of targets of one capture's frames.

    Args:
        capture: the capture (Multiface layout, with ``landmarks.txt`` for HMC and keypoint
            targets and for masks).
        hmc: settings of the synthetic HMC views and keypoints (default: clean views, without
            the augmentations, at 120x160, the small training configs' size). Fitting by
            differentiable rendering explains geometry and texture, not the tool's lighting,
            gain, background and noise (LiP-Flow, supplementary D: on real HMC images "large discrepancies
            in lighting, background, and cameras" make it infeasible), so targets are clean
            renderings under the sampled headset pose by default.
        condition: what the avatar's prior encoder sees (``hmc``, ``kpt`` or ``None``): the
            ``observation`` each target carries.
        frontal_camera: the camera of frontal, masked and keypoint targets (default: the most
            frontal one).
        observation: how the prior encoder's training observed frames (an avatar's
            ``info["observation"]``, :meth:`~avatarfit.synth.observe.Observer.record`): the
            ``observation`` of each target is then made exactly so (the views of the data
            term stay the clean ``hmc`` ones); ``None``: the data term's own views or
            keypoints. :meth:`for_avatar` passes the avatar's.
        recorded: recorded HMC views: HMC targets are these files (their views, the rig,
            the headset pose each frame starts from), and the prior of an HMC-conditioned
            avatar observes them (resized to the views it was trained on); the capture, if
            any, adds ground truth for the frames it has. ``capture`` may then be ``None``.
    """

    def __init__(self, capture: Capture | None, hmc: HmcConfig | None = None, condition: str | None = None,
                 frontal_camera: str | None = None, observation: dict | None = None,
                 recorded: RecordedHmc | None = None) -> None:
        if capture is None and recorded is None:
            raise ValueError("capture: targets need a capture, or recorded HMC views (recorded=...)")
        self.capture = capture
        self.recorded = recorded
        self.hmc_config = hmc if hmc is not None else HmcConfig(views_size=(120, 160), augment=False)
        # recorded views are observed at the size training observed (avatars without a record
        # of it were observed with the data term's views); unknown: as recorded
        self._observed_size: tuple[int, int] | None = (_observed_size(observation, capture) if observation
                                                        is not None else tuple(self.hmc_config.views_size))
        if condition not in (None, "hmc", "kpt"):
            raise ValueError(f"condition: expected 'hmc', 'kpt' or None, got {condition!r}")
        self.condition = condition
        self.frontal = frontal_camera or (capture.frontal_camera() if capture is not None else None)
        self._hmc: SyntheticHmc | None = None
        self.observer = None
        if observation is not None and condition is not None and capture is not None:
            from ..synth.observe import Observer

            self.observer = Observer.from_record(capture, observation)
            if self.observer.condition != condition:
                raise ValueError(f"observation: recorded for a {self.observer.condition!r} prior, asked for "
                                 f"{condition!r}")

    @classmethod
    def for_avatar(cls, capture: Capture | None, avatar, hmc: HmcConfig | None = None,
                   frontal_camera: str | None = None, recorded: RecordedHmc | None = None) -> "TargetSource":
        """Targets for ``avatar``: its condition, and its prior observed as its training
        observed it (``info["observation"]``; avatars from before that record are observed
        with the data term's clean views, as then)."""
        condition = avatar.condition if avatar.conditional else None
        record = avatar.info.get("observation") if condition is not None else None
        return cls(capture, hmc, condition, frontal_camera, record, recorded)

    @property
    def hmc(self) -> SyntheticHmc:
        if self._hmc is None:
            lm = self.capture.layout.landmarks
            if not lm.is_file():
                raise FileNotFoundError(f"{lm}: HMC views, keypoints and masks need the capture's landmarks "
                                        "(written by avatarfit synth; real captures need 68 'face b0 b1 b2' rows)")
            self._hmc = SyntheticHmc(self.capture, self.hmc_config, keypoint_camera=self.frontal)
        return self._hmc

    def truth(self, refs: Sequence[FrameRef]) -> GroundTruth:
        """Frontal photos, camera, head poses and tracked meshes of ``refs``."""
        cap = self.capture
        K, R, t = cap.camera_tensors(self.frontal)
        poses = [cap.head_pose(r.segment, r.frame) for r in refs]
        B = len(refs)
        return GroundTruth(
            photo=torch.stack([cap.photo(r.segment, r.frame, self.frontal) for r in refs]),
            K=K.expand(B, 3, 3).clone(), R=R.expand(B, 3, 3).clone(), t=t.expand(B, 3).clone(),
            head_R=torch.stack([p[0] for p in poses]), head_t=torch.stack([p[1] for p in poses]),
            verts=torch.stack([cap.vertices(r.segment, r.frame) for r in refs]),
            names=tuple(f"{r.segment}/{r.frame}" for r in refs))

    def observation(self, refs: Sequence[FrameRef], samples: list | None = None) -> torch.Tensor | None:
        """What the prior encoder sees for ``refs``: HMC views ``(B, 3, 1, h, w)``, normalised
        keypoints ``(B, 274, 2)``, or ``None`` without a condition. ``samples``: the frames'
        :class:`~avatarfit.synth.hmc.HmcSample` when already made."""
        if self.condition is None:
            return None
        if self.observer is not None:
            return torch.stack([self.observer.observe(r) for r in refs])
        if samples is None:
            samples = [self.hmc.sample(r.segment, r.frame) for r in refs]
        if self.condition == "hmc":
            return torch.stack([s.views for s in samples])
        size = self.hmc.keypoint_size
        return torch.stack([normalise_keypoints(s.keypoints, s.visible, size) for s in samples])

    def build(self, kind: str, refs: Sequence[FrameRef], *, pose_noise_rot: float = 0.0, pose_noise_trans: float = 0.0,
              seed: int = 0):
        """A target of ``kind`` (``frontal``, ``masked``, ``hmc`` or ``keypoints``) for ``refs``.

        ``pose_noise_rot`` (degrees) and ``pose_noise_trans`` (mm) perturb the headset pose an
        HMC target starts from (the views stay those of the true pose, kept in ``truth``);
        each frame's noise depends only on ``seed`` and the frame's name, not on the batch.
        """
        if kind not in TARGET_KINDS:
            raise ValueError(f"kind: expected one of {TARGET_KINDS}, got {kind!r}")
        if not refs:
            raise ValueError("refs: no frames to build a target of")
        if self.recorded is not None and kind == "hmc":
            return self._recorded_target(refs, pose_noise_rot, pose_noise_trans, seed)
        if self.capture is None:
            raise ValueError(f"kind: a {kind} target needs a capture; recorded HMC views give hmc targets only")
        truth = self.truth(refs)
        samples = [self.hmc.sample(r.segment, r.frame) for r in refs] if (kind in ("hmc", "keypoints", "masked")
                                                                          or self.condition) else None
        common = dict(names=truth.names, observation=self.observation(refs, samples), truth=truth)
        cam = dict(K=truth.K, R=truth.R, t=truth.t, head_R=truth.head_R, head_t=truth.head_t)
        if kind == "frontal":
            return FrontalTarget(image=truth.photo, **cam, **common)
        if kind == "masked":
            landmarks = torch.stack([s.keypoints[:68] for s in samples])
            mask = eye_mouth_mask(landmarks, truth.image_size)
            return MaskedFrontalTarget(image=truth.photo * mask, mask=mask, **cam, **common)
        if kind == "keypoints":
            return KeypointTarget(points=torch.stack([s.keypoints for s in samples]),
                                  visible=torch.stack([s.visible for s in samples]), image_size=truth.image_size,
                                  **cam, **common)
        true_R = torch.stack([s.headset_R for s in samples])
        true_t = torch.stack([s.headset_t for s in samples])
        hR, ht = _perturbed(true_R, true_t, truth.names, pose_noise_rot, pose_noise_trans, seed)
        # The tool's face masks are ground truth (outline spill is scored with them); the fit
        # scores every pixel of the views (antialiased outlines have gradients).
        common["truth"] = dataclasses.replace(truth, headset_R=true_R, headset_t=true_t,
                                              hmc_masks=torch.stack([s.masks for s in samples]))
        rig_R, rig_t = self.hmc.rig.extrinsics()
        B = len(refs)
        return HMCTarget(views=torch.stack([s.views for s in samples]),
                         K=torch.stack([s.K for s in samples]), rig_R=rig_R.expand(B, 3, 3, 3).clone(),
                         rig_t=rig_t.expand(B, 3, 3).clone(), headset_R=hR, headset_t=ht,
                         ir_weights=tuple(self.hmc_config.ir_weights), **common)

    def has_truth(self, ref: FrameRef) -> bool:
        """Whether the capture lists ``ref`` with its tracked mesh, head pose and frontal photo."""
        cap = self.capture
        if cap is None or not cap.has_frame(ref.segment, ref.frame):
            return False
        lay = cap.layout
        return (lay.mesh_bin(ref.segment, ref.frame).is_file() and lay.transform(ref.segment, ref.frame).is_file()
                and lay.image(ref.segment, self.frontal, ref.frame).is_file())

    def _known_truth(self, refs: Sequence[FrameRef]) -> GroundTruth | None:
        """Ground truth of recorded frames: the capture's, when it has it for every frame of
        ``refs`` (:meth:`has_truth`); else ``None`` (the job batches such frames apart)."""
        return self.truth(refs) if all(self.has_truth(r) for r in refs) else None

    def _recorded_target(self, refs: Sequence[FrameRef], pose_noise_rot: float, pose_noise_trans: float,
                         seed: int) -> HMCTarget:
        """An HMC target of recorded views: the rig's cameras (K as calibrated), each frame
        starting from its headset file's pose (the rig's nominal pose without one)."""
        rec = self.recorded
        rec.check(list(refs))
        views = torch.stack([rec.views(r) for r in refs])
        poses = [rec.headset(r) for r in refs]
        file_R, file_t = torch.stack([p[0] for p in poses]), torch.stack([p[1] for p in poses])
        names = tuple(f"{r.segment}/{r.frame}" for r in refs)
        hR, ht = _perturbed(file_R, file_t, names, pose_noise_rot, pose_noise_trans, seed)
        truth = self._known_truth(refs)
        if truth is not None and all(rec.layout.hmc_headset(r.segment, r.frame).is_file() for r in refs):
            # the recording's own headset poses are what pose noise and pose fitting are scored against
            truth = dataclasses.replace(truth, headset_R=file_R, headset_t=file_t)
        observation = None
        if self.condition == "hmc":
            observation = prepare_views(views, self._observed_size)
        elif self.condition is not None:
            if self.capture is None:
                raise ValueError(f"condition: a {self.condition}-conditioned avatar observes keypoints, which a "
                                 "recording of HMC views does not have; give the capture too, or fit a DAM or "
                                 "HMC-conditioned avatar")
            observation = self.observation(refs)
        K = rec.rig.intrinsics()
        rig_R, rig_t = rec.rig.extrinsics()
        B = len(refs)
        return HMCTarget(views=views, K=K.expand(B, 3, 3, 3).clone(), rig_R=rig_R.expand(B, 3, 3, 3).clone(),
                         rig_t=rig_t.expand(B, 3, 3).clone(), headset_R=hR, headset_t=ht, names=names,
                         observation=observation, truth=truth, ir_weights=tuple(self.hmc_config.ir_weights))


def _observed_size(record: dict | None, capture: Capture | None) -> tuple[int, int] | None:
    """The HMC view size a prior's training observed (its observation record): the HMC
    tool's ``views_size``, or the size of the files it read; ``None`` when unknown."""
    if not isinstance(record, dict):
        return None
    hmc = record.get("hmc")
    if isinstance(hmc, dict) and isinstance(hmc.get("views_size"), (list, tuple)):
        return tuple(int(x) for x in hmc["views_size"])
    if record.get("source") == "files":
        root = record.get("hmc_dir") or (capture.root if capture is not None else None)
        if root is not None:
            first = next(Layout(Path(root)).hmc_dir.glob(f"*/{HMC_VIEWS[0]}/*.png"), None)
            if first is not None:
                return png_size(first)
    return None


def _perturbed(R: torch.Tensor, t: torch.Tensor, names: Sequence[str], rot: float, trans: float,
               seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Headset poses ``(B, 3, 3)``, ``(B, 3)`` moved by the pose noise (degrees, mm) of each
    frame, which depends only on ``seed`` and the frame's name; unchanged without noise."""
    if not (rot > 0 or trans > 0):
        return R, t
    moved = [perturb_headset(R[i:i + 1], t[i:i + 1], rot, trans, torch.Generator().manual_seed(_frame_seed(seed, n)))
             for i, n in enumerate(names)]
    return torch.cat([m[0] for m in moved]), torch.cat([m[1] for m in moved])
