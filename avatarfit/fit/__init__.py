"""Inference-time fitting: targets, the optimiser, the hyper-parameter search, headset
pose and sequences (seed 003, H.2). See :mod:`avatarfit.fit.optimize` for the objective.

Example:
    >>> from avatarfit.avatar import Avatar                       # doctest: +SKIP
    >>> from avatarfit.fit import FitConfig, TargetSource, fit
    >>> avatar = Avatar.load("runs/lip_flow_hmc")
    >>> source = TargetSource.for_avatar(Capture("CAP"), avatar)
    >>> target = source.build("hmc", Capture("CAP").frames()[:8])
    >>> result = fit(avatar, target, FitConfig(lr=0.1, lambda_latent=0.01))
    >>> result.summary()["psnr"], result.summary()["geom_mm"]
"""

from .job import FitJob, FitReport, heldout_frames, run_fit_job
from .optimize import FitConfig, FitResult, check_target_for_avatar, fit, frontal_metrics, prior_start, render_frontal
from .pose import perturb_headset, pose_error
from .search import PAPER_GRIDS, SearchResult, search_hyperparameters
from .sequence import fit_sequence, jitter
from .sources import TargetSource
from .targets import (TARGET_KINDS, FrontalTarget, GroundTruth, HMCTarget, KeypointTarget, MaskedFrontalTarget,
                      compose_headset, eye_mouth_mask)

__all__ = [
    "FitConfig", "FitJob", "FitReport", "FitResult", "FrontalTarget", "GroundTruth", "HMCTarget", "KeypointTarget",
    "MaskedFrontalTarget", "PAPER_GRIDS", "SearchResult", "TARGET_KINDS", "TargetSource", "check_target_for_avatar",
    "compose_headset", "eye_mouth_mask", "fit", "frontal_metrics", "fit_sequence", "heldout_frames", "jitter", "perturb_headset",
    "pose_error", "prior_start", "render_frontal", "run_fit_job", "search_hyperparameters",
]
