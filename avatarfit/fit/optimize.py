"""Inference-time fitting (LiP-Flow, supplementary H.2): Adam on latent codes (and optionally the headset
pose) so that the avatar's renderings match a target.

Per frame, the objective is

    E(z) = D(render(z), target) + lambda_L * (-log p(z | observation)) / L

- D, images: over the pixels the target shows (every pixel of a frontal image, background
  included; the mask of a masked one; every pixel of HMC views, or their optional
  ``valid`` mask), the mean squared
  error in units of the avatar's texture standard deviation (as training's image loss),
  summed over views. HMC renderings are converted to the target's infrared-like grey,
  with the target's background where no face is.
- D, keypoints: the mean squared reprojection error in pixels over the visible keypoints.
- The latent term is the avatar's prior: N(0, I) for DAM, the unconditional flow for
  DAM-Flow, the prior predicted from ``target.observation`` otherwise; divided by L so
  that lambda_L means the same at any latent size. ``lambda_latent = 0`` gives the
  paper's "w/o L_L" rows.

Fitting starts from the prior's mean mapped into the decoder's space. Frames are
independent: one code each, their objectives summed (Adam's update is per element, so a
frame fitted in a batch equals it fitted alone), and each frame stops when its objective
has not improved by more than ``tol`` (relative) for ``patience`` steps; its best code is
kept. The decoder is frozen and everything runs in eval mode.
"""

from __future__ import annotations

import dataclasses
import math
import time
import warnings
from dataclasses import dataclass, field
from numbers import Integral, Real

import torch

from ..avatar import Avatar
from ..data.layout import HMC_VIEWS
from ..errors import ShapeError
from ..render.renderer import FaceCache
from ..models.priors import PriorParams
from ..observe.pose import params_to_pose, pose_to_params
from ..observe.targets import HMCTarget, KeypointTarget, MaskedFrontalTarget, compose_headset
from .summary import summarise

__all__ = ["DEFAULT_LAMBDA_LATENT", "FitConfig", "FitResult", "fit", "check_target_for_avatar", "hmc_cameras"]


#: What the data term of an HMC fit scores (:attr:`FitConfig.hmc_pixels`).
HMC_PIXELS = ("all", "face")

#: Fewest pixels of a view the starting face must cover with ``hmc_pixels: face``.
MIN_FACE_PIXELS = 16

#: lambda_L of a fit that does not set it, per target kind: the middle of the paper's grid
#: for that kind (:data:`~avatarfit.fit.search.PAPER_GRIDS`); the CLI uses the same.
DEFAULT_LAMBDA_LATENT: dict[str, float] = {"frontal": 0.001, "masked": 0.001, "hmc": 0.01, "keypoints": 0.01}


