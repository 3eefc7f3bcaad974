"""Latent inspection: sampled variances against the analytical ones, Q = F^-1(P), the
TensorBoard logs read back with TensorBoard's own reader, bad input."""

import math
import shutil

import pytest
import torch

from avatarfit.avatar import Avatar
from avatarfit.cli import main
from avatarfit.inspect import pca_2d, sample_latents


@pytest.fixture(scope="module")
def lip_run(tiny_capture, tmp_path_factory):
    from avatarfit.train import train
    from tests.train.conftest import tiny_config

    out = tmp_path_factory.mktemp("lip") / "run"
    train(tiny_config("lip_flow", "hmc", steps=2), tiny_capture, out, progress=False)
    return out


def test_p_variance_matches_the_predicted_prior_and_q_is_the_flow_inverse(lip_run, tiny_capture):
    from avatarfit.data import Capture
    from avatarfit.observe import TargetSource

    avatar = Avatar.load(lip_run)
    cap = Capture(tiny_capture)
    refs = cap.frames()
    obs = TargetSource(cap, condition="hmc").build("frontal", refs).observation
    s = sample_latents(avatar, obs, [f"{r.segment}/{r.frame}" for r in refs], samples=400, seed=1)
    assert s.p.shape == (len(refs), 400, avatar.latent_size) and s.q.shape == s.p.shape
    # the sample variance of a Gaussian has a relative std of sqrt(2 / (S - 1)) per dimension,
    # averaged over L dimensions: a 5-sigma bound
    rel = 5 * math.sqrt(2 / 399) / math.sqrt(avatar.latent_size)
    torch.testing.assert_close(s.var_p, s.var_p_analytic, rtol=rel, atol=0)
    params = avatar.model.prior.params(obs)
    h = params.h.repeat_interleave(400, 0)
    expected_q = avatar.model.prior.flow.inverse(s.p.flatten(0, 1), h)[0].view_as(s.q)
    torch.testing.assert_close(s.q, expected_q)
    assert not torch.allclose(s.q, s.p)  # the flow does map


def test_an_unconditional_prior_samples_n01(dam_run):
    avatar = Avatar.load(dam_run)
    s = sample_latents(avatar, None, ["a", "b"], samples=300)
    assert not s.conditional and torch.equal(s.p, s.q)
    torch.testing.assert_close(s.var_p, torch.ones(2), rtol=0.15, atol=0)


def test_pca_finds_the_main_axis():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(500, 6, generator=g) * torch.tensor([0.1, 5.0, 0.1, 0.1, 2.0, 0.1])
    xy = pca_2d(x)
    assert xy[:, 0].var() > xy[:, 1].var() > 1.0
    assert abs(torch.corrcoef(torch.stack([xy[:, 0], x[:, 1]]))[0, 1]) > 0.99


def test_inspect_latents_writes_logs_tensorboard_reads(lip_run, tiny_capture, tmp_path, capsys):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.projector import projector_config_pb2
    from google.protobuf import text_format

    logdir = tmp_path / "tb"
    assert main(["inspect-latents", "--run", str(lip_run), "--capture", str(tiny_capture), "--logdir", str(logdir),
                 "--inputs", "3", "--samples", "10"]) == 0
    assert "var P" in capsys.readouterr().out
    acc = EventAccumulator(str(logdir), size_guidance={"scalars": 0, "images": 0, "histograms": 0}).Reload()
    for tag in ("variance/P", "variance/Q", "variance/P_analytic"):
        values = [e.value for e in acc.Scalars(tag)]
        assert len(values) == 3 and all(math.isfinite(v) and v > 0 for v in values)
    images = acc.Tags()["images"]
    assert "pca_P_Q" in images and any(t.startswith("inputs/highest_variance") for t in images)
    assert sum(t.startswith("decoded/") for t in images) == 3
    config = text_format.Parse((logdir / "projector_config.pbtxt").read_text(), projector_config_pb2.ProjectorConfig())
    assert sorted(e.tensor_name.split(":")[0] for e in config.embeddings) == ["P", "Q"]
    for e in config.embeddings:
        rows = (logdir / e.tensor_path).read_text().strip().splitlines()
        labels = (logdir / e.metadata_path).read_text().strip().splitlines()
        assert len(rows) == 30 and len(labels) == 30
        assert all(math.isfinite(float(v)) for v in rows[0].split("\t"))
        assert e.sprite.image_path
    assert (logdir / "pca.png").is_file()


def test_bad_input_is_refused_before_any_work(lip_run, tiny_capture, tmp_path, capsys):
    base = ["inspect-latents", "--run", str(lip_run), "--capture", str(tiny_capture), "--logdir", str(tmp_path / "tb")]
    assert main(base + ["--samples", "0"]) == 2
    assert "--samples: expected at least 2" in capsys.readouterr().err
    assert main(base + ["--inputs", "50"]) == 2
    assert "50 inputs asked for, but" in capsys.readouterr().err
    assert main(["inspect-latents", "--run", str(tmp_path), "--capture", str(tiny_capture), "--logdir",
                 str(tmp_path / "tb")]) == 2
    assert "no avatar.pt" in capsys.readouterr().err
    bare = tmp_path / "bare"
    shutil.copytree(tiny_capture, bare)
    (bare / "landmarks.txt").unlink()
    assert main(["inspect-latents", "--run", str(lip_run), "--capture", str(bare), "--logdir",
                 str(tmp_path / "tb"), "--inputs", "2"]) == 2
    assert "landmarks" in capsys.readouterr().err
    assert not (tmp_path / "tb").exists()


def test_a_keypoint_conditioned_run_is_inspected_from_keypoints(tiny_capture, tmp_path):
    from avatarfit.inspect import inspect_latents
    from avatarfit.train import train
    from tests.train.conftest import tiny_config

    train(tiny_config("lip_kl", "kpt", steps=2), tiny_capture, tmp_path / "kpt", progress=False)
    report = inspect_latents(tmp_path / "kpt", tiny_capture, tmp_path / "tb", inputs=2, samples=5)
    s = report.samples
    assert s.conditional and s.p.shape[:2] == (2, 5) and torch.equal(s.p, s.q)  # LiP-KL: no flow, P = Q
    assert (tmp_path / "tb" / "pca.png").is_file()
    sprite = next((tmp_path / "tb").glob("*/P/sprite.png"))
    assert sprite.stat().st_size > 0
