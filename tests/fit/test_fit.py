"""Fitting: recovering a known code, batch independence, early stopping, bad input."""

import dataclasses

import pytest
import torch

from avatarfit.avatar import Avatar
from avatarfit.data import Capture
from avatarfit.errors import DTypeError, InvalidValueError, ShapeError
from avatarfit.fit import FitConfig, fit, search_hyperparameters
from avatarfit.fit.score import face_mask, frontal_metrics, score_fit
from avatarfit.observe import FrontalTarget, HMCTarget, KeypointTarget, TargetSource


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
    z_star = torch.randn(len(refs), avatar.latent_size, generator=g)
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


@pytest.mark.parametrize("raster_every", [1, 8])  # kept faces: each remaining frame keeps its own when one stops
def test_a_frame_fitted_alone_equals_it_in_a_batch(setup, raster_every):
    avatar, source, refs = setup
    _, target = _synthetic_target(avatar, source, refs, seed=1)
    config = FitConfig(lr=0.05, lambda_latent=0.01, steps=30, patience=5, raster_every=raster_every)
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


def test_per_frame_rates_and_weights_fit_each_frame_as_its_own_setting_would(setup):
    avatar, source, refs = setup
    _, target = _synthetic_target(avatar, source, refs, seed=3)
    config = FitConfig(steps=25, patience=5, raster_every=1)
    rows = target.select([0, 1, 0, 1])
    both = fit(avatar, rows, config, frame_lr=torch.tensor([0.05, 0.05, 0.01, 0.01]),
               frame_lambda=torch.tensor([0.0, 0.0, 0.1, 0.1]))
    for k, (lr, lam) in enumerate(((0.05, 0.0), (0.01, 0.1))):
        alone = fit(avatar, target, dataclasses.replace(config, lr=lr, lambda_latent=lam))
        torch.testing.assert_close(both.z[2 * k: 2 * k + 2], alone.z, atol=1e-4, rtol=1e-4)
        assert both.steps[2 * k: 2 * k + 2].tolist() == alone.steps.tolist()
    assert not torch.allclose(both.z[0], both.z[2], atol=1e-3)  # the settings did differ
    with pytest.raises(ShapeError, match=r"frame_lr: expected one value per frame, shape \(2,\), got \(3,\)"):
        fit(avatar, target, config, frame_lr=torch.ones(3))
    with pytest.raises(ValueError, match=r"frame_lambda: expected finite values >= 0"):
        fit(avatar, target, config, frame_lambda=torch.tensor([0.1, -1.0]))


def test_the_batched_search_scores_every_pair_as_the_serial_one(setup):
    avatar, source, refs = setup
    _, target = _synthetic_target(avatar, source, refs, seed=4)
    # rasterised every step: no kept face that a rounding difference could flip on another CPU
    grid, base = ((0.01, 0.05), (0.0, 0.1)), FitConfig(steps=20, patience=5, raster_every=1)
    cells = []
    found = search_hyperparameters(avatar, target, grid=grid, base=base, progress=lambda *c: cells.append(c))
    serial = search_hyperparameters(avatar, target, grid=grid, base=base, max_batch=target.batch)
    assert [c[:2] for c in found.table] == [(0.01, 0.0), (0.01, 0.1), (0.05, 0.0), (0.05, 0.1)]
    assert tuple(cells) == found.table
    for a, b in zip(found.table, serial.table):
        assert a[2] == pytest.approx(b[2], rel=1e-3), (found.table, serial.table)
    scores = sorted(c[2] for c in serial.table)  # data term: lower is better
    if scores[1] - scores[0] > 1e-2 * abs(scores[0]):  # a clear winner is chosen by both
        assert (found.lr, found.lambda_latent) == (serial.lr, serial.lambda_latent)
    assert len({round(c[2], 6) for c in found.table}) > 1  # the pairs scored differently
    with pytest.raises(ValueError, match=r"max_batch: expected a number of frames >= 1 or None, got 0"):
        search_hyperparameters(avatar, target, grid=grid, base=base, max_batch=0)