@dataclass(frozen=True)
class FitConfig:
    """Settings of a fit.

    Attributes:
        lr: Adam learning rate of the codes (paper grid: 0.01, 0.1, 0.5).
        lambda_latent: weight of the latent NLL (paper grids: 0.01, 0.001, 0.0001 for
            frontal and masked targets; 0.1, 0.01, 0.001 for HMC and keypoint targets);
            ``None``: the target kind's default, :data:`DEFAULT_LAMBDA_LATENT` (the middle
            of its grid), resolved by :meth:`for_target`.
        steps: at most this many Adam steps (paper: 200).
        patience: a frame stops after this many steps without improvement.
        tol: relative improvement that counts (``E < best * (1 - tol)``).
        fit_headset: also optimise the 6-DoF headset pose (HMC targets; LiP-Flow, supplementary Table 9).
        lr_rotation: Adam learning rate of the headset's axis-angle (radians per step).
        lr_translation: Adam learning rate of the headset's translation (mm per step).
        smoothness: weight of ``||z - z_previous||^2 / L`` (sequence fitting; needs ``previous``).
        raster_every: run the rasteriser's hard test (which face covers each pixel) at most
            every this many steps and keep its faces in between (barycentrics, depth and
            texture still follow the vertices every step); 1 (the default) rasterises every
            step. Kept faces (e.g. 8) save 7-37 % of a step's time (batch 1-32, two
            machines), but with antialiased outlines a fit then moves with float rounding (a
            view is rasterised again when a vertex crosses ``raster_shift``, a threshold that
            rounding flips), and measured on validation frames they converge to worse fits
            (README, "Fitting: measured quality and speed").
        raster_shift: rasterise a view again as soon as one of its vertices has moved more
            than this many pixels on screen since its kept faces were chosen.
        antialias: render with antialiased outlines, so that the image's gradient moves
            silhouettes and occlusion edges (:mod:`avatarfit.render.antialias`); False
            renders one face per pixel (only texture sliding moves a fit).
        photometric: explain each HMC view's gain and bias (a recorded camera's exposure and
            black level, which the avatar's texture does not know): at every step the
            rendering of each view is mapped by the gain and bias that fit it best (least
            squares over the scored pixels, gain clamped to [0.2, 5]), so the data term
            scores what an affine change of brightness cannot explain. HMC targets only.
        shading: with ``photometric``, also a Lambertian light per view (the rendering times
            ``light . normal``, normals in camera coordinates: first-order spherical
            harmonics, solved with gain and bias in closed form): a headset's IR LEDs light
            the face unevenly, which one gain per view cannot explain.
        hmc_pixels: which HMC pixels the data term scores: ``all`` (clean renderings, whose
            background is the target's ``background``) or ``face``: only the pixels the
            face covers in the starting rendering, shrunk by ``face_margin`` pixels (a
            recording's background is whatever was behind the face; the fit cannot explain
            it, and does not try). Either is intersected with the target's ``valid`` mask.
        face_margin: pixels taken off the starting face's outline with ``hmc_pixels: face``.
    """

    lr: float = 0.1
    lambda_latent: float | None = None
    steps: int = 200
    patience: int = 10
    tol: float = 1e-4
    fit_headset: bool = False
    lr_rotation: float = 0.005
    lr_translation: float = 0.3
    smoothness: float = 0.0
    raster_every: int = 1
    raster_shift: float = 0.5
    antialias: bool = True
    photometric: bool = False
    shading: bool = False
    hmc_pixels: str = "all"
    face_margin: int = 2

    def __post_init__(self) -> None:
        numbers = {"lr": self.lr, "lambda_latent": self.lambda_latent, "tol": self.tol,
                   "lr_rotation": self.lr_rotation, "lr_translation": self.lr_translation,
                   "smoothness": self.smoothness, "raster_shift": self.raster_shift}
        for key, value in numbers.items():
            if value is None and key == "lambda_latent":
                continue
            if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value):
                raise ValueError(f"{key}: expected a finite number, got {value!r}")
        for key in ("steps", "patience", "raster_every", "face_margin"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, Integral):
                raise ValueError(f"{key}: expected a whole number, got {value!r}")
        if not (self.lr > 0 and self.lr_rotation > 0 and self.lr_translation > 0):
            raise ValueError(f"lr, lr_rotation, lr_translation: expected positive rates, got {self.lr}, "
                             f"{self.lr_rotation}, {self.lr_translation}")
        if (self.lambda_latent or 0.0) < 0 or self.smoothness < 0 or self.tol < 0:
            raise ValueError(f"lambda_latent, smoothness, tol: expected values >= 0, got {self.lambda_latent}, "
                             f"{self.smoothness}, {self.tol}")
        if self.steps < 1 or self.patience < 1 or self.raster_every < 1:
            raise ValueError(f"steps, patience, raster_every: expected at least 1, got {self.steps}, {self.patience} "
                             f"and {self.raster_every}")
        if not self.raster_shift > 0:
            raise ValueError(f"raster_shift: expected a positive number of pixels, got {self.raster_shift}")
        if self.hmc_pixels not in HMC_PIXELS:
            raise ValueError(f"hmc_pixels: expected one of {', '.join(HMC_PIXELS)}, got {self.hmc_pixels!r}")
        if self.shading and not self.photometric:
            raise ValueError("shading: a part of the photometric model; set photometric too")
        if self.face_margin < 0:
            raise ValueError(f"face_margin: expected a number of pixels >= 0, got {self.face_margin}")
        for key in ("photometric", "shading", "fit_headset", "antialias"):
            if not isinstance(getattr(self, key), bool):
                raise ValueError(f"{key}: expected true or false, got {getattr(self, key)!r}")

    def for_target(self, kind: str) -> "FitConfig":
        """These settings with ``lambda_latent`` resolved for a target ``kind`` (``frontal``,
        ``masked``, ``hmc``, ``keypoints``): unchanged when set, else the kind's default.

        Raises:
            ValueError: an unknown kind, or settings of HMC fits (the photometric model,
                face pixels) for another kind.
        """
        if kind not in DEFAULT_LAMBDA_LATENT:
            raise ValueError(f"kind: expected one of {', '.join(DEFAULT_LAMBDA_LATENT)}, got {kind!r}")
        if (self.photometric or self.hmc_pixels != "all") and kind != "hmc":
            raise ValueError(f"photometric, shading, hmc_pixels (--photometric, --shading, --hmc-pixels): settings "
                             f"of HMC fits, not of {kind} targets")
        if self.lambda_latent is not None:
            return self
        return dataclasses.replace(self, lambda_latent=DEFAULT_LAMBDA_LATENT[kind])


