"""Inference-time fitting (LiP-Flow, supplementary H.2): the optimiser, the hyper-parameter
search, sequences, scoring against ground truth and fit jobs. Targets come from
:mod:`avatarfit.observe`; see :mod:`avatarfit.fit.optimize` for the objective.

Example:
    >>> from avatarfit.avatar import Avatar                       # doctest: +SKIP
    >>> from avatarfit.observe import TargetSource
    >>> from avatarfit.fit import FitConfig, fit, score_fit
    >>> avatar = Avatar.load("runs/lip_flow_hmc")
    >>> source = TargetSource.for_avatar(Capture("CAP"), avatar)
    >>> target = source.build("hmc", Capture("CAP").frames()[:8])
    >>> result = score_fit(avatar, target, fit(avatar, target, FitConfig(lr=0.1, lambda_latent=0.01)))
    >>> result.summary()["psnr"], result.summary()["geom_mm"]
"""

from .job import FitJob, FitReport, run_fit_job
from .optimize import FitConfig, FitResult, check_target_for_avatar, fit
from .score import frontal_metrics, render_frontal, score_fit
from .search import PAPER_GRIDS, SearchResult, search_hyperparameters
from .sequence import fit_sequence, jitter

__all__ = [
    "FitConfig", "FitJob", "FitReport", "FitResult", "PAPER_GRIDS", "SearchResult", "check_target_for_avatar", "fit",
    "fit_sequence", "frontal_metrics", "jitter", "render_frontal", "run_fit_job", "score_fit", "search_hyperparameters",
]
