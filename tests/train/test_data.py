import dataclasses

import pytest

import torch

from avatarfit._io import read_png
from avatarfit.data import HMC_VIEWS, Capture, Layout, read_keypoints
from avatarfit.data.keypoints import normalise_keypoints
from avatarfit.data.splits import split_frames
from avatarfit.train.data import TrainingData
from tests.train.conftest import tiny_config


def test_splits_are_contiguous_blocks_with_validation_between_train_and_test(tiny_capture):
    cap = Capture(tiny_capture)
    frames = cap.frames()  # one segment of 3 frames
    s = split_frames(cap, 0.34, 0.34)
    assert (s["train"], s["validation"], s["test"]) == (frames[:1], frames[1:2], frames[2:])
    assert split_frames(cap, 0.0, 0.34) == {"train": frames[:2], "validation": [], "test": frames[2:]}
    assert split_frames(cap, 0.0, 0.0)["train"] == frames
    with pytest.raises(ValueError, match=r"data.validation = 0.5, data.test = 0.5: segment .* has 3 frames, too few"):
        split_frames(cap, 0.5, 0.5)
    with pytest.raises(ValueError, match="data.validation \\+ data.test: expected less than 1"):
        dataclasses.replace(tiny_config("dam").data, validation=0.5, test=0.5)


def test_batches_are_deterministic_and_split_over_processes(tiny_capture):
    config = tiny_config("dam")
    config = dataclasses.replace(config, train=dataclasses.replace(config.train, batch=4))
    data = TrainingData(Capture(tiny_capture), config, conditional=False)
    a, b = data.training_batch(5), data.training_batch(5)
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert not torch.equal(a["noise"], data.training_batch(6)["noise"])
    r0, r1 = data.training_batch(5, rank=0, world=2), data.training_batch(5, rank=1, world=2)
    for k in a:
        assert torch.equal(torch.cat([r0[k], r1[k]]), a[k]), k
    assert a["photo"].shape == (4, 2, 3, 96, 72) and a["mask"].shape == (4, 2, 1, 96, 72)
    assert a["texture"].shape == (4, 3, 32, 32) and a["verts"].shape[0] == 4
    # The mask covers the face, not the background.
    assert 0.05 < float(a["mask"].mean()) < 0.9


def test_conditions_from_the_hmc_tools_files(tiny_capture, tiny_hmc):
    cap = Capture(tiny_capture)
    ref = cap.frames()[0]
    lay = Layout(tiny_hmc)
    data_cfg = {"hmc_source": "files", "hmc_dir": str(tiny_hmc)}

    def from_files(condition):
        config = tiny_config("lip_kl", condition)
        return TrainingData(cap, dataclasses.replace(config, data=dataclasses.replace(config.data, **data_cfg)), True)

    views = from_files("hmc").frame(ref).condition
    assert views.shape == (3, 1, 240, 320)
    for i, v in enumerate(HMC_VIEWS):
        assert torch.equal(views[i], read_png(lay.hmc_view(ref.segment, v, ref.frame), channels=1))
    kpt = from_files("kpt")
    xy, vis = read_keypoints(lay.keypoints(ref.segment, ref.frame))
    H, W = cap.image_size("400000")
    expected = normalise_keypoints(xy, vis, (H, W))
    torch.testing.assert_close(kpt.frame(ref).condition, expected)
    assert expected[vis].abs().max() <= 1 and (expected[~vis] == 0).all()


def test_cache_holds_at_most_its_bound(tiny_capture):
    from avatarfit.data import Capture
    from avatarfit.train.data import TrainingData
    from tests.train.conftest import tiny_config
    import dataclasses

    config = tiny_config("dam")
    unbounded = TrainingData(Capture(tiny_capture), config, False)
    for step in range(4):
        unbounded.training_batch(step)
    full = unbounded.cache_bytes
    assert full > 0
    small = dataclasses.replace(config, data=dataclasses.replace(config.data, cache_mb=full / 3 / 2**20))
    data = TrainingData(Capture(tiny_capture), small, False)
    batches = [data.training_batch(step) for step in range(4)]
    assert 0 < data.cache_bytes <= full / 3
    for a, b in zip(batches, (unbounded.training_batch(s) for s in range(4))):  # same batches either way
        for k in a:
            assert torch.equal(a[k], b[k]), k