@dataclass
class FitResult:
    """What :func:`fit` returns, per frame.

    Attributes:
        names: frame labels.
        z: ``(B, L)`` the best code of each frame (never NaN).
        z_init: ``(B, L)`` the prior's mean (what the ``_init`` metrics score).
        z_start: ``(B, L)`` where the optimiser started: ``z_init``, or the ``init`` given
            (a sequence's warm start from the previous frame).
        headset_R, headset_t: ``(B, 3, 3)``, ``(B, 3)`` fitted headset pose (HMC targets), else ``None``.
        objective: ``(S, B)`` objective per step (NaN after a frame stopped).
        data_term: ``(B,)`` the data term D at the best code.
        steps: ``(B,)`` Adam steps each frame took.
        failed: ``(B,)`` frames whose objective became NaN or Inf (their best code before that is kept).
        render: the fitted renderings in the target's cameras: ``(B, C, ch, H, W)`` images,
            or ``(B, 274, 2)`` keypoints.
        frontal, frontal_init: ``(B, 3, H, W)`` renderings in the ground truth's frontal
            camera after and before fitting (``None`` until
            :func:`~avatarfit.fit.score.score_fit` scores a target with ground truth).
        verts: ``(B, V, 3)`` fitted meshes, head-local mm.
        metrics: per-frame ``(B,)`` tensors, empty until a caller scores the fit against
            ground truth (:func:`~avatarfit.fit.score.score_fit`).
        seconds: wall-clock time of the fit (optimising only; scoring is the caller's).
        photometric: ``(B, C, 2)`` the photometric model per HMC view at the best code
            (``FitConfig.photometric``; ``render`` includes it): gain and bias, and with
            ``shading`` ``(B, C, 5)``: also the light's x, y, z; else ``None``.
        scored: ``(B, C, 1, H, W)`` the HMC pixels the data term scored with
            ``hmc_pixels: face`` (the starting face's, within the target's ``valid`` mask),
            else ``None``.
        render_init: the target's view of ``z_init`` (as ``render``; with the photometric
            model fitted at ``z_init``).
    """

    names: tuple[str, ...]
    z: torch.Tensor
    z_init: torch.Tensor
    z_start: torch.Tensor
    headset_R: torch.Tensor | None
    headset_t: torch.Tensor | None
    objective: torch.Tensor
    data_term: torch.Tensor
    steps: torch.Tensor
    failed: torch.Tensor
    render: torch.Tensor
    frontal: torch.Tensor | None
    frontal_init: torch.Tensor | None
    verts: torch.Tensor
    metrics: dict[str, torch.Tensor] = field(default_factory=dict)
    seconds: float = 0.0
    photometric: torch.Tensor | None = None
    scored: torch.Tensor | None = None
    render_init: torch.Tensor | None = None

    @property
    def batch(self) -> int:
        return len(self.names)

    def summary(self) -> dict[str, float]:
        """Means over frames of every metric, steps and seconds per frame
        (:func:`~avatarfit.fit.summary.summarise`: every key of ``SUMMARY_KEYS``, NaN where
        the fit has not been scored or the metric does not apply)."""
        per_frame = torch.full((self.batch,), self.seconds / max(self.batch, 1))
        return summarise({k: v.cpu().numpy() for k, v in self.metrics.items()}, self.steps.numpy(),
                         self.failed.numpy(), per_frame.numpy())


