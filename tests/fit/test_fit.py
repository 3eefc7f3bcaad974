"""Fitting: recovering a known code, batch independence, early stopping, bad input."""

import dataclasses

import pytest
import torch

from avatarfit.avatar import Avatar
from avatarfit.data import Capture
from avatarfit.errors import ShapeError
from avatarfit.fit import FitConfig, FrontalTarget, HMCTarget, KeypointTarget, TargetSource, fit, search_hyperparameters
from avatarfit.fit.optimize import face_mask, frontal_metrics


@pytest.fixture(scope="module")
def setup(dam_run, tiny_capture):
    avatar = Avatar.load(dam_run)
    cap = Capture(tiny_capture)
    source = TargetSource(cap)
    return avatar, source, cap.frames()[:2]


def _synthetic_target(avatar, source, refs, seed=0):
    """The avatar's own rendering of known codes z*, as a frontal target."""
    truth = source.truth(refs)
    g = torch.Generator().manual_seed(seed)
    z_star = torch.randn(len(refs), avatar.latent, generator=g)
    with torch.no_grad():
        image = avatar.render(z_star, truth.K, truth.R, truth.t, truth.image_size, truth.head_R,
                              truth.head_t).image[:, 0]
    return z_star, FrontalTarget(image=image, K=truth.K, R=truth.R, t=truth.t, head_R=truth.head_R,
                                 head_t=truth.head_t, names=truth.names)


def test_fitting_recovers_a_known_code(setup):
    avatar, source, refs = setup
    z_star, target = _synthetic_target(avatar, source, refs)
    # Rasterised every step: the test avatar's decoder is nearly random, its texture jumps
    # at UV seams, and pixel centres on seam edges change face with motions far below a
    # pixel; with faces kept between steps such a jump lands at every new rasterisation.
    # (Trained avatars fit alike either way: benchmarks/bench_fit.py.) The same jumps make
    # plateaus of a few dozen steps: patience 50 lets the fit cross them.
    result = fit(avatar, target, FitConfig(lr=0.05, lambda_latent=0.0, steps=150, patience=50, raster_every=1))
    before = float(result.objective[0].mean())
    after = float(result.data_term.mean())
    assert after < before / 10, (before, after)
    err0 = (result.z_init - z_star).norm(dim=1)
    err1 = (result.z - z_star).norm(dim=1)
    assert bool((err1 < err0).all()), (err0, err1)
    assert bool((result.steps > 0).all()) and bool(torch.isfinite(result.z).all())


def test_a_frame_fitted_alone_equals_it_in_a_batch(setup):
    avatar, source, refs = setup
    _, target = _synthetic_target(avatar, source, refs, seed=1)
    config = FitConfig(lr=0.05, lambda_latent=0.01, steps=30, patience=5)
    both = fit(avatar, target, config)
    alone = fit(avatar, target.select([1]), config)
    torch.testing.assert_close(alone.z[0], both.z[1], atol=1e-4, rtol=1e-4)
    assert int(alone.steps[0]) == int(both.steps[1])


def test_early_stopping_and_the_search_picks_the_better_setting(setup):
    avatar, source, refs = setup
    _, target = _synthetic_target(avatar, source, refs, seed=2)
    stopped = fit(avatar, target, FitConfig(lr=1e-6, lambda_latent=0.0, steps=200, patience=3, tol=1e-2))
    assert int(stopped.steps.max()) <= 3  # no relative improvement of 1% with a tiny step: stops at once
    found = search_hyperparameters(avatar, target, grid=((1e-6, 0.05), (0.0,)), base=FitConfig(steps=40))
    assert (found.lr, found.criterion) == (0.05, "data")