def test_bad_input_is_refused_before_fitting(setup, dam_run):
    avatar, source, refs = setup
    _, target = _synthetic_target(avatar, source, refs)
    with pytest.raises(InvalidValueError, match=r"image: expected finite values, found 1 NaN or Inf"):
        bad = target.image.clone()
        bad[0, 0, 0, 0] = float("nan")
        dataclasses.replace(target, image=bad)
    with pytest.raises(InvalidValueError, match=r"principal points .* inside the 48x36 images"):
        dataclasses.replace(target, image=target.image[..., ::2, ::2])
    hmc = source.build("hmc", refs)
    with pytest.raises(ShapeError, match=r"views: expected 3 HMC views"):
        dataclasses.replace(hmc, views=hmc.views[:, :2])
    assert hmc.valid is None and hmc.truth.hmc_masks is not None  # fitting sees no face mask
    with pytest.raises(InvalidValueError, match=r"valid: empty mask"):
        dataclasses.replace(hmc, valid=torch.zeros_like(hmc.truth.hmc_masks))
    with pytest.raises(ShapeError, match=r"valid: expected shape"):
        dataclasses.replace(hmc, valid=hmc.truth.hmc_masks[..., :-1])
    kp = source.build("keypoints", refs)
    with pytest.raises(ShapeError, match=r"visible: expected shape \(2, 274\)"):
        dataclasses.replace(kp, visible=kp.visible[:, :273])
    with pytest.raises(InvalidValueError, match=r"visible keypoints lie outside"):
        dataclasses.replace(kp, points=kp.points + 1000.0)
    with pytest.raises(DTypeError, match=r"visible: expected a bool tensor, got torch.float32"):
        dataclasses.replace(kp, visible=kp.visible.float())
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
    result = score_fit(avatar, good, fit(avatar, good, FitConfig(steps=3, fit_headset=True)))
    assert result.headset_R.shape == (2, 3, 3) and "geom_mm" in result.metrics


def test_face_pixel_metrics_ignore_the_photo_outside_the_tracked_mesh(setup):
    avatar, source, refs = setup
    truth = source.truth(refs)
    z = torch.zeros(len(refs), avatar.latent_size)
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
    much as a wrong face pixel (before antialiased outlines only the face mask was scored); a user's
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
    result = score_fit(avatar, target, fit(avatar, target, FitConfig(steps=3, patience=3)))
    m = result.metrics
    for key in ("hmc_spill_px", "hmc_psnr", "hmc_psnr_face"):
        assert m[key].shape == (len(refs),) and m[f"{key}_init"].shape == (len(refs),)
    # The fit explains its views better than its start (measured: +0.03 dB in 3 steps).
    assert bool((m["hmc_psnr"] > m["hmc_psnr_init"]).all()), m
    # Spill counts the fitted mesh's pixels outside the true face: none for the tracked
    # mesh itself, some for the prior's mean mesh here (measured 27 and 6 pixels).
    from avatarfit.fit.score import hmc_metrics

    tracked = dataclasses.replace(result, verts=target.truth.verts)
    assert float(hmc_metrics(avatar, target, tracked, result.render_init)["hmc_spill_px"].abs().max()) == 0.0
    assert bool((m["hmc_spill_px_init"] > 0).any()) and bool((m["hmc_spill_px"] >= 0).all())


@pytest.mark.parametrize("key", ["lr", "lambda_latent", "smoothness", "tol", "lr_rotation", "lr_translation",
                                 "raster_shift"])
@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_non_finite_settings_are_refused_by_name(key, value):
    with pytest.raises(ValueError, match=rf"{key}: expected a finite number, got {value}"):
        FitConfig(**{key: value})


def test_lambda_latent_defaults_per_target_kind_are_the_clis():
    """One default per target kind, used by the API and named in ``avatarfit fit --help``."""
    from avatarfit.cli import build_parser
    from avatarfit.fit.optimize import DEFAULT_LAMBDA_LATENT

    assert FitConfig().lambda_latent is None
    assert FitConfig().for_target("hmc").lambda_latent == DEFAULT_LAMBDA_LATENT["hmc"] == 0.01
    assert FitConfig(lambda_latent=0.5).for_target("hmc").lambda_latent == 0.5
    fit_parser = build_parser()._subparsers._group_actions[0].choices["fit"]
    help_text = " ".join(fit_parser.format_help().split())
    for kind, value in DEFAULT_LAMBDA_LATENT.items():
        assert f"{value:g} for {kind}" in help_text


def test_fit_leaves_the_avatar_as_it_found_it(setup):
    avatar, source, refs = setup
    _, target = _synthetic_target(avatar, source, refs)
    avatar.train()
    flags = [p.requires_grad for p in avatar.parameters()]
    assert any(flags)
    try:
        fit(avatar, target, FitConfig(steps=2))
        assert avatar.training and [p.requires_grad for p in avatar.parameters()] == flags
    finally:
        avatar.eval()


