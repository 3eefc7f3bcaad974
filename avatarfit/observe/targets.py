"""What a fit is fitted to: frozen dataclasses, checked on construction.

Every target is a batch of B frames. Cameras are OpenCV (``K`` pixels, ``[R|t]`` world ->
camera) with the head pose ``(head_R, head_t)`` mapping head-local mm to that world; the
HMC cameras are the rig's (headset -> camera) under the headset pose (head-local ->
headset), so the camera of view ``v`` is ``R = rig_R[v] headset_R``, ``t = rig_R[v] headset_t + rig_t[v]``.

``observation`` is the prior encoder's input, in the form training gave it: the three
HMC views ``(B, 3, 1, h, w)`` for an HMC-conditioned avatar, or normalised keypoints
``(B, 274, 2)`` (:func:`~avatarfit.data.keypoints.normalise_keypoints`) for a
keypoint-conditioned one; DAM and DAM-Flow need none. ``truth`` holds what the fit is
scored against when it is known.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from .._checks import check_finite, check_shape
from ..render.grey import IR_WEIGHTS
from ..errors import DTypeError, InvalidValueError, ShapeError

__all__ = ["GroundTruth", "FrontalTarget", "MaskedFrontalTarget", "HMCTarget", "KeypointTarget", "Target",
           "TARGET_KINDS", "compose_headset", "eye_mouth_mask"]

#: Names of the target kinds (``--target`` of ``avatarfit fit``).
TARGET_KINDS = ("frontal", "masked", "hmc", "keypoints")


def _camera(prefix: str, K: torch.Tensor, R: torch.Tensor, t: torch.Tensor, B: int, size: tuple[int, int],
            views: int | None = None) -> None:
    lead = (B,) if views is None else (B, views)
    check_shape(f"{prefix}K", K, lead + (3, 3))
    check_shape(f"{prefix}R", R, lead + (3, 3))
    check_shape(f"{prefix}t", t, lead + (3,))
    for n, x in ((f"{prefix}K", K), (f"{prefix}R", R), (f"{prefix}t", t)):
        check_finite(n, x)
    H, W = size
    cx, cy = K[..., 0, 2], K[..., 1, 2]
    if bool(((cx <= 0) | (cx >= W) | (cy <= 0) | (cy >= H)).any()):
        raise InvalidValueError(f"{prefix}K: principal points (cx, cy) must lie inside the {H}x{W} images, found cx in "
                                f"[{float(cx.min()):.1f}, {float(cx.max()):.1f}], cy in [{float(cy.min()):.1f}, "
                                f"{float(cy.max()):.1f}] (an image of another size than the camera's?)")


def _image(name: str, x: torch.Tensor, B: int, channels: tuple[int, ...], views: int | None = None) -> None:
    lead = (B,) if views is None else (B, views)
    check_shape(name, x, lead + (None, None, None))
    if x.shape[-3] not in channels:
        raise ShapeError(f"{name}: expected {' or '.join(map(str, channels))} channels, got {x.shape[-3]}")
    check_finite(name, x)


def _mask(name: str, mask: torch.Tensor, image: torch.Tensor) -> None:
    want = image.shape[:-3] + (1,) + image.shape[-2:]
    if tuple(mask.shape) != tuple(want):
        raise ShapeError(f"{name}: expected shape {tuple(want)} like the image, got {tuple(mask.shape)}")
    check_finite(name, mask)
    counts = (mask > 0).flatten(-3).sum(-1)
    if bool((counts == 0).any()):
        where = [tuple(i.tolist()) for i in (counts == 0).nonzero()][:3]
        raise InvalidValueError(f"{name}: empty mask (no visible pixel) at {where}; nothing would be fitted there")


class _Batch:
    """Slicing and device moves shared by every target (frames along the first dimension)."""

    kind: ClassVar[str]

    @property
    def batch(self) -> int:
        return len(self.names)

    def select(self, index: slice | list[int] | torch.Tensor):
        """The frames ``index`` of this batch, as the same kind of target."""
        if isinstance(index, slice):
            idx = list(range(self.batch))[index]
        else:
            idx = [int(i) for i in index]
        kw = {}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if isinstance(v, torch.Tensor):
                kw[f.name] = v[idx]
            elif isinstance(v, _Batch):
                kw[f.name] = v.select(idx)
            elif f.name == "names":
                kw[f.name] = tuple(v[i] for i in idx)
            else:
                kw[f.name] = v
        return dataclasses.replace(self, **kw)

    def devices(self) -> set[torch.device]:
        """The devices its tensors (and its ground truth's) are on."""
        out: set[torch.device] = set()
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if isinstance(v, torch.Tensor):
                out.add(v.device)
            elif isinstance(v, _Batch):
                out |= v.devices()
        return out

    def to(self, device: torch.device | str):
        """A copy on ``device``."""
        kw = {f.name: (getattr(self, f.name).to(device) if isinstance(getattr(self, f.name), (torch.Tensor, _Batch))
                       else getattr(self, f.name)) for f in dataclasses.fields(self)}
        return dataclasses.replace(self, **kw)


@dataclass(frozen=True)
class GroundTruth(_Batch):
    """What a fit is scored against.

    Attributes:
        photo: ``(B, 3, H, W)`` the frontal photo in [0, 1].
        K, R, t: ``(B, 3, 3)``, ``(B, 3, 3)``, ``(B, 3)`` the frontal camera.
        head_R, head_t: ``(B, 3, 3)``, ``(B, 3)`` head pose (head-local -> world).
        verts: ``(B, V, 3)`` the tracked mesh, head-local mm.
        names: frame labels (``segment/frame``).
        headset_R, headset_t: ``(B, 3, 3)``, ``(B, 3)`` the true headset pose of HMC
            targets (head-local -> headset), or ``None``.
        hmc_masks: ``(B, 3, 1, h, w)`` the true face pixels of HMC targets' views (for
            scoring outline spill only; fitting never sees them), or ``None``.
    """

    photo: torch.Tensor
    K: torch.Tensor
    R: torch.Tensor
    t: torch.Tensor
    head_R: torch.Tensor
    head_t: torch.Tensor
    verts: torch.Tensor
    names: tuple[str, ...]
    headset_R: torch.Tensor | None = None
    headset_t: torch.Tensor | None = None
    hmc_masks: torch.Tensor | None = None
    kind: ClassVar[str] = "truth"

    def __post_init__(self) -> None:
        B = len(self.names)
        _image("truth.photo", self.photo, B, (3,))
        _camera("truth.", self.K, self.R, self.t, B, tuple(self.photo.shape[-2:]))
        check_shape("truth.head_R", self.head_R, (B, 3, 3))
        check_shape("truth.head_t", self.head_t, (B, 3))
        check_shape("truth.verts", self.verts, (B, None, 3))
        check_finite("truth.verts", self.verts)
        if (self.headset_R is None) != (self.headset_t is None):
            raise InvalidValueError("truth.headset_R, truth.headset_t: give both or neither")
        if self.headset_R is not None:
            check_shape("truth.headset_R", self.headset_R, (B, 3, 3))
            check_shape("truth.headset_t", self.headset_t, (B, 3))

    @property
    def image_size(self) -> tuple[int, int]:
        return int(self.photo.shape[-2]), int(self.photo.shape[-1])


def _check_common(target: Any) -> int:
    B = len(target.names)
    if B < 1:
        raise InvalidValueError("names: a target needs at least one frame")
    if target.observation is not None:
        check_shape("observation", target.observation, (B,) + (None,) * (target.observation.ndim - 1))
        check_finite("observation", target.observation)
    if target.truth is not None and target.truth.batch != B:
        raise ShapeError(f"truth: expected {B} frames like the target, got {target.truth.batch}")
    return B


@dataclass(frozen=True)
class FrontalTarget(_Batch):
    """A whole image in one camera (every pixel is scored, face and background).

    Attributes:
        image: ``(B, 3, H, W)`` in [0, 1].
        K, R, t: ``(B, 3, 3)``, ``(B, 3, 3)``, ``(B, 3)`` its camera; head_R, head_t: head pose.
        observation: the prior encoder's input (module docstring), or ``None``.
        truth: :class:`GroundTruth` or ``None``.
        names: frame labels.
    """

    image: torch.Tensor
    K: torch.Tensor
    R: torch.Tensor
    t: torch.Tensor
    head_R: torch.Tensor
    head_t: torch.Tensor
    names: tuple[str, ...]
    observation: torch.Tensor | None = None
    truth: GroundTruth | None = None
    kind: ClassVar[str] = "frontal"

    def __post_init__(self) -> None:
        B = _check_common(self)
        _image("image", self.image, B, (3,))
        _camera("", self.K, self.R, self.t, B, self.image_size)
        check_shape("head_R", self.head_R, (B, 3, 3))
        check_shape("head_t", self.head_t, (B, 3))

    @property
    def image_size(self) -> tuple[int, int]:
        return int(self.image.shape[-2]), int(self.image.shape[-1])


@dataclass(frozen=True)
class MaskedFrontalTarget(FrontalTarget):
    """A frontal image of which only ``mask`` is visible (LiP-Flow, supplementary Fig. 10: the eye and
    mouth regions; :func:`eye_mouth_mask` builds it).

    Attributes:
        mask: ``(B, 1, H, W)``, 1 where the image is visible; never empty.
    """

    mask: torch.Tensor = None  # type: ignore[assignment]  (required; after the inherited defaults)
    kind: ClassVar[str] = "masked"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.mask is None:
            raise InvalidValueError("mask: a masked target needs a mask (B, 1, H, W)")
        _mask("mask", self.mask, self.image)


@dataclass(frozen=True)
class HMCTarget(_Batch):
    """Three head-mounted-camera views (left eye, right eye, mouth).

    Attributes:
        views: ``(B, 3, 1, h, w)`` grey images in [0, 1]. By default every pixel is scored
            against the avatar rendered over ``background``: with antialiased outlines the fit
            moves the silhouette onto the views' (no face mask needed, which a recording
            lacks); ``FitConfig.hmc_pixels = "face"`` scores the starting face's pixels only.
        K: ``(B, 3, 3, 3)`` intrinsics per view.
        rig_R, rig_t: ``(B, 3, 3, 3)``, ``(B, 3, 3)`` headset -> camera per view.
        headset_R, headset_t: ``(B, 3, 3)``, ``(B, 3)`` head-local -> headset (the start of a
            headset-pose fit).
        ir_weights: RGB weights of the infrared-like grey (as the HMC tool's).
        background: grey level of the views where no face is (the HMC tool's clean views:
            0); the fit's renderings show it there, so a scored pixel the fitted face
            does not cover counts as the target's background would.
        valid: ``(B, 3, 1, h, w)`` optional, 1 on the pixels worth scoring (a user's mask of
            what the model cannot explain: a strap, saturated pixels); ``None`` scores all.
    """

    views: torch.Tensor
    K: torch.Tensor
    rig_R: torch.Tensor
    rig_t: torch.Tensor
    headset_R: torch.Tensor
    headset_t: torch.Tensor
    names: tuple[str, ...]
    observation: torch.Tensor | None = None
    truth: GroundTruth | None = None
    ir_weights: tuple[float, float, float] = IR_WEIGHTS
    background: float = 0.0
    valid: torch.Tensor | None = None
    kind: ClassVar[str] = "hmc"

    def __post_init__(self) -> None:
        B = _check_common(self)
        if self.views.ndim != 5 or self.views.shape[1] != 3:
            raise ShapeError(f"views: expected 3 HMC views, shape ({B}, 3, 1, h, w), got {tuple(self.views.shape)}")
        _image("views", self.views, B, (1,), views=3)
        if self.valid is not None:
            _mask("valid", self.valid, self.views)
        if self.truth is not None and self.truth.hmc_masks is not None:
            check_shape("truth.hmc_masks", self.truth.hmc_masks, tuple(self.views.shape))
        _camera("", self.K, self.rig_R, self.rig_t, B, self.image_size, views=3)
        check_shape("headset_R", self.headset_R, (B, 3, 3))
        check_shape("headset_t", self.headset_t, (B, 3))
        check_finite("headset_R", self.headset_R)
        check_finite("headset_t", self.headset_t)

    @property
    def image_size(self) -> tuple[int, int]:
        return int(self.views.shape[-2]), int(self.views.shape[-1])


@dataclass(frozen=True)
class KeypointTarget(_Batch):
    """2D keypoints (274: 68 landmarks and 206 surface points) in one camera.

    Attributes:
        points: ``(B, 274, 2)`` pixels (centres at ``i + 0.5``); visible ones lie in the image.
        visible: ``(B, 274)`` bool; hidden points are not scored.
        K, R, t, head_R, head_t: the keypoint camera and head pose.
        image_size: ``(H, W)`` of the keypoint camera.
    """

    points: torch.Tensor
    visible: torch.Tensor
    K: torch.Tensor
    R: torch.Tensor
    t: torch.Tensor
    head_R: torch.Tensor
    head_t: torch.Tensor
    image_size: tuple[int, int]
    names: tuple[str, ...]
    observation: torch.Tensor | None = None
    truth: GroundTruth | None = None
    kind: ClassVar[str] = "keypoints"

    def __post_init__(self) -> None:
        B = _check_common(self)
        check_shape("points", self.points, (B, None, 2))
        check_finite("points", self.points)
        N = self.points.shape[1]
        if self.visible.shape != (B, N):
            raise ShapeError(f"visible: expected shape ({B}, {N}), one flag per keypoint, got {tuple(self.visible.shape)}")
        if self.visible.dtype != torch.bool:
            raise DTypeError(f"visible: expected a bool tensor, got {self.visible.dtype}")
        if bool((self.visible.sum(1) == 0).any()):
            raise InvalidValueError("visible: a frame has no visible keypoint; nothing would be fitted there")
        _camera("", self.K, self.R, self.t, B, self.image_size)
        check_shape("head_R", self.head_R, (B, 3, 3))
        check_shape("head_t", self.head_t, (B, 3))
        H, W = self.image_size
        p = self.points[self.visible]
        outside = (p[:, 0] < 0) | (p[:, 0] > W) | (p[:, 1] < 0) | (p[:, 1] > H)
        if bool(outside.any()):
            q = p[outside][0].tolist()
            raise InvalidValueError(f"points: {int(outside.sum())} visible keypoints lie outside the {H}x{W} image, "
                                    f"e.g. ({q[0]:.1f}, {q[1]:.1f}); mark them hidden or check the camera")


Target = FrontalTarget | MaskedFrontalTarget | HMCTarget | KeypointTarget


def compose_headset(rig_R: torch.Tensor, rig_t: torch.Tensor, headset_R: torch.Tensor,
                    headset_t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Head-local -> camera extrinsics of the HMC views.

    Args:
        rig_R, rig_t: ``(B, C, 3, 3)``, ``(B, C, 3)`` headset -> camera.
        headset_R, headset_t: ``(B, 3, 3)``, ``(B, 3)`` head-local -> headset.

    Returns:
        ``R (B, C, 3, 3)``, ``t (B, C, 3)``.
    """
    R = rig_R @ headset_R[:, None]
    t = (rig_R @ headset_t[:, None, :, None]).squeeze(-1) + rig_t
    return R, t


def eye_mouth_mask(landmarks: torch.Tensor, image_size: tuple[int, int], margin: float = 0.35) -> torch.Tensor:
    """The paper's masked-frontal mask (LiP-Flow, supplementary Fig. 10): everything hidden except boxes
    around the eyes and the mouth.

    Args:
        landmarks: ``(B, 68, 2)`` iBUG landmarks in pixels (eyes 36-47, mouth 48-67).
        image_size: ``(H, W)``.
        margin: each box grows by this fraction of its larger side on every side.

    Returns:
        ``(B, 1, H, W)`` float mask, 1 inside the three boxes.
    """
    check_shape("landmarks", landmarks, (None, 68, 2))
    H, W = image_size
    B = landmarks.shape[0]
    rows = torch.arange(H, dtype=landmarks.dtype, device=landmarks.device)[:, None] + 0.5
    cols = torch.arange(W, dtype=landmarks.dtype, device=landmarks.device)[None, :] + 0.5
    mask = torch.zeros(B, 1, H, W, dtype=landmarks.dtype, device=landmarks.device)
    for group in (slice(36, 42), slice(42, 48), slice(48, 68)):
        pts = landmarks[:, group]
        lo, hi = pts.min(1).values, pts.max(1).values  # (B, 2)
        pad = margin * (hi - lo).max(-1, keepdim=True).values
        lo, hi = lo - pad, hi + pad
        inside = ((cols >= lo[:, 0, None, None]) & (cols <= hi[:, 0, None, None])
                  & (rows >= lo[:, 1, None, None]) & (rows <= hi[:, 1, None, None]))
        mask[:, 0] = torch.maximum(mask[:, 0], inside.to(mask.dtype))
    return mask
