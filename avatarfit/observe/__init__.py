"""Observations: the bridge between captures and everything that consumes what a headset
or a camera sees. A capture's frames become targets (what a fit is fitted to: frontal
photos, masked photos, HMC views, 2D keypoints), the prior encoder's observations and the
ground truth they are scored against (:class:`TargetSource`, which makes HMC views and
keypoints with the synthetic HMC tool exactly as training saw them); recorded HMC views
come from files (:class:`RecordedHmc`); headset poses are perturbed and compared
(:mod:`avatarfit.observe.pose`).

Example (``RUN``: a run folder of ``avatarfit train``, ``CAPTURE``: its capture folder):
    >>> from avatarfit.avatar import Avatar
    >>> from avatarfit.data.capture import Capture
    >>> from avatarfit.observe import TargetSource
    >>> capture = Capture(CAPTURE)
    >>> source = TargetSource.for_avatar(capture, Avatar.load(RUN))  # observed as the avatar's training did
    >>> target = source.build("hmc", capture.frames()[:2])
    >>> target.views.shape[:3], target.truth is not None  # 2 frames, 3 grey views, with ground truth
    (torch.Size([2, 3, 1]), True)
"""

from .pose import perturb_headset, pose_error
from .recorded import RecordedHmc
from .sources import TargetSource
from .targets import (TARGET_KINDS, FrontalTarget, GroundTruth, HMCTarget, KeypointTarget, MaskedFrontalTarget,
                      compose_headset, eye_mouth_mask)

__all__ = ["FrontalTarget", "GroundTruth", "HMCTarget", "KeypointTarget", "MaskedFrontalTarget", "RecordedHmc",
           "TARGET_KINDS", "TargetSource", "compose_headset", "eye_mouth_mask", "perturb_headset", "pose_error"]