def test_codes_of_the_wrong_shape_or_a_target_elsewhere_are_refused(setup):
    avatar, source, refs = setup
    _, target = _synthetic_target(avatar, source, refs)
    one = torch.zeros(1, avatar.latent_size)  # would pull both frames towards one code
    with pytest.raises(ShapeError, match=r"previous: expected one code per frame, shape \(2, \d+\), got \(1, \d+\)"):
        fit(avatar, target, FitConfig(smoothness=0.1), previous=one)
    with pytest.raises(ShapeError, match=r"init: expected one code per frame"):
        fit(avatar, target, init=one)
    with pytest.raises(ValueError, match=r"init: expected finite codes"):
        fit(avatar, target, init=torch.full((2, avatar.latent_size), float("nan")))
    import copy
    elsewhere = copy.copy(target)  # as if on another GPU (a meta tensor skips the target's own checks)
    object.__setattr__(elsewhere, "image", target.image.to("meta"))
    with pytest.raises(ValueError, match=r"target: its tensors are on meta, the avatar on cpu"):
        fit(avatar, elsewhere)


def test_a_search_in_which_every_setting_fails_says_so(setup, monkeypatch):
    from avatarfit.errors import FitFailedError
    from avatarfit.fit import optimize

    avatar, source, refs = setup
    _, target = _synthetic_target(avatar, source, refs)
    real = optimize._data_term
    monkeypatch.setattr(optimize, "_data_term", lambda *a: real(*a) * float("nan"))
    with pytest.warns(RuntimeWarning), pytest.raises(FitFailedError, match=r"every setting of the grid .* failed"):
        search_hyperparameters(avatar, target, grid=((0.1,), (0.0, 0.01)), base=FitConfig(steps=3))


def _perturb(target, how: str):
    """A target broken in one way (``dataclasses.replace`` runs the target's own checks)."""
    def image_field(t):
        return "views" if isinstance(t, HMCTarget) else ("points" if isinstance(t, KeypointTarget) else "image")

    name = image_field(target)
    x = getattr(target, name)
    if how == "none":
        return target
    if how == "nan_pixel":
        bad = x.clone()
        bad.view(-1)[0] = float("nan")
        return dataclasses.replace(target, **{name: bad})
    if how == "wrong_shape":
        return dataclasses.replace(target, **{name: x[..., :-1]})
    if how == "empty_mask":
        if isinstance(target, HMCTarget):
            return dataclasses.replace(target, valid=torch.zeros_like(target.views))
        if isinstance(target, KeypointTarget):
            return dataclasses.replace(target, visible=torch.zeros_like(target.visible))
        if hasattr(target, "mask"):
            return dataclasses.replace(target, mask=torch.zeros_like(target.mask))
        return target
    if how == "shifted_camera":  # the face leaves the image (or the keypoints their camera)
        if isinstance(target, HMCTarget):
            return dataclasses.replace(target, rig_t=target.rig_t + torch.tensor([500.0, 0.0, 0.0]))
        return dataclasses.replace(target, t=target.t + torch.tensor([500.0, 0.0, 0.0]))
    raise AssertionError(how)


def test_fit_returns_finite_results_or_a_named_value_error(setup):
    """Property (hypothesis): over fit settings (finite or not) and targets perturbed in one
    way, ``fit`` either returns codes and metrics without NaN or raises ``ValueError``
    (the library's named errors are ValueErrors); never another exception."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    avatar, source, refs = setup
    targets = {kind: source.build(kind, refs) for kind in ("frontal", "masked", "hmc", "keypoints")}
    finite = st.floats(1e-4, 2.0)
    number = st.one_of(finite, finite, finite, st.sampled_from([0.0, -1.0, float("nan"), float("inf")]))

    @settings(max_examples=80, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
    @given(kind=st.sampled_from(sorted(targets)), lr=number, lam=number, smooth=st.sampled_from([0.0, 0.1]),
           steps=st.integers(1, 3), headset=st.booleans(), photometric=st.booleans(),
           pixels=st.sampled_from(["all", "face"]),
           how=st.sampled_from(["none", "nan_pixel", "wrong_shape", "empty_mask", "shifted_camera"]))
    def check(kind, lr, lam, smooth, steps, headset, photometric, pixels, how):
        try:
            hmc = kind == "hmc"  # the photometric model and face pixels are settings of HMC fits
            config = FitConfig(lr=lr, lambda_latent=lam, smoothness=smooth, steps=steps, fit_headset=headset,
                               photometric=photometric and hmc, hmc_pixels=pixels if hmc else "all")
            target = _perturb(targets[kind], how)
            previous = torch.zeros(target.batch, avatar.latent_size) if smooth else None
            result = score_fit(avatar, target, fit(avatar, target, config, previous=previous))
        except ValueError:
            return
        assert bool(torch.isfinite(result.z).all())
        for key, value in result.metrics.items():
            assert not bool(torch.isnan(value).any()), (key, kind, how)

    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # frames whose objective diverges are reported, and kept
        check()
