"""Fitting recorded HMC views read from files (``avatarfit fit --hmc-dir``)."""

from __future__ import annotations

import dataclasses
import json
import shutil

import numpy as np
import pytest
import torch
import yaml

from avatarfit._io import png_size, write_png
from avatarfit.cli import main
from avatarfit.data.capture import Capture
from avatarfit.errors import FormatError
from avatarfit.fit import FitConfig, fit
from avatarfit.fit.optimize import _photometric
from avatarfit.observe.recorded import RecordedHmc
from avatarfit.observe.sources import TargetSource
from avatarfit.synth.hmc import HmcConfig
from avatarfit.synth.hmc_write import write_hmc
from tests.conftest import train_tiny

CLEAN = HmcConfig(views_size=(120, 160), augment=False)  # TargetSource's in-memory views


@pytest.fixture(scope="module")
def clean_rec(tiny_capture, tmp_path_factory):
    """The tiny capture's clean views written to files, as a recording would hold them."""
    out = tmp_path_factory.mktemp("rec") / "clean"
    write_hmc(tiny_capture, out, CLEAN, progress=False)
    return out


@pytest.fixture(scope="module")
def lip_hmc_run(tiny_capture, tmp_path_factory):
    return train_tiny("lip_flow", tiny_capture, tmp_path_factory)


def test_recorded_clean_files_are_the_target_made_in_memory(tiny_capture, clean_rec):
    cap = Capture(tiny_capture)
    refs = cap.frames()[:2]
    memory = TargetSource(cap).build("hmc", refs)
    recorded = TargetSource(cap, recorded=RecordedHmc(clean_rec)).build("hmc", refs)
    assert torch.equal(recorded.views, memory.views)
    for key in ("K", "rig_R", "rig_t", "headset_R", "headset_t"):
        torch.testing.assert_close(getattr(recorded, key), getattr(memory, key), rtol=1e-5, atol=1e-4)
    assert recorded.names == memory.names
    # the capture lists the frames: its photo and mesh are the ground truth; no face masks on disk
    assert torch.equal(recorded.truth.verts, memory.truth.verts)
    assert recorded.truth.hmc_masks is None
    torch.testing.assert_close(recorded.truth.headset_R, memory.truth.headset_R)


def test_a_recording_without_capture_or_headset_files_starts_at_the_nominal_pose(tiny_capture, clean_rec, tmp_path):
    rec_dir = tmp_path / "rec"
    shutil.copytree(clean_rec / "hmc", rec_dir / "hmc")
    for f in (rec_dir / "hmc").rglob("*_headset.txt"):
        f.unlink()
    rec = RecordedHmc(rec_dir)
    refs = rec.frames()
    assert sorted((r.segment, r.frame) for r in refs) == sorted((r.segment, r.frame)
                                                                 for r in Capture(tiny_capture).frames())
    target = TargetSource(None, recorded=rec).build("hmc", refs[:2])
    R, t = rec.rig.nominal()
    assert torch.equal(target.headset_R[0], R) and torch.equal(target.headset_t[0], t)
    assert target.truth is None and target.observation is None
    with pytest.raises(ValueError, match="needs a capture"):
        TargetSource(None, recorded=rec).build("frontal", refs[:1])


def test_recording_errors_name_the_file(clean_rec, tmp_path):
    with pytest.raises(FileNotFoundError, match="no hmc/ folder"):
        RecordedHmc(tmp_path)
    rec_dir = tmp_path / "rec"
    shutil.copytree(clean_rec / "hmc", rec_dir / "hmc")
    (rec_dir / "hmc" / "rig.txt").rename(rec_dir / "rig_elsewhere.txt")
    with pytest.raises(FileNotFoundError, match="rig file .*rig.txt does not exist"):
        RecordedHmc(rec_dir)
    rec = RecordedHmc(rec_dir, rig=rec_dir / "rig_elsewhere.txt")
    first, second = rec.frames()[:2]
    mouth = rec.layout.hmc_view(first.segment, "mouth", first.frame)
    mouth.unlink()
    with pytest.raises(FormatError, match=r"mouth.*missing.*1 images missing over 2 frames"):
        rec.check([first, second])
    write_png(mouth, torch.zeros(1, 60, 80))
    with pytest.raises(FormatError, match="expected a 120x160 image .* found 60x80"):
        rec.check([first])


