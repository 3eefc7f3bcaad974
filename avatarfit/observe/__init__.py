"""Observations: the bridge between captures and everything that consumes what a headset
or a camera sees. A capture's frames become targets (what a fit is fitted to: frontal
photos, masked photos, HMC views, 2D keypoints), the prior encoder's observations and the
ground truth they are scored against (:class:`TargetSource`, which makes HMC views and
keypoints with the synthetic HMC tool exactly as training saw them); recorded HMC views
come from files (:class:`RecordedHmc`); headset poses are perturbed and compared
(:mod:`avatarfit.observe.pose`).

Example:
    >>> from avatarfit.observe import TargetSource                 # doctest: +SKIP
    >>> source = TargetSource.for_avatar(Capture("CAP"), avatar)   # as the avatar was trained
    >>> target = source.build("hmc", Capture("CAP").frames()[:8])
"""

from .pose import perturb_headset, pose_error
from .recorded import RecordedHmc
from .sources import TargetSource
from .targets import (TARGET_KINDS, FrontalTarget, GroundTruth, HMCTarget, KeypointTarget, MaskedFrontalTarget,
                      compose_headset, eye_mouth_mask)

__all__ = ["FrontalTarget", "GroundTruth", "HMCTarget", "KeypointTarget", "MaskedFrontalTarget", "RecordedHmc",
           "TARGET_KINDS", "TargetSource", "compose_headset", "eye_mouth_mask", "perturb_headset", "pose_error"]
