"""Sequence fitting: several segments in lockstep, each as if fitted alone."""

import pytest
import torch

from avatarfit.avatar import Avatar
from avatarfit.data import Capture
from avatarfit.fit import FitConfig, fit_sequence
from avatarfit.observe import TargetSource


def test_segments_fitted_together_equal_each_fitted_alone(dam_run, tiny_capture):
    avatar = Avatar.load(dam_run)
    target = TargetSource(Capture(tiny_capture)).build("frontal", Capture(tiny_capture).frames()[:3])
    config = FitConfig(steps=8, lr=0.01, smoothness=0.05, raster_every=1)
    seen = []
    together, stats = fit_sequence(avatar, target, config, segments=["a", "b", "a"], progress=seen.append)
    assert seen == [2, 3] and together.names == target.names  # frames done after each lockstep batch
    first, first_stats = fit_sequence(avatar, target.select([0, 2]), config)
    second, _ = fit_sequence(avatar, target.select([1]), config)
    torch.testing.assert_close(together.z[[0, 2]], first.z, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(together.z[1:2], second.z, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(together.z_start[2], together.z[0])  # frame 2 starts from frame 0 of its segment
    torch.testing.assert_close(together.z_start[1], together.z_init[1])  # a segment's first frame: the prior's mean
    assert stats["jitter_mm"] == pytest.approx(first_stats["jitter_mm"], rel=1e-3)  # only segment a has 2 frames
    # a segment fitted in chunks continues from the code it is given
    cont, _ = fit_sequence(avatar, target.select([2]), config, segments=["a"], init={"a": first.z[:1]})
    torch.testing.assert_close(cont.z, first.z[1:], atol=1e-4, rtol=1e-4)
    with pytest.raises(ValueError, match=r"segments: expected one label per frame \(3\), got 2"):
        fit_sequence(avatar, target, config, segments=["a", "b"])
    with pytest.raises(ValueError, match=r"init: codes for segments the target does not hold: \['c'\]"):
        fit_sequence(avatar, target, config, segments=["a", "b", "a"], init={"c": first.z[:1]})