@pytest.mark.parametrize("condition", ["hmc", "kpt"])
def test_fitting_observes_a_frame_exactly_as_training_did(tiny_capture, tmp_path, condition):
    """The avatar records how training observed frames (augmented 48x64 views here, the
    tool's default rig and seed); a fit's TargetSource rebuilds the same observer, while its
    data term keeps the clean views."""
    from avatarfit.avatar import Avatar
    from avatarfit.observe import TargetSource
    from avatarfit.train.loop import train

    config = tiny_config("lip_flow", condition, steps=1)
    assert config.data.hmc.augment and config.data.hmc.views_size == (48, 64)
    result = train(config, tiny_capture, tmp_path / "run", progress=False)
    avatar = Avatar.load(result.out)
    record = avatar.info["observation"]
    assert record["condition"] == condition and record["source"] == "memory"
    cap = Capture(tiny_capture)
    data = TrainingData(cap, config, conditional=True)
    refs = cap.frames()
    source = TargetSource.for_avatar(cap, avatar)
    observed = source.observation(refs)
    for i, ref in enumerate(refs):
        assert torch.equal(observed[i], data.frame(ref).condition), ref
    if condition == "hmc":
        target = source.build("hmc", refs[:1])
        assert target.views.shape[-2:] == (120, 160)  # the data term's clean views
        assert not torch.equal(target.observation[0], target.views[0])
    # An avatar from before the record: observed with the data term's clean views, as then.
    legacy = dict(avatar.info)
    del legacy["observation"]
    avatar.info = legacy
    old = TargetSource.for_avatar(cap, avatar)
    assert old.observer is None


def test_observation_draws_give_each_step_a_new_headset_pose_and_fitting_draw_zero(tiny_capture):
    config = tiny_config("lip_kl", "hmc", batch=4)
    config = dataclasses.replace(config, data=dataclasses.replace(config.data, observation_draws=4))
    data = TrainingData(Capture(tiny_capture), config, conditional=True)
    ref = data.train_frames[0]
    draws = [data.observation(ref, d) for d in range(4)]
    assert torch.equal(draws[0], data.frame(ref).condition)  # draw 0: what fitting observes
    assert torch.equal(draws[0], data.observer.observe(ref))
    assert all(not torch.equal(draws[0], x) for x in draws[1:])
    assert torch.equal(data.observation(ref, 2), data.observer.observe(ref, 2))  # the same draw again
    batches = [data.training_batch(s)["condition"] for s in range(6)]
    assert torch.equal(batches[3], data.training_batch(3)["condition"])  # deterministic per step
    seen = {x.sum().item() for b in batches for x in b}
    assert len(seen) > 1  # only one training frame here: the draws are what varies
    with pytest.raises(ValueError, match="observation_draws: 4 draws per frame need hmc_source: memory"):
        dataclasses.replace(config.data, hmc_source="files", observation_draws=4)


def test_observations_from_missing_files_are_named_before_training(tiny_capture, tmp_path):
    from avatarfit.errors import FormatError

    config = tiny_config("lip_kl", "hmc")
    config = dataclasses.replace(config, data=dataclasses.replace(config.data, hmc_source="files",
                                                                  hmc_dir=str(tmp_path / "nothing")))
    with pytest.raises(FormatError, match=r"left_eye.*missing: .*avatarfit hmc --capture .* \(9 files missing over 3"):
        TrainingData(Capture(tiny_capture), config, conditional=True)
