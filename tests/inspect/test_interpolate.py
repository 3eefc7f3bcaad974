"""Interpolation between two frames' codes, in Q and through the flow in P."""

import pytest
import torch

from avatarfit.avatar import Avatar
from avatarfit.cli import main
from avatarfit.data import Capture
from avatarfit.inspect.interpolate import frame_codes, interpolate_codes


@pytest.fixture(scope="module")
def lip_flow(tiny_capture, tmp_path_factory):
    from avatarfit.train import train
    from tests.train.conftest import tiny_config

    out = tmp_path_factory.mktemp("lipi") / "run"
    train(tiny_config("lip_flow", "hmc", steps=2), tiny_capture, out, progress=False)
    return Avatar.load(out), out


def test_q_interpolation_is_linear_and_ends_at_the_frames_codes(lip_flow, tiny_capture):
    avatar, _ = lip_flow
    cap = Capture(tiny_capture)
    z, params = frame_codes(avatar, cap, cap.frames()[:2])
    codes, a = interpolate_codes(avatar, z, params, 5, "q")
    torch.testing.assert_close(codes[0], z[0])
    torch.testing.assert_close(codes[-1], z[1])
    torch.testing.assert_close(codes[2], (z[0] + z[1]) / 2)
    assert a.tolist() == [1.0, 0.75, 0.5, 0.25, 0.0]


def test_p_interpolation_goes_through_the_flow(lip_flow, tiny_capture):
    avatar, _ = lip_flow
    cap = Capture(tiny_capture)
    z, params = frame_codes(avatar, cap, cap.frames()[:2])
    codes, _ = interpolate_codes(avatar, z, params, 5, "p")
    torch.testing.assert_close(codes[0], z[0], atol=1e-4, rtol=1e-4)  # F^-1(F(z1; h1); h1)
    torch.testing.assert_close(codes[-1], z[1], atol=1e-4, rtol=1e-4)
    flow = avatar.model.prior.flow
    mid_p = (flow(z, params.h)[0].sum(0)) / 2
    back = flow.inverse(mid_p[None], params.h.mean(0, keepdim=True))[0][0]
    torch.testing.assert_close(codes[2], back, atol=1e-5, rtol=1e-5)


def test_encode_matches_training_preprocessing(lip_flow, tiny_capture):
    from avatarfit.train.data import TrainingData
    from tests.train.conftest import tiny_config

    avatar, _ = lip_flow
    cap = Capture(tiny_capture)
    ref = cap.frames()[1]
    data = TrainingData(cap, tiny_config("lip_flow", "hmc"), conditional=True)
    frame = data.frame(ref)
    with torch.no_grad():
        expected = avatar.model.encoder(frame.texture[None], frame.verts[None])[0]
        got = avatar.encode(cap.texture(ref.segment, ref.frame)[None], cap.vertices(ref.segment, ref.frame)[None])
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


def test_cli_writes_the_strip_and_refuses_unknown_frames(lip_flow, tiny_capture, tmp_path, capsys):
    from avatarfit._io import read_png

    _, run = lip_flow
    cap = Capture(tiny_capture)
    a, b = (f"{r.segment}/{r.frame}" for r in cap.frames()[:2])
    out = tmp_path / "strip.png"
    assert main(["interpolate", "--run", str(run), "--capture", str(tiny_capture), "--from", a, "--to", b,
                 "--steps", "4", "--space", "p", "--out", str(out)]) == 0
    assert read_png(out).shape == (3, 96, 6 * 72)
    assert main(["interpolate", "--run", str(run), "--capture", str(tiny_capture), "--from", "nope/1", "--to", b,
                 "--out", str(out)]) == 2
    assert "--from: 'nope/1' is not a frame" in capsys.readouterr().err
    assert main(["interpolate", "--run", str(run), "--capture", str(tiny_capture), "--from", a, "--to", b,
                 "--steps", "1", "--out", str(out)]) == 2
    assert "--steps: expected at least 2" in capsys.readouterr().err