def check_target_for_avatar(avatar: Avatar, target) -> None:
    """Raise ``ValueError`` when the avatar's prior cannot use the target's observation
    (HMC views for an HMC-conditioned avatar, keypoints for a keypoint-conditioned one),
    or a keypoint target meets an avatar without a keypoint definition."""
    if isinstance(target, KeypointTarget):
        if avatar.keypoint_points is None:
            raise ValueError("target: a keypoint target needs an avatar with a keypoint definition; this one has none")
        if target.points.shape[1] != avatar.kp_faces.shape[0]:
            raise ShapeError(f"points: the avatar defines {avatar.kp_faces.shape[0]} keypoints, the target has "
                             f"{target.points.shape[1]}")
    if not avatar.conditional:
        return
    obs = target.observation
    kind = "HMC views (B, 3, 1, h, w)" if avatar.condition == "hmc" else "normalised keypoints (B, 274, 2)"
    if obs is None:
        raise ValueError(f"target.observation: the {avatar.variant} avatar is {avatar.condition.upper()}-conditioned; "
                         f"its prior needs {kind}, the {target.kind} target carries none")
    is_hmc = obs.ndim == 5 and obs.shape[1:3] == (3, 1)
    is_kpt = obs.ndim == 3 and obs.shape[-1] == 2
    if (avatar.condition == "hmc" and not is_hmc) or (avatar.condition == "kpt" and not is_kpt):
        found = "keypoints" if is_kpt else ("HMC views" if is_hmc else f"shape {tuple(obs.shape)}")
        raise ValueError(f"target.observation: the {avatar.variant} avatar is {avatar.condition.upper()}-conditioned "
                         f"and needs {kind}; the {target.kind} target carries {found}")


# -- rendering the target's view of a code ------------------------------------------------------
def hmc_cameras(target: HMCTarget, pose: tuple[torch.Tensor, torch.Tensor] | None = None):
    """The target's HMC cameras ``(R (B, C, 3, 3), t (B, C, 3))`` head-local, at the headset pose
    ``pose`` (``(R (B, 3, 3), t (B, 3))``; default the target's)."""
    hR, ht = pose if pose is not None else (target.headset_R, target.headset_t)
    return compose_headset(target.rig_R, target.rig_t, hR, ht)


def _render_hmc(avatar: Avatar, target: HMCTarget, z: torch.Tensor, pose=None, cache: FaceCache | None = None,
                antialias: bool = True, normals: bool = False):
    """The target's HMC views of codes ``z`` (:class:`~avatarfit.avatar.AvatarViews`, with
    camera-space normals when asked for)."""
    R, t = hmc_cameras(target, pose)
    w = torch.tensor(target.ir_weights, dtype=z.dtype, device=z.device)
    return avatar.render_views(z, target.K, R, t, target.image_size, channel_weights=w, background=target.background,
                               antialias=antialias, cache=cache, normals=normals)


def _predict(avatar: Avatar, target, z: torch.Tensor, pose=None, cache: FaceCache | None = None,
             antialias: bool = True) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The target's view of codes ``z``: images ``(B, C, ch, H, W)`` or keypoints ``(B, N, 2)``,
    and the normalised vertices (``None`` for keypoints)."""
    if isinstance(target, KeypointTarget):
        return avatar.keypoints(z, target.K, target.R, target.t, target.image_size, target.head_R, target.head_t), None
    if isinstance(target, HMCTarget):
        out = _render_hmc(avatar, target, z, pose, cache, antialias)
        return out.image, out.verts
    out = avatar.render_views(z, target.K[:, None], target.R[:, None], target.t[:, None], target.image_size,
                              target.head_R, target.head_t, antialias=antialias, cache=cache)
    return out.image, out.verts


def _scored_hmc(target: HMCTarget, face: torch.Tensor | None) -> torch.Tensor | None:
    """The HMC pixels the data term scores: the target's ``valid`` mask and the starting
    face's pixels (``hmc_pixels: face``), either or both, or ``None`` (every pixel)."""
    valid = None if target.valid is None else (target.valid > 0).to(target.views.dtype)
    if face is None:
        return valid
    return face if valid is None else face * valid


def _face_pixels(cover: torch.Tensor, margin: int) -> torch.Tensor:
    """``(B, C, 1, H, W)`` antialiased mask -> 1 on the pixels fully covered, shrunk by ``margin`` pixels."""
    inside = (cover >= 0.999).to(cover.dtype)
    if margin > 0:
        flat = inside.flatten(0, 1)
        flat = -torch.nn.functional.max_pool2d(-flat, 2 * margin + 1, stride=1, padding=margin)
        inside = flat.view_as(inside)
    return inside


