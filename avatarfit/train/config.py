"""Training configuration: a YAML file (optionally extending a ``base:`` file) read with
``yaml.safe_load`` into :class:`TrainConfig`; unknown keys are rejected by name and
``--set key=value`` overrides any field."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Any

from ..config import load_layered, parse_overrides
from ..models.config import ModelConfig
from ..models.catalog import VARIANTS
from ..synth.hmc import HmcConfig

__all__ = ["DataConfig", "LossConfig", "ScheduleConfig", "TrainConfig", "load_train_config", "SELECTIONS"]

#: Values of ``train.select``.
SELECTIONS = ("auto", "loss", "prior_r2")


@dataclass(frozen=True)
class DataConfig:
    """What a training step sees.

    Attributes:
        cameras: capture cameras whose photos drive the image loss (default: all).
        views_per_frame: cameras drawn per frame and step (the loss sums over them).
        validation: fraction of each segment's frames for early stopping, checkpoint choice
            and hyper-parameter searches (a contiguous block after the training frames).
        test: fraction of each segment's frames, at its end, for reported results only (see
            :func:`avatarfit.data.splits.split_frames`).
        hmc_source: ``memory`` (the HMC tool's in-memory API, generated once per frame
            with ``hmc`` settings) or ``files`` (``hmc/`` and ``keypoints/`` written by
            ``avatarfit hmc`` in the capture folder, or in ``hmc_dir``).
        hmc_dir: folder holding ``hmc/`` and ``keypoints/`` for ``hmc_source: files``.
        hmc: settings of the in-memory HMC generator.
        observation_draws: independent draws of headset pose and augmentation per training
            frame (``hmc_source: memory``, HMC priors): each step observes every frame of
            its batch under one of them, so that the prior encoder learns what the views
            show rather than the one headset pose a frame was seen under. 1: one fixed
            observation per frame.
        cache: keep decoded frames (normalised texture and vertices, head pose, HMC views
            or keypoints) and (frame, camera) photos with face masks in memory, up to
            ``cache_mb``; the least recently used go first beyond it.
        cache_mb: bound of that cache in MiB (a 1334x2048 photo is 33 MiB as float32; the
            paper's 10k frames x 40 cameras would need terabytes without a bound).
    """

    cameras: tuple[str, ...] | None = None
    views_per_frame: int = 2
    validation: float = 0.1
    test: float = 0.15
    hmc_source: str = "memory"
    hmc_dir: str | None = None
    hmc: HmcConfig = field(default_factory=lambda: HmcConfig(views_size=(120, 160)))
    observation_draws: int = 1
    cache: bool = True
    cache_mb: float = 4096.0

    def __post_init__(self) -> None:
        if self.cache_mb < 0:
            raise ValueError(f"data.cache_mb: expected a size >= 0 in MiB, got {self.cache_mb}")
        if self.views_per_frame < 1:
            raise ValueError(f"data.views_per_frame: expected at least 1, got {self.views_per_frame}")
        for name in ("validation", "test"):
            if not 0 <= getattr(self, name) < 1:
                raise ValueError(f"data.{name}: expected a fraction in [0, 1), got {getattr(self, name)}")
        if not self.validation + self.test < 1:
            raise ValueError(f"data.validation + data.test: expected less than 1 (training needs frames), got "
                             f"{self.validation} + {self.test}")
        if self.hmc_source not in ("memory", "files"):
            raise ValueError(f"data.hmc_source: expected 'memory' or 'files', got {self.hmc_source!r}")
        if self.observation_draws < 1:
            raise ValueError(f"data.observation_draws: expected at least 1, got {self.observation_draws}")
        if self.observation_draws > 1 and self.hmc_source != "memory":
            raise ValueError(f"data.observation_draws: {self.observation_draws} draws per frame need hmc_source: "
                             f"memory (files hold one observation per frame)")


@dataclass(frozen=True)
class LossConfig:
    """Weights of ``L = sum_v lambda_I L_I + lambda_G L_G + lambda_L L_L (+ entropy)``.

    Attributes:
        image: lambda_I (paper: 10). L_I: squared error of the rendering against the photo
            on the face pixels, in units of the texture standard deviation.
        geometry: lambda_G (paper: 1). L_G: squared error of normalised vertices.
        latent: lambda_L; ``null`` takes the variant's paper value. L_L is a sum over the
            latent dimensions (a KL or a negative log-density of z), divided by L when
            ``latent_reduction`` is ``mean``.
        latent_reduction: ``sum`` (the log-density of the whole code, as a flow's
            likelihood is defined) or ``mean`` (per latent dimension, as the DAM reference
            implementation averages its KL); ``null`` takes the variant's: ``mean`` for
            the KL and regression terms, ``sum`` for the flows' -log p (chosen by
            measurement, see the README). It scales L_L and the entropy term alike.
        latent_beta: beta of the beta-NLL weighting of the latent terms against a predicted
            Gaussian prior (LiP-KL's KL(q || p), DAM-*-Reg's regression): each dimension
            weighted by sigma_p^(2 beta), held constant for the gradient. 0 is the plain
            term; 0.5 (default) keeps a growing sigma_p from stalling the prior encoder's
            mean (see the README). The flows' -log p is never weighted: against its
            unweighted log-determinant the weighting let the flow expand without bound.
        entropy: weight of the entropy of N(mu_p, sigma_p); ``null`` gives lambda_L for
            keypoint-conditioned DAM-HMC-Reg, LiP-KL and LiP-Flow (LiP-Flow, supplementary H.1), else 0
            (why not DAM-HMC-Enc: :mod:`avatarfit.models.catalog`).
    """

    image: float = 10.0
    geometry: float = 1.0
    latent: float | None = None
    latent_reduction: str | None = None
    latent_beta: float = 0.5
    entropy: float | None = None

    def __post_init__(self) -> None:
        if not 0 <= self.latent_beta <= 1:
            raise ValueError(f"loss.latent_beta: expected a value in [0, 1], got {self.latent_beta}")
        if self.latent_reduction not in (None, "sum", "mean"):
            raise ValueError(f"loss.latent_reduction: expected 'sum' or 'mean', got {self.latent_reduction!r}")


@dataclass(frozen=True)
class ScheduleConfig:
    """Optimiser and schedule.

    Attributes:
        batch: frames per step over all processes (paper: 16).
        lr: Adam learning rate (paper: 5e-4).
        steps: maximum steps (paper: 200k).
        patience: stop when the validation score (see ``select``) has not improved for
            this many steps (paper: 20k).
        eval_every: steps between validation evaluations (and best checkpoints).
        log_every: steps between TensorBoard scalars.
        checkpoint_every: steps between ``last.pt`` checkpoints.
        max_minutes: stop after this wall-clock time (``null``: no limit).
        seed: seed of initialisation, batches and noise.
        pretrained: a DAM run folder (or checkpoint) for ``dam_hmc_reg``.
        backend: rasteriser (``auto``: bbox on CPU, PyTorch3D on CUDA).
        antialias: antialiased outlines in the image loss. Off by default: the loss scores
            the tracked mesh's face pixels only, which antialiasing would blend with the
            background along the outline (the texture learns to make up for it).
        device: ``auto`` (CUDA when available), ``cpu`` or ``cuda``.
        lr_schedule: ``constant``, or ``cosine``: from ``lr`` down to ``lr * lr_final`` at
            ``steps`` (half a cosine), so a run with a step budget ends with small steps
            (such a run resumes with its own ``steps`` only).
        lr_final: the last learning rate of the cosine schedule, as a fraction of ``lr``.
        grad_clip: the largest global gradient norm of a step (larger ones are scaled
            down to it), or ``null`` for none.
        select: what chooses ``best.pt`` and ``avatar.pt`` among the validation evaluations
            (and what early stopping waits on): ``loss`` (the training objective on the
            validation frames), ``prior_r2`` (the R^2 of the prior's mean against the DAM
            encoder's codes of the validation frames: variants with a conditional prior and
            an encoder Q), or ``auto``: ``prior_r2`` for DAM-*-Reg, whose only trained part is
            the prior (its validation NLL worsens as sigma_p shrinks while the mean's R^2
            still improves: measured on proc101, the lowest validation NLL, at step 1000, had
            R^2 0.44, the last step 0.49), ``loss`` for the others. With fewer than two
            validation frames there is no R^2: ``auto`` then chooses by the loss, an explicit
            ``prior_r2`` is refused.
    """

    batch: int = 4
    lr: float = 5e-4
    steps: int = 20000
    patience: int = 5000
    eval_every: int = 250
    log_every: int = 25
    checkpoint_every: int = 250
    max_minutes: float | None = None
    seed: int = 0
    pretrained: str | None = None
    backend: str = "auto"
    antialias: bool = False
    device: str = "auto"
    lr_schedule: str = "constant"
    lr_final: float = 0.05
    grad_clip: float | None = None
    select: str = "auto"

    def __post_init__(self) -> None:
        if self.select not in SELECTIONS:
            raise ValueError(f"train.select: expected one of {', '.join(SELECTIONS)}, got {self.select!r}")
        if self.lr_schedule not in ("constant", "cosine"):
            raise ValueError(f"train.lr_schedule: expected constant or cosine, got {self.lr_schedule!r}")
        if not (math.isfinite(self.lr_final) and 0 < self.lr_final <= 1):
            raise ValueError(f"train.lr_final: expected a fraction of lr in (0, 1], got {self.lr_final}")
        if self.grad_clip is not None and not (math.isfinite(self.grad_clip) and self.grad_clip > 0):
            raise ValueError(f"train.grad_clip: expected a positive gradient norm or null, got {self.grad_clip}")
        for name in ("batch", "steps", "patience", "eval_every", "log_every", "checkpoint_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"train.{name}: expected at least 1, got {getattr(self, name)}")
        if self.batch < 2:
            raise ValueError(f"train.batch: batch norm needs at least 2 frames per step, got {self.batch}")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"train.lr: expected a positive learning rate, got {self.lr}")
        if self.device not in ("auto", "cpu", "cuda"):
            raise ValueError(f"train.device: expected auto, cpu or cuda, got {self.device!r}")


    def lr_at(self, step: int) -> float:
        """The learning rate of (0-based) ``step`` under :attr:`lr_schedule`."""
        if self.lr_schedule == "constant":
            return self.lr
        t = min(step, self.steps) / self.steps
        return self.lr * (self.lr_final + (1.0 - self.lr_final) * 0.5 * (1.0 + math.cos(math.pi * t)))


@dataclass(frozen=True)
class TrainConfig:
    """Everything ``avatarfit train`` needs besides the capture (saved in each run)."""

    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    train: ScheduleConfig = field(default_factory=ScheduleConfig)

    def __post_init__(self) -> None:
        if VARIANTS[self.model.variant].pretrained and not self.train.pretrained:
            raise ValueError(f"train.pretrained: variant {self.model.variant} regresses a trained DAM's latents; "
                             "set it to a DAM run folder")
        variant = VARIANTS[self.model.variant]
        if self.train.select == "prior_r2" and not (variant.conditional and variant.q_encoder):
            raise ValueError(f"train.select: prior_r2 needs a conditional prior and a DAM encoder to compare it with; "
                             f"variant {self.model.variant} has "
                             f"{'no encoder Q' if variant.conditional else 'an unconditional prior'}: use loss")

    @property
    def selection(self) -> str:
        """``loss`` or ``prior_r2``: :attr:`ScheduleConfig.select` with ``auto`` resolved."""
        if self.train.select != "auto":
            return self.train.select
        return "prior_r2" if VARIANTS[self.model.variant].pretrained else "loss"

    @property
    def lambda_latent(self) -> float:
        return self.loss.latent if self.loss.latent is not None else VARIANTS[self.model.variant].lambda_latent

    @property
    def latent_reduction(self) -> str:
        """``sum`` or ``mean``: how L_L reduces over latent dimensions (see :class:`LossConfig`)."""
        return self.loss.latent_reduction or VARIANTS[self.model.variant].latent_reduction

    @property
    def lambda_entropy(self) -> float:
        if self.loss.entropy is not None:
            return self.loss.entropy
        variant = VARIANTS[self.model.variant]
        return self.lambda_latent if (variant.entropy_penalty and self.model.condition == "kpt") else 0.0


def load_train_config(path: str | os.PathLike | None, overrides: list[str] | dict[str, Any] | None = None) -> TrainConfig:
    """Read a training config; ``overrides`` are ``key=value`` strings or a nested mapping."""
    if isinstance(overrides, list):
        overrides = parse_overrides(overrides)
    return load_layered(TrainConfig, path, overrides)
