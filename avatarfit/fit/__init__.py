"""Inference-time fitting (LiP-Flow, supplementary H.2): the optimiser, the hyper-parameter
search, sequences, scoring against ground truth and fit jobs. Targets come from
:mod:`avatarfit.observe`; see :mod:`avatarfit.fit.optimize` for the objective.

Example (``RUN``: a run folder of ``avatarfit train``, ``CAPTURE``: its capture folder):
    >>> from avatarfit.avatar import Avatar
    >>> from avatarfit.data.capture import Capture
    >>> from avatarfit.fit import FitConfig, fit, score_fit
    >>> from avatarfit.observe import TargetSource
    >>> avatar, capture = Avatar.load(RUN), Capture(CAPTURE)
    >>> target = TargetSource.for_avatar(capture, avatar).build("hmc", capture.frames()[:2])
    >>> result = score_fit(avatar, target, fit(avatar, target, FitConfig(steps=20)))
    >>> result.z.shape == (2, avatar.latent_size), bool((result.steps >= 1).all())
    (True, True)
    >>> s = result.summary()  # means over the frames: psnr, geom_mm, ... and the same before fitting (_init)
    >>> s["frames"], s["geom_mm"] > 0
    (2, True)
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