def _photometric(pred: torch.Tensor, image: torch.Tensor, scored: torch.Tensor | None,
                 normals: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The per-view photometric model that maps ``pred (B, C, 1, H, W)`` best onto ``image``
    over the ``scored`` pixels (least squares): ``gain * pred + bias``, and with ``normals``
    ``(B, C, 3, H, W)`` also ``pred * (light . normal)`` (a Lambertian light per view, the
    first-order spherical-harmonics shading of face fitting).

    Returns:
        the mapped prediction, and the coefficients ``(B, C, 2)`` (gain, bias) or
        ``(B, C, 5)`` (gain, bias, light x, y, z). The coefficients are constants of the
        gradient: at the least-squares optimum the data term does not change with them to
        first order (the normals are held constant too). Without normals the gain is
        clamped to [0.2, 5] (the bias solved for the clamped gain).
    """
    with torch.no_grad():
        m = torch.ones_like(pred) if scored is None else scored.expand_as(pred)
        n = m.flatten(2).sum(-1).clamp_min(1.0)
        x, y = pred.detach(), image
        mx, my = (x * m).flatten(2).sum(-1) / n, (y * m).flatten(2).sum(-1) / n
        if normals is None:
            dx, dy = x - mx[..., None, None, None], y - my[..., None, None, None]
            var = (dx * dx * m).flatten(2).sum(-1) / n
            cov = (dx * dy * m).flatten(2).sum(-1) / n
            gain = torch.where(var > 1e-8, cov / var.clamp_min(1e-8), torch.ones_like(var)).clamp(0.2, 5.0)
            coef = torch.stack([gain, my - gain * mx], -1)
        else:
            basis = torch.cat([x, torch.ones_like(x), x * normals], 2).flatten(3)  # (B, C, 5, HW)
            w = m.flatten(3)
            A = (basis * w) @ basis.transpose(-1, -2)  # (B, C, 5, 5)
            rhs = ((basis * w) @ y.flatten(3).transpose(-1, -2))[..., 0]  # (B, C, 5)
            ridge = 1e-6 * A.diagonal(dim1=-2, dim2=-1).mean(-1).clamp_min(1e-8)
            A = A + ridge[..., None, None] * torch.eye(5, dtype=A.dtype, device=A.device)
            coef = torch.linalg.solve(A, rhs[..., None])[..., 0]
    out = pred * coef[..., 0, None, None, None] + coef[..., 1, None, None, None]
    if normals is not None:
        out = out + pred * (normals * coef[..., 2:, None, None]).sum(2, keepdim=True)
    return out, coef


def _photometric_prediction(avatar: Avatar, target: HMCTarget, z: torch.Tensor, config: "FitConfig",
                            scored: torch.Tensor | None, pose=None, cache: FaceCache | None = None):
    """The target's HMC views of ``z`` through the photometric model (with shading when
    ``config.shading``): ``(pred (B, C, 1, H, W), coefficients (B, C, 2 or 5), verts_n)``."""
    out = _render_hmc(avatar, target, z, pose, cache, config.antialias, normals=config.shading)
    pred, coef = _photometric(out.image, target.views, scored, out.normals)
    return pred, coef, out.verts


def _data_term(avatar: Avatar, target, pred: torch.Tensor, scored: torch.Tensor | None = None) -> torch.Tensor:
    """D per frame: ``(B,)``; ``scored``: the HMC pixels scored (:func:`_scored_hmc`;
    default the target's ``valid`` mask)."""
    if isinstance(target, KeypointTarget):
        v = target.visible.to(pred.dtype)
        return (((pred - target.points) ** 2).sum(-1) * v).sum(1) / v.sum(1)
    if isinstance(target, HMCTarget):
        image, mask = target.views, (scored if scored is not None else target.valid)
    elif isinstance(target, MaskedFrontalTarget):
        image, mask = target.image[:, None], target.mask[:, None]
    else:
        image, mask = target.image[:, None], None
    err = ((pred - image) / avatar.tex_std) ** 2
    if mask is None:
        per_view = err.flatten(2).mean(-1)
    else:
        m = (mask > 0).to(err.dtype)
        per_view = (err * m).flatten(2).sum(-1) / (m.flatten(2).sum(-1).clamp_min(1.0) * err.shape[2])
    return per_view.sum(1)


# -- the optimiser -----------------------------------------------------------------------------
def fit(avatar: Avatar, target, config: FitConfig = FitConfig(), *, init: torch.Tensor | None = None,
        previous: torch.Tensor | None = None, progress=None, frame_lr: torch.Tensor | None = None,
        frame_lambda: torch.Tensor | None = None) -> FitResult:
    """Fit one code per frame of ``target`` (and the headset pose with ``config.fit_headset``).

    Args:
        avatar: the trained avatar (frozen here; put it on the device you want first).
        target: a :class:`~avatarfit.observe.targets.FrontalTarget`,
            :class:`~avatarfit.observe.targets.MaskedFrontalTarget`,
            :class:`~avatarfit.observe.targets.HMCTarget` or
            :class:`~avatarfit.observe.targets.KeypointTarget` on the avatar's device.
        config: :class:`FitConfig`.
        init: ``(B, L)`` start instead of the prior's mean (sequence warm starts).
        previous: ``(B, L)`` codes the smoothness term pulls towards.
        progress: called as ``progress(step, active_frames)`` after every step.
        frame_lr: ``(B,)`` a learning rate of the codes per frame instead of ``config.lr``
            (several settings in one batched fit, as :func:`~avatarfit.fit.search_hyperparameters`
            does: Adam's step is linear in its rate, so each frame moves as with its own
            rate alone, up to rounding).
        frame_lambda: ``(B,)`` a latent weight per frame instead of ``config.lambda_latent``.

    Returns:
        :class:`FitResult`.
    """
    check_target_for_avatar(avatar, target)
    config = config.for_target(target.kind)
    if config.fit_headset and not isinstance(target, HMCTarget):
        raise ValueError(f"fit_headset: only HMC targets have a headset pose, not {target.kind} targets")
    if config.smoothness > 0 and previous is None:
        raise ValueError("smoothness: needs the previous frames' codes (previous=...)")
    device = avatar.vert_mean.device
    elsewhere = sorted(str(d) for d in target.devices() if d != device)
    if elsewhere:
        raise ValueError(f"target: its tensors are on {', '.join(elsewhere)}, the avatar on {device}; move one "
                         f"(target.to(device) or avatar.to(device))")
    B, L = target.batch, avatar.latent_size
    for name, values in (("frame_lr", frame_lr), ("frame_lambda", frame_lambda)):
        if values is None:
            continue
        if not isinstance(values, torch.Tensor) or tuple(values.shape) != (B,):
            found = tuple(values.shape) if isinstance(values, torch.Tensor) else type(values).__name__
            raise ShapeError(f"{name}: expected one value per frame, shape ({B},), got {found}")
        low = values > 0 if name == "frame_lr" else values >= 0
        if not bool((torch.isfinite(values) & low).all()):
            raise ValueError(f"{name}: expected finite values {'> 0' if name == 'frame_lr' else '>= 0'}, "
                             f"got {values.tolist()}")
    for name, codes in (("init", init), ("previous", previous)):
        if codes is not None and (not isinstance(codes, torch.Tensor) or tuple(codes.shape) != (B, L)):
            found = tuple(codes.shape) if isinstance(codes, torch.Tensor) else type(codes).__name__
            raise ShapeError(f"{name}: expected one code per frame, shape ({B}, {L}), got {found}")
        if codes is not None and not bool(torch.isfinite(codes).all()):
            raise ValueError(f"{name}: expected finite codes, got NaN or Inf")
    # The caller's avatar is left as it was found: its mode and its parameters' flags.
    was_training = avatar.training
    flags = [p.requires_grad for p in avatar.parameters()]
    avatar.eval()
    for p in avatar.parameters():
        p.requires_grad_(False)
    try:
        return _fit(avatar, target, config, init, previous, progress, frame_lr, frame_lambda)
    finally:
        avatar.train(was_training)
        for p, flag in zip(avatar.parameters(), flags):
            p.requires_grad_(flag)


def _fit(avatar: Avatar, target, config: FitConfig, init: torch.Tensor | None, previous: torch.Tensor | None,
         progress, frame_lr: torch.Tensor | None = None, frame_lambda: torch.Tensor | None = None) -> FitResult:
    t0 = time.perf_counter()
    B, L = target.batch, avatar.latent_size
    z0, params = avatar.prior_mean(target.observation, target.batch)
    start = z0 if init is None else init.detach().to(z0)
    if previous is not None:
        previous = previous.detach().to(z0)
    z = start.clone().requires_grad_(True)
    # Per-frame rates: Adam steps at rate 1 and each frame's step is scaled by its own rate.
    row_lr = None if frame_lr is None else frame_lr.detach().to(z0)[:, None]
    lam = None if frame_lambda is None else frame_lambda.detach().to(z0)
    latent_term = bool((lam > 0).any()) if lam is not None else config.lambda_latent > 0
    groups = [{"params": [z], "lr": config.lr if row_lr is None else 1.0}]
    aa = tt = None
    if config.fit_headset:
        aa0, tt0 = pose_to_params(target.headset_R, target.headset_t)
        aa, tt = aa0.clone().requires_grad_(True), tt0.clone().requires_grad_(True)
        groups += [{"params": [aa], "lr": config.lr_rotation}, {"params": [tt], "lr": config.lr_translation}]
    opt = torch.optim.Adam(groups)
    prior = avatar.model.prior
    cache = FaceCache(config.raster_every, config.raster_shift)
    hmc = isinstance(target, HMCTarget)
    face = None
    if hmc and config.hmc_pixels == "face":  # the starting face's pixels, fixed for the whole fit
        with torch.no_grad():
            start_views = _render_hmc(avatar, target, start, antialias=False)
        face = _face_pixels(start_views.mask, config.face_margin)
        counts = face.flatten(2).sum(-1)  # (B, C)
        few = (counts < MIN_FACE_PIXELS).nonzero().tolist()
        if few:
            where = ", ".join(f"{target.names[b]} {HMC_VIEWS[v] if v < len(HMC_VIEWS) else v}" for b, v in few[:4])
            raise ValueError(f"hmc_pixels 'face': the starting face covers fewer than {MIN_FACE_PIXELS} pixels of "
                             f"{len(few)} view(s) ({where}): is the headset pose right (the rig's nominal pose, or "
                             "the frame's _headset.txt)? Fit those with hmc_pixels 'all', or fix the pose")
    scored = _scored_hmc(target, face) if hmc else None
    sub_scored = scored
    # The frames still being fitted, and the target, prior parameters and previous codes of
    # just those: stopped frames are no longer rendered (rebuilt when a frame stops).
    rows = sub_target = sub_params = sub_previous = None

    def restrict(index: torch.Tensor, kept: torch.Tensor | None = None, num_frames: int = 0) -> None:
        # ``kept``: the positions of ``index``'s frames among the frames fitted so far, whose
        # kept faces carry over (each frame's rasterisations stay those of a fit of it alone).
        nonlocal rows, sub_target, sub_params, sub_previous, sub_scored
        full = index.numel() == B
        rows = None if full else index.to(z.device)
        sub_target = target if full else target.select(index.tolist())
        sub_scored = scored if (scored is None or full) else scored[rows]
        sub_params = params if full else PriorParams(
            params.mu[rows], params.log_sigma[rows], None if params.h is None else params.h[rows])
        sub_previous = previous if (previous is None or full) else previous[rows]
        if kept is None:
            cache.clear()
        else:
            cache.keep_frames(kept.to(z.device), num_frames)

    def objective() -> tuple[torch.Tensor, torch.Tensor]:
        zz = z if rows is None else z[rows]
        pose = None
        if aa is not None:
            pose = params_to_pose(aa, tt) if rows is None else params_to_pose(aa[rows], tt[rows])
        if config.photometric:
            pred = _photometric_prediction(avatar, sub_target, zz, config, sub_scored, pose, cache)[0]
        else:
            pred, _ = _predict(avatar, sub_target, zz, pose, cache, config.antialias)
        data = _data_term(avatar, sub_target, pred, sub_scored)
        total = data
        if latent_term:
            nll = -prior.log_prob(zz, sub_params) / L
            if lam is None:
                total = total + config.lambda_latent * nll
            else:  # a weight of 0 drops the term (also where it is not finite)
                w = lam if rows is None else lam[rows]
                total = total + torch.where(w > 0, w * nll, torch.zeros_like(nll))
        if config.smoothness > 0:
            total = total + config.smoothness * ((zz - sub_previous) ** 2).sum(-1) / L
        return total, data

    best = torch.full((B,), math.inf)
    best_data = torch.full((B,), math.nan)
    best_z = start.clone()
    best_aa = aa.detach().clone() if aa is not None else None
    best_tt = tt.detach().clone() if tt is not None else None
    since = torch.zeros(B, dtype=torch.long)
    steps = torch.zeros(B, dtype=torch.long)
    active = torch.ones(B, dtype=torch.bool)
    failed = torch.zeros(B, dtype=torch.bool)
    history = []
    fitted = active.clone()  # the frames ``rows`` holds
    restrict(fitted.nonzero()[:, 0])
    for step in range(config.steps + 1):
        sub_total, sub_data = objective()
        idx = fitted.nonzero()[:, 0]
        e = torch.full((B,), math.nan)
        e[idx] = sub_total.detach().cpu()
        data_now = torch.full((B,), math.nan)
        data_now[idx] = sub_data.detach().cpu()
        history.append(torch.where(active, e, torch.full_like(e, math.nan)))
        bad = active & ~torch.isfinite(e)
        if bool(bad.any()):
            failed |= bad
            active &= ~bad
            warnings.warn(f"fit: the objective became NaN or Inf for {[target.names[i] for i in bad.nonzero()[:, 0]]} "
                          f"at step {step}; those frames keep their best code so far", RuntimeWarning, stacklevel=2)
        improved = active & (e < best - config.tol * best.abs().nan_to_num(posinf=0.0))
        first = active & ~torch.isfinite(best)
        improved |= first
        since = torch.where(improved, torch.zeros_like(since), since + 1)
        better = active & (e < best)
        if bool(better.any()):
            up = better.nonzero()[:, 0]
            best[up] = e[up]
            best_data[up] = data_now[up]
            best_z[up] = z.detach()[up]
            if aa is not None:
                best_aa[up], best_tt[up] = aa.detach()[up], tt.detach()[up]
        active &= since < config.patience
        if step == config.steps or not bool(active.any()):
            break
        keep = active[fitted].to(sub_total.device)
        loss = sub_total.masked_fill(~keep, 0.0).sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        before = None if row_lr is None else z.detach().clone()
        opt.step()
        if before is not None:
            with torch.no_grad():
                z.copy_(before + row_lr * (z - before))
        steps += active.long()
        with torch.no_grad():  # stopped frames stay where they were (Adam's momentum would move them)
            frozen = (~active).nonzero()[:, 0].to(z.device)
            z[frozen] = best_z[frozen]
            if aa is not None:
                aa[frozen], tt[frozen] = best_aa[frozen], best_tt[frozen]
        if not torch.equal(active, fitted):
            kept, before = active[fitted].nonzero()[:, 0], int(fitted.sum())
            fitted = active.clone()
            restrict(fitted.nonzero()[:, 0], kept, before)
        if progress is not None:
            progress(step + 1, int(active.sum()))
    pose = params_to_pose(best_aa, best_tt) if best_aa is not None else None
    with torch.no_grad():
        coef = None
        if config.photometric:
            pred, coef, verts_n = _photometric_prediction(avatar, target, best_z, config, scored, pose)
            init_pred = _photometric_prediction(avatar, target, z0, config, scored)[0]
        else:
            pred, verts_n = _predict(avatar, target, best_z, pose, antialias=config.antialias)
            init_pred, _ = _predict(avatar, target, z0, antialias=config.antialias)
        verts = avatar.geometry(best_z) if verts_n is None else verts_n * avatar.vert_std + avatar.vert_mean
    result = FitResult(
        names=target.names, z=best_z.detach(), z_init=z0.detach(), z_start=start.detach(),
        headset_R=pose[0].detach() if pose is not None else None,
        headset_t=pose[1].detach() if pose is not None else None,
        objective=torch.stack(history), data_term=best_data, steps=steps, failed=failed, render=pred.detach(),
        frontal=None, frontal_init=None, verts=verts.detach(), photometric=coef,
        scored=None if face is None else scored, render_init=init_pred.detach())
    result.seconds = time.perf_counter() - t0
    return result
