"""Scoring fits and codes against ground truth: the paper's metrics of a frontal decoding,
how HMC views are explained, keypoint and headset-pose errors. The optimiser
(:mod:`avatarfit.fit.optimize`) only optimises; its callers score what it returns."""

from __future__ import annotations

import torch

from ..avatar import Avatar
from ..metrics import geometry_error, keypoint_distance, l1, psnr, ssim
from ..observe.pose import pose_error
from ..observe.targets import GroundTruth, HMCTarget, KeypointTarget
from .optimize import FitResult, hmc_cameras

__all__ = ["face_mask", "frontal_metrics", "hmc_metrics", "render_frontal", "score_fit"]


@torch.no_grad()
def render_frontal(avatar: Avatar, truth: GroundTruth, z: torch.Tensor) -> torch.Tensor:
    """Codes rendered in the ground truth's frontal camera: ``(B, 3, H, W)`` in [0, 1]."""
    out = avatar.render_views(z, truth.K[:, None], truth.R[:, None], truth.t[:, None], truth.image_size, truth.head_R,
                              truth.head_t, antialias=False)  # as the photos are rendered: one face per pixel
    return out.image[:, 0].clamp(0, 1)


@torch.no_grad()
def score_fit(avatar: Avatar, target, result: FitResult) -> FitResult:
    """Score a fit against what its target knows, in place, and return it: fills
    ``result.metrics`` (per frame, after fitting and with ``_init`` at the prior's mean),
    ``result.frontal`` and ``result.frontal_init``.

    Metrics, each ``(B,)`` on the CPU: ``kpt_px`` (keypoint targets); with ground truth the
    frontal ones of :func:`frontal_metrics` (``psnr``, ``ssim``, ``l1``, ``psnr_face``,
    ``ssim_face``, ``geom_mm``, ``geom_mm_mean_mesh``); ``headset_deg``/``headset_mm``
    (HMC targets whose truth has the headset pose, when the pose was perturbed or fitted:
    rotation angle and translation distance to the true pose); ``hmc_spill_px``,
    ``hmc_psnr``, ``hmc_psnr_face`` (HMC targets whose truth has the views' face masks:
    :func:`hmc_metrics`).
    """
    if result.render_init is None:
        raise ValueError("result.render_init: the target's view of z_init is missing; score results of fit()")
    m = result.metrics
    init_pred = result.render_init
    if isinstance(target, KeypointTarget):
        m["kpt_px"] = keypoint_distance(result.render, target.points, target.visible).cpu()
        m["kpt_px_init"] = keypoint_distance(init_pred, target.points, target.visible).cpu()
    truth = target.truth
    if truth is None:
        return result
    moved = isinstance(target, HMCTarget) and truth.headset_R is not None and (
        result.headset_R is not None or not torch.equal(target.headset_R, truth.headset_R)
        or not torch.equal(target.headset_t, truth.headset_t))
    if moved:  # pose noise or a fitted pose: how far from the true headset pose
        start = pose_error(target.headset_R, target.headset_t, truth.headset_R, truth.headset_t)
        end = start if result.headset_R is None else pose_error(result.headset_R, result.headset_t,
                                                                  truth.headset_R, truth.headset_t)
        m["headset_deg_init"], m["headset_mm_init"] = (v.cpu() for v in start)
        m["headset_deg"], m["headset_mm"] = (v.cpu() for v in end)
    if isinstance(target, HMCTarget) and truth.hmc_masks is not None:
        m.update(hmc_metrics(avatar, target, result, init_pred))
    face = face_mask(avatar, truth)
    for suffix, z in (("", result.z), ("_init", result.z_init)):
        scores, img = frontal_metrics(avatar, truth, z, verts=None if suffix else result.verts, face=face)
        m.update({f"{k}{suffix}": v for k, v in scores.items()})
        if suffix:
            result.frontal_init = img
        else:
            result.frontal = img
    m.pop("geom_mm_mean_mesh_init")  # the same mesh before and after
    return result