def test_bad_input_is_refused_before_fitting(setup, dam_run):
    avatar, source, refs = setup
    _, target = _synthetic_target(avatar, source, refs)
    with pytest.raises(ShapeError, match=r"image: expected finite values, found 1 NaN or Inf"):
        bad = target.image.clone()
        bad[0, 0, 0, 0] = float("nan")
        dataclasses.replace(target, image=bad)
    with pytest.raises(ShapeError, match=r"principal points .* inside the 48x36 images"):
        dataclasses.replace(target, image=target.image[..., ::2, ::2])
    hmc = source.build("hmc", refs)
    with pytest.raises(ShapeError, match=r"views: expected 3 HMC views"):
        dataclasses.replace(hmc, views=hmc.views[:, :2])
    assert hmc.valid is None and hmc.truth.hmc_masks is not None  # fitting sees no face mask
    with pytest.raises(ShapeError, match=r"valid: empty mask"):
        dataclasses.replace(hmc, valid=torch.zeros_like(hmc.truth.hmc_masks))
    with pytest.raises(ShapeError, match=r"valid: expected shape"):
        dataclasses.replace(hmc, valid=hmc.truth.hmc_masks[..., :-1])
    kp = source.build("keypoints", refs)
    with pytest.raises(ShapeError, match=r"visible: expected shape \(2, 274\)"):
        dataclasses.replace(kp, visible=kp.visible[:, :273])
    with pytest.raises(ShapeError, match=r"visible keypoints lie outside"):
        dataclasses.replace(kp, points=kp.points + 1000.0)
    with pytest.raises(ValueError, match=r"fit_headset: only HMC targets"):
        fit(avatar, target, FitConfig(fit_headset=True))
    assert isinstance(hmc, HMCTarget) and isinstance(kp, KeypointTarget)


def test_a_conditional_avatar_needs_its_kind_of_observation(tiny_capture, tmp_path):
    from avatarfit.train import train
    from tests.train.conftest import tiny_config

    train(tiny_config("lip_flow", "hmc", steps=2), tiny_capture, tmp_path / "lip", progress=False)
    avatar = Avatar.load(tmp_path / "lip")
    cap = Capture(tiny_capture)
    refs = cap.frames()[:2]
    plain = TargetSource(cap).build("frontal", refs)
    with pytest.raises(ValueError, match=r"HMC-conditioned; its prior needs HMC views .* carries none"):
        fit(avatar, plain)
    kpt = TargetSource(cap, condition="kpt").build("frontal", refs)
    with pytest.raises(ValueError, match=r"needs HMC views .* carries keypoints"):
        fit(avatar, kpt)
    good = TargetSource(cap, condition="hmc").build("hmc", refs)
    result = fit(avatar, good, FitConfig(steps=3, fit_headset=True))
    assert result.headset_R.shape == (2, 3, 3) and "geom_mm" in result.metrics


def test_face_pixel_metrics_ignore_the_photo_outside_the_tracked_mesh(setup):
    avatar, source, refs = setup
    truth = source.truth(refs)
    z = torch.zeros(len(refs), avatar.latent)
    scores, img = frontal_metrics(avatar, truth, z)
    assert set(scores) == {"psnr", "ssim", "l1", "psnr_face", "ssim_face", "geom_mm", "geom_mm_mean_mesh"}
    # z = 0 decodes about the mean mesh, so it explains about none of the motion.
    assert bool((scores["geom_mm_mean_mesh"] > 0).all())
    face = face_mask(avatar, truth)
    assert 0 < float(face.mean()) < 1
    # Another background in the photo: whole-image scores change, face-pixel PSNR does not.
    other = dataclasses.replace(truth, photo=torch.where(face > 0, truth.photo, 1 - truth.photo))
    changed, _ = frontal_metrics(avatar, other, z)
    torch.testing.assert_close(changed["psnr_face"], scores["psnr_face"])
    assert bool((changed["psnr"] < scores["psnr"] - 1).all())


def test_hmc_targets_score_every_pixel_and_report_outline_spill(setup):
    """No ground-truth face mask reaches the data term: a wrong background pixel costs as
    much as a wrong face pixel (before issue 19 only the face mask was scored); a user's
    ``valid`` mask restricts the scoring; the fit reports spill outside the true face."""
    from avatarfit.fit.optimize import _data_term

    avatar, source, refs = setup
    target = source.build("hmc", refs)
    outside = ~(target.truth.hmc_masks > 0)
    assert target.valid is None and bool(outside.any())
    assert float(_data_term(avatar, target, target.views).abs().max()) == 0.0
    wrong = target.views.clone()
    wrong[outside] = 0.5  # the face spilling over the background
    assert bool((_data_term(avatar, target, wrong) > 0).all())
    face_only = dataclasses.replace(target, valid=target.truth.hmc_masks)
    assert float(_data_term(avatar, face_only, wrong).abs().max()) == 0.0
    result = fit(avatar, target, FitConfig(steps=3, patience=3))
    m = result.metrics
    for key in ("hmc_spill_px", "hmc_psnr", "hmc_psnr_face"):
        assert m[key].shape == (len(refs),) and m[f"{key}_init"].shape == (len(refs),)
    assert bool((m["hmc_spill_px"] >= 0).all()) and bool(torch.isfinite(m["hmc_psnr"]).all())