def test_the_photometric_model_recovers_gain_and_bias():
    torch.manual_seed(1)
    pred = torch.rand(2, 3, 1, 12, 16)
    gain = torch.tensor([[0.6, 1.0, 1.4], [0.8, 1.2, 2.0]])
    bias = torch.tensor([[0.1, -0.05, 0.0], [0.2, 0.0, -0.1]])
    image = pred * gain[..., None, None, None] + bias[..., None, None, None]
    mapped, coef = _photometric(pred, image, None)
    torch.testing.assert_close(coef[..., 0], gain, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(coef[..., 1], bias, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(mapped, image, rtol=1e-4, atol=1e-4)


def test_the_shading_model_recovers_a_lambertian_light():
    """Views lit by a light per view (gain * albedo * (ambient + light . normal) + bias) are
    explained exactly by the shading model, and not by gain and bias alone."""
    torch.manual_seed(3)
    albedo = torch.rand(2, 3, 1, 12, 16, dtype=torch.float64)
    normals = torch.nn.functional.normalize(torch.randn(2, 3, 3, 12, 16, dtype=torch.float64) + torch.tensor(
        [0.0, 0.0, -2.0], dtype=torch.float64)[:, None, None], dim=2)
    light = torch.randn(2, 3, 3, dtype=torch.float64) * 0.3
    image = albedo * (0.7 + (normals * light[..., None, None]).sum(2, keepdim=True)) + 0.05
    mapped, coef = _photometric(albedo, image, None, normals)
    assert coef.shape == (2, 3, 5)
    torch.testing.assert_close(coef[..., 2:], light, rtol=0, atol=1e-3)  # ambient and light z are near-collinear
    torch.testing.assert_close(coef[..., :2], torch.tensor([0.7, 0.05], dtype=torch.float64).expand(2, 3, 2),
                               rtol=0, atol=1e-3)
    torch.testing.assert_close(mapped, image, rtol=0, atol=1e-4)
    assert float((_photometric(albedo, image, None)[0] - image).abs().max()) > 0.01


@pytest.mark.parametrize("true_gain", [0.7, 9.0])  # 9: the gain clamps at 5
def test_the_photometric_gradient_is_that_of_the_best_gain_and_bias(true_gain):
    """Gain and bias are held constant in the gradient; at the least-squares optimum (also
    with the gain clamped, the bias re-solved for it) that is the exact gradient of the
    data term minimised over them, which autograd through the solution gives."""
    torch.manual_seed(2)
    pred = torch.rand(1, 3, 1, 10, 12, dtype=torch.float64, requires_grad=True)
    image = (true_gain * pred.detach() + 0.1 + 0.05 * torch.randn(pred.shape, dtype=torch.float64)).clamp(0, 1)
    scored = (torch.rand(1, 3, 1, 10, 12, dtype=torch.float64) > 0.3).to(torch.float64)

    def data(mapped):
        return (((mapped - image) ** 2) * scored).sum()

    data(_photometric(pred, image, scored)[0]).backward()
    ours, pred.grad = pred.grad.clone(), None

    def solved(x):  # the same least squares, differentiated through
        n = scored.flatten(2).sum(-1)
        mx, my = (x * scored).flatten(2).sum(-1) / n, (image * scored).flatten(2).sum(-1) / n
        dx = x - mx[..., None, None, None]
        cov = (dx * (image - my[..., None, None, None]) * scored).flatten(2).sum(-1) / n
        g = (cov / ((dx * dx * scored).flatten(2).sum(-1) / n)).clamp(0.2, 5.0)
        return x * g[..., None, None, None] + (my - g * mx)[..., None, None, None]

    data(solved(pred)).backward()
    torch.testing.assert_close(ours, pred.grad, rtol=1e-6, atol=1e-9)


def test_face_pixels_make_a_fit_blind_to_the_background(dam_run, tiny_capture):
    """A recording's background is whatever was behind the face: with hmc_pixels 'face' the
    data term scores the starting face's pixels only, so noise there changes nothing."""
    from avatarfit.avatar import Avatar

    avatar = Avatar.load(dam_run)
    cap = Capture(tiny_capture)
    target = TargetSource(cap).build("hmc", cap.frames()[:2])
    noise = torch.rand(target.views.shape, generator=torch.Generator().manual_seed(0))
    face = target.truth.hmc_masks > 0
    noisy = dataclasses.replace(target, views=torch.where(face, target.views, noise))
    config = FitConfig(steps=4, hmc_pixels="face", photometric=True)
    clean_fit, noisy_fit = fit(avatar, target, config), fit(avatar, noisy, config)
    scored = clean_fit.scored > 0
    assert scored.any() and float((scored & ~face).sum()) <= 0.02 * float(scored.sum())
    torch.testing.assert_close(noisy_fit.data_term, clean_fit.data_term, rtol=0.05, atol=1e-3)
    everything = fit(avatar, noisy, FitConfig(steps=1))
    assert bool((everything.data_term > 2 * clean_fit.data_term).all())  # scored, the noise dominates
    assert noisy_fit.photometric.shape == (2, 3, 2) and bool((noisy_fit.photometric[..., 0] > 0).all())
    with pytest.raises(ValueError, match="settings of HMC fits"):
        fit(avatar, TargetSource(cap).build("frontal", cap.frames()[:1]), config)


def test_the_prior_observes_a_recording_as_its_training_observed_the_frame(lip_hmc_run, tiny_capture, tmp_path):
    """Recorded at the settings training observed with, a frame's views are the very tensor
    the prior saw in training; recorded at another size, they are resized to that size."""
    from avatarfit.avatar import Avatar
    from avatarfit.config import from_dict
    from avatarfit.synth.observe import Observer

    avatar = Avatar.load(lip_hmc_run)
    record = avatar.info["observation"]
    cap = Capture(tiny_capture)
    refs = cap.frames()[:2]
    write_hmc(cap, tmp_path / "same", from_dict(HmcConfig, record["hmc"]), frames=refs, progress=False)
    rec = RecordedHmc(tmp_path / "same")
    target = TargetSource.for_avatar(None, avatar, recorded=rec).build("hmc", refs)
    training = Observer.from_record(cap, record)
    torch.testing.assert_close(target.observation, torch.stack([training.observe(r) for r in refs]))

    big = dataclasses.replace(from_dict(HmcConfig, record["hmc"]), views_size=(120, 160))
    write_hmc(cap, tmp_path / "big", big, frames=refs, progress=False)
    target = TargetSource.for_avatar(None, avatar, recorded=RecordedHmc(tmp_path / "big")).build("hmc", refs)
    assert target.views.shape[-2:] == (120, 160)
    assert target.observation.shape[-2:] == tuple(record["hmc"]["views_size"])
    result = fit(avatar, target, FitConfig(steps=2, photometric=True, hmc_pixels="face"))
    assert bool(torch.isfinite(result.z).all())


def test_fit_cli_on_a_recording_alone_writes_nulls_where_truth_is_needed(dam_run, clean_rec, tmp_path, capsys):
    out = tmp_path / "fit"
    main(["fit", "--run", str(dam_run), "--target", "hmc", "--hmc-dir", str(clean_rec), "--steps", "3", "--out",
          str(out), "--no-progress"])
    doc = json.loads((out / "metrics.json").read_text())
    assert doc["summary"]["frames"] == len(RecordedHmc(clean_rec).frames())  # every recorded frame by default
    assert doc["summary"]["psnr"] is None and doc["summary"]["geom_mm"] is None
    assert all("psnr" not in f and "geom_mm" not in f for f in doc["frames"])
    fits = np.load(out / "fits.npz")
    assert fits["photometric"].shape == (doc["summary"]["frames"], 3, 5)  # gain, bias, light (shading)
    resolved = yaml.safe_load((out / "config.yaml").read_text())["resolved_fit"]
    assert (resolved["photometric"], resolved["shading"], resolved["hmc_pixels"], resolved["fit_headset"]) == (
        True, True, "face", True)  # RECORDED_FIT, chosen on validation frames
    strip = next((out / "strips").glob("*.png"))
    h, w = png_size(strip)
    assert w < 2 * h  # two columns (views, fit), each three views high: no ground-truth columns
    assert f"fitted {doc['summary']['frames']} frames" in capsys.readouterr().out


def test_recorded_frames_the_capture_lacks_are_fitted_and_left_unscored(dam_run, tiny_capture, clean_rec, tmp_path):
    rec_dir = tmp_path / "rec"
    shutil.copytree(clean_rec / "hmc", rec_dir / "hmc")
    seg = Capture(tiny_capture).frames()[0].segment
    shutil.copytree(rec_dir / "hmc" / seg, rec_dir / "hmc" / "ZZ_elsewhere")  # a session the capture does not list
    from avatarfit.fit.job import FitJob, run_fit_job

    job = FitJob(run=str(dam_run), capture=str(tiny_capture), target="hmc", frames="", hmc_dir=str(rec_dir),
                 batch=8, fit=FitConfig(steps=2, photometric=True, hmc_pixels="face"))
    report = run_fit_job(job, tmp_path / "fit", progress=False, log=lambda m: None)
    scored = {f["name"]: f["psnr"] for f in report.frames}
    assert len(scored) == len(RecordedHmc(rec_dir).frames())
    assert all((v is None or v != v) == name.startswith("ZZ_elsewhere/") for name, v in scored.items())
    assert report.summary["psnr"] == pytest.approx(
        sum(v for n, v in scored.items() if not n.startswith("ZZ")) / sum(not n.startswith("ZZ") for n in scored))


def test_a_view_the_starting_face_misses_is_a_named_error(dam_run, tiny_capture):
    from avatarfit.avatar import Avatar

    cap = Capture(tiny_capture)
    target = TargetSource(cap).build("hmc", cap.frames()[:1])
    shift = torch.zeros_like(target.rig_t)
    shift[:, 0, 0] = 400.0  # the first view looks past the face
    away = dataclasses.replace(target, rig_t=target.rig_t + shift)
    with pytest.raises(ValueError, match=r"fewer than 16 pixels of 1 view\(s\) \(.* left_eye\)"):
        fit(Avatar.load(dam_run), away, FitConfig(steps=1, hmc_pixels="face"))


def test_fit_cli_recording_arguments_are_checked_and_its_defaults_can_be_turned_off(dam_run, clean_rec, tmp_path, capsys):
    assert main(["fit", "--run", str(dam_run), "--target", "frontal", "--hmc-dir", str(clean_rec), "--out",
                 str(tmp_path / "x")]) == 2
    assert "--hmc-dir): recorded HMC views are fitted with target hmc, not frontal" in capsys.readouterr().err
    assert main(["fit", "--run", str(dam_run), "--target", "hmc", "--out", str(tmp_path / "y")]) == 2
    assert "--capture: give the capture" in capsys.readouterr().err
    assert main(["fit", "--run", str(dam_run), "--target", "hmc", "--hmc-dir", str(clean_rec), "--no-photometric",
                 "--no-fit-headset", "--steps", "1", "--out", str(tmp_path / "z"), "--no-progress"]) == 0
    resolved = yaml.safe_load((tmp_path / "z" / "config.yaml").read_text())["resolved_fit"]
    assert (resolved["photometric"], resolved["shading"], resolved["fit_headset"]) == (False, False, False)
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()


def test_a_damaged_headset_file_is_named_before_any_work(clean_rec, tmp_path):
    rec_dir = tmp_path / "rec"
    shutil.copytree(clean_rec / "hmc", rec_dir / "hmc")
    rec = RecordedHmc(rec_dir)
    ref = rec.frames()[0]
    rec.layout.hmc_headset(ref.segment, ref.frame).write_text("1 2 3\n")
    with pytest.raises(FormatError, match="_headset.txt: expected 3 rows of 4 numbers"):
        rec.check([ref])