def _views_psnr(pred: torch.Tensor, views: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """:func:`~avatarfit.metrics.psnr` over all the grey views of each frame together:
    ``(B, C, 1, h, w)`` -> ``(B,)`` (the C views stacked as one image of C * h rows)."""
    B, C, _, h, w = views.shape
    tall = (B, 1, C * h, w)
    return psnr(pred.clamp(0, 1).reshape(tall), views.reshape(tall), None if mask is None else mask.reshape(tall))


@torch.no_grad()
def hmc_metrics(avatar: Avatar, target: HMCTarget, result: FitResult, init_pred: torch.Tensor) -> dict:
    """How an HMC fit explains its views, scored with the views' true face masks (the
    target's ``truth.hmc_masks``), after and before fitting (``_init``).

    Returns:
        ``{"hmc_spill_px", "hmc_psnr", "hmc_psnr_face"}`` and the same with ``_init``, each
        ``(B,)`` on the CPU: pixels of the three views the fitted mesh covers outside the true
        face (one face per pixel, at the fitted headset pose); PSNR of the fitted renderings
        against the views over every pixel and over the true face pixels.
    """
    truth = target.truth
    B, C = target.batch, target.views.shape[1]
    size = target.image_size
    out = {}
    fitted_pose = None if result.headset_R is None else (result.headset_R, result.headset_t)
    for suffix, verts, pose, render in (("", result.verts, fitted_pose, result.render),
                                        ("_init", avatar.geometry(result.z_init), None, init_pred)):
        R, t = hmc_cameras(target, pose)
        cover = avatar.mesh_mask(verts.repeat_interleave(C, 0), target.K.flatten(0, 1), R.flatten(0, 1),
                                t.flatten(0, 1), size).view(B, C, 1, *size)
        spill = (cover > 0) & ~(truth.hmc_masks > 0)
        out[f"hmc_spill_px{suffix}"] = spill.flatten(1).sum(1).float().cpu()
        out[f"hmc_psnr{suffix}"] = _views_psnr(render, target.views).cpu()
        out[f"hmc_psnr_face{suffix}"] = _views_psnr(render, target.views, truth.hmc_masks).cpu()
    return out


def face_mask(avatar: Avatar, truth: GroundTruth) -> torch.Tensor:
    """The face pixels of the ground truth's photos: the tracked meshes' mask in the
    frontal camera (the pixels training scores), ``(B, 1, H, W)``."""
    return avatar.mesh_mask(truth.verts, truth.K, truth.R, truth.t, truth.image_size, truth.head_R, truth.head_t)


@torch.no_grad()
def frontal_metrics(avatar: Avatar, truth: GroundTruth, z: torch.Tensor, verts: torch.Tensor | None = None,
                    face: torch.Tensor | None = None) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """How well codes reproduce the ground truth: the paper's metrics of a decoding.

    Args:
        avatar: the trained avatar.
        truth: the frames' :class:`GroundTruth` (photo, frontal camera, tracked mesh).
        z: ``(B, L)`` codes in the decoder's space.
        verts: ``(B, V, 3)`` the codes' meshes when already decoded (head-local mm).
        face: ``(B, 1, H, W)`` :func:`face_mask` of ``truth`` when already computed.

    Returns:
        ``({"psnr", "ssim", "l1", "psnr_face", "ssim_face", "geom_mm", "geom_mm_mean_mesh"} -> (B,) CPU tensors,
        frontal renderings (B, 3, H, W))``: PSNR (dB), SSIM and L1 of the frontal rendering
        against the whole photo; PSNR and SSIM over the face pixels only (the tracked mesh's
        mask, the pixels training scores); the mean vertex distance (mm) to the tracked
        mesh, and (``geom_mm_mean_mesh``) that of the avatar's mean mesh, what a model that
        ignored the frame would score (motion explained = 1 - geom_mm / geom_mm_mean_mesh).
    """
    img = render_frontal(avatar, truth, z)
    verts = avatar.geometry(z) if verts is None else verts
    face = face_mask(avatar, truth) if face is None else face
    scores = {"psnr": psnr(img, truth.photo), "ssim": ssim(img, truth.photo), "l1": l1(img, truth.photo),
              "psnr_face": psnr(img, truth.photo, face), "ssim_face": ssim(img, truth.photo, mask=face),
              "geom_mm": geometry_error(verts, truth.verts),
              "geom_mm_mean_mesh": geometry_error(avatar.vert_mean.expand_as(truth.verts), truth.verts)}
    return {k: v.cpu() for k, v in scores.items()}, img
