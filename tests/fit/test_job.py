"""`avatarfit fit` end to end: outputs, resume after an interruption, refusals, held-out
frames, headset pose recovery, sequences."""

import dataclasses
import json
import math

import numpy as np
import pytest
import torch
import yaml

from avatarfit.avatar import Avatar
from avatarfit.cli import main
from avatarfit.data import Capture
from avatarfit.fit import FitConfig, fit, score_fit
from avatarfit.observe import TargetSource
from avatarfit.fit import job as job_module
from avatarfit.fit.job import SUMMARY_KEYS, FitJob, run_fit_job
from avatarfit.fit.strips import STRIP_COLUMNS


def _strict_json(path):
    def refuse(name):
        raise AssertionError(f"{path}: non-JSON constant {name}")

    return json.loads(path.read_text(), parse_constant=refuse)


def test_cli_writes_every_output(dam_run, tiny_capture, tmp_path, capsys):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = tmp_path / "fit"
    rc = main(["fit", "--run", str(dam_run), "--capture", str(tiny_capture), "--target", "hmc", "--frames", "0:3",
               "--batch", "2", "--steps", "5", "--out", str(out), "--no-progress"])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "frontal PSNR (dB)" in printed and "tensorboard --logdir" in printed
    doc = _strict_json(out / "metrics.json")
    s = doc["summary"]
    for key in SUMMARY_KEYS:
        assert isinstance(s[key], (int, float)) and math.isfinite(s[key]), key
    assert s["frames"] == 3 and len(doc["frames"]) == 3
    names = [f"{r.segment}/{r.frame}" for r in Capture(tiny_capture).frames()[:3]]
    assert [f["name"] for f in doc["frames"]] == names
    assert s["psnr"] == pytest.approx(np.mean([f["psnr"] for f in doc["frames"]]), rel=1e-5)
    with np.load(out / "fits.npz") as fits:
        assert fits["z"].shape == (3, Avatar.load(dam_run).latent_size)
        assert list(fits["names"]) == names and fits["objective"].shape[1] == 3
        assert (fits["steps"] <= 5).all()
        for key in fits.files:
            if fits[key].dtype.kind == "f":
                assert np.isfinite(fits[key]).all(), key
        ok = ~fits["failed"]
        assert (fits["objective_steps"][ok] == fits["steps"][ok] + 1).all()
    strips = sorted((out / "strips").glob("*.png"))
    assert len(strips) == 3
    from avatarfit._io import read_png

    strip = read_png(strips[0])
    assert strip.shape[1] == 96 and strip.shape[2] > 5 * 72  # six columns at the photo's height
    acc = EventAccumulator(str(out / "tb"), size_guidance={"images": 0, "scalars": 0}).Reload()
    assert len(acc.Images("strips")) == 3
    assert len(acc.Scalars("frames/psnr")) == 3
    assert f"objective/{names[0]}" in acc.Tags()["scalars"]
    assert (out / "config.yaml").is_file() and len(STRIP_COLUMNS) == 6


def test_an_interrupted_fit_finishes_where_it_stopped(dam_run, tiny_capture, tmp_path, monkeypatch):
    job = FitJob(run=str(dam_run), capture=str(tiny_capture), target="frontal", frames="0:3", batch=2,
                 fit=FitConfig(steps=6))
    whole = run_fit_job(job, tmp_path / "whole", progress=False, log=lambda m: None)
    calls = []
    real_fit = job_module.fit

    def flaky(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_fit(*args, **kwargs)

    monkeypatch.setattr(job_module, "fit", flaky)
    with pytest.raises(KeyboardInterrupt):
        run_fit_job(job, tmp_path / "cut", progress=False, log=lambda m: None)
    assert sorted(p.name for p in (tmp_path / "cut" / "parts").iterdir()) == ["00000.npz"]
    assert not (tmp_path / "cut" / "metrics.json").exists()
    monkeypatch.setattr(job_module, "fit", real_fit)
    again = run_fit_job(job, tmp_path / "cut", progress=False, log=lambda m: None)
    assert again.fitted_now == 1
    for a, b in zip(whole.frames, again.frames):
        assert a["name"] == b["name"] and a["psnr"] == pytest.approx(b["psnr"], abs=1e-4)
    with np.load(tmp_path / "whole" / "fits.npz") as w, np.load(tmp_path / "cut" / "fits.npz") as c:
        np.testing.assert_allclose(w["z"], c["z"], atol=1e-5)


def test_a_folder_saved_before_newer_settings_existed_resumes(dam_run, tiny_capture, tmp_path):
    """A fit folder written by an earlier version (its config.yaml lacks settings added
    since, which this job leaves at their defaults) is resumed, not refused."""
    job = FitJob(run=str(dam_run), capture=str(tiny_capture), target="hmc", frames="0:2", batch=2,
                 fit=FitConfig(steps=3))
    out = tmp_path / "old"
    run_fit_job(job, out, progress=False, log=lambda m: None)
    doc = yaml.safe_load((out / "config.yaml").read_text())
    for key in ("hmc_dir", "rig"):
        del doc["job"][key]
    for key in ("photometric", "shading", "hmc_pixels", "face_margin"):
        del doc["job"]["fit"][key]
    (out / "config.yaml").write_text(yaml.safe_dump(doc))
    assert run_fit_job(job, out, progress=False, log=lambda m: None).fitted_now == 0
    other = dataclasses.replace(job, fit=dataclasses.replace(job.fit, hmc_pixels="face"))
    with pytest.raises(FileExistsError, match="differs in fit"):
        run_fit_job(other, out, progress=False, log=lambda m: None)


def test_other_settings_in_the_same_folder_are_refused(dam_run, tiny_capture, tmp_path, capsys):
    base = ["fit", "--run", str(dam_run), "--capture", str(tiny_capture), "--target", "frontal", "--frames", "0",
            "--steps", "2", "--out", str(tmp_path / "f"), "--no-progress"]
    assert main(base) == 0
    assert main(base[:-1] + ["--lr", "0.5", "--no-progress"]) == 2
    assert "differs in fit" in capsys.readouterr().err
    assert main(base + ["--lr", "0.5", "--overwrite"]) == 0
    bad = {"--frames": ("9", "outside the capture's 3 frames"), "--target": ("keypoints", "pose"),
           "--batch": ("0", "batch: expected at least 1")}
    for flag, (value, message) in bad.items():
        argv = base[:-1] + ["--out", str(tmp_path / "g"), flag, value]
        if flag == "--target":
            argv += ["--pose-noise-rot", "2"]
        assert main(argv) == 2
        assert message in capsys.readouterr().err
    assert main(["fit", "--run", str(tmp_path), "--capture", str(tiny_capture), "--target", "hmc",
                 "--out", str(tmp_path / "h")]) == 2
    assert "no avatar.pt" in capsys.readouterr().err
    assert not (tmp_path / "h").exists()


def test_the_avatar_records_its_splits_and_fits_name_them(dam_run, tiny_capture, tmp_path):
    from avatarfit.data.selection import select_frames
    from avatarfit.errors import FormatError
    from avatarfit.data.splits import frames_of_split, split_frames

    avatar = Avatar.load(dam_run)
    cap = Capture(tiny_capture)
    expected = split_frames(cap, 0.34, 0.34)  # tiny_config's fractions
    names = {k: [f"{r.segment}/{r.frame}" for r in v] for k, v in expected.items()}
    assert avatar.info["splits"] == names
    for split in ("train", "validation", "test"):
        assert frames_of_split(avatar.info, dam_run, cap, split) == expected[split]
    assert frames_of_split(avatar.info, dam_run, cap, "heldout") == expected["test"]  # heldout means test
    assert not set(names["test"]) & (set(names["train"]) | set(names["validation"]))
    with pytest.raises(ValueError, match="'test' names a split of a trained avatar's frames"):
        select_frames(cap, "test")
    old = dict(avatar.info)
    del old["splits"]
    avatar.info = old  # an avatar from before the splits
    with pytest.raises(FormatError, match="records no train/validation/test split .* retrain it"):
        frames_of_split(avatar.info, dam_run, cap, "test")


def test_a_segment_named_like_a_split_is_refused(tiny_capture, tmp_path):
    import shutil

    from avatarfit.data.selection import select_frames

    root = tmp_path / "cap"
    shutil.copytree(tiny_capture, root)
    cap = Capture(root)
    seg = cap.segments[0]
    lst = cap.layout.frame_list
    lst.write_text(lst.read_text(encoding="utf-8").replace(seg, "validation"), encoding="utf-8")
    for p in sorted(root.rglob(seg), key=lambda p: -len(p.parts)):
        p.rename(p.with_name("validation"))
    with pytest.raises(ValueError, match="segment name 'validation' is reserved for the frame splits"):
        select_frames(Capture(root), "")


def test_a_perturbed_headset_pose_is_recovered(dam_run, tiny_capture):
    """HMC views rendered by the avatar itself under the true headset pose; the fit starts
    from a perturbed pose and must find the true one, on every frame (LiP-Flow, supplementary Table 9).

    The noise is 1 degree / 1 mm per axis (0.8-1.5 degrees, 2-2.7 mm per frame here): with
    hard rasterisation only texture sliding inside the face moves the pose, and the test
    avatar's decoder is nearly random, so at 2 degrees / 2 mm some frames sit in another
    basin and stall, on one CPU and not on another. Inside the basin every frame ends below
    0.08 of its start in angle and 0.04 in position (measured on four noise draws, 12
    frames); the test asks for 0.3.
    Early stopping is off (patience = steps): the objective oscillates on the way, and the
    best pose seen is kept.
    """
    from avatarfit.fit.optimize import _predict

    avatar = Avatar.load(dam_run)
    cap = Capture(tiny_capture)
    noisy = TargetSource(cap).build("hmc", cap.frames()[:2], pose_noise_rot=1.0, pose_noise_trans=1.0, seed=1)
    truth = noisy.truth
    exact = dataclasses.replace(noisy, headset_R=truth.headset_R, headset_t=truth.headset_t)
    with torch.no_grad():
        z0 = avatar.prior_mean(exact.observation, exact.batch)[0]
        views, _ = _predict(avatar, exact, z0)
    target = dataclasses.replace(noisy, views=views)  # every pixel scored: outlines pull the pose too
    # The code is held near the prior (small lr, strong prior) so that it cannot explain the
    # misalignment instead of the pose.
    moved = score_fit(avatar, target, fit(avatar, target, FitConfig(steps=200, patience=200, lr=0.01,
                                                                    lambda_latent=1.0, fit_headset=True)))
    m = moved.metrics
    assert (m["headset_mm_init"] > 0.5).all() and (m["headset_deg_init"] > 0.5).all(), m
    for i, name in enumerate(moved.names):
        assert m["headset_mm"][i] < 0.3 * m["headset_mm_init"][i], (name, m)
        assert m["headset_deg"][i] < 0.3 * m["headset_deg_init"][i], (name, m)
    # pose not fitted: the error stays the noise
    kept = score_fit(avatar, target, fit(avatar, target, FitConfig(steps=5)))
    torch.testing.assert_close(kept.metrics["headset_mm"], kept.metrics["headset_mm_init"])


def test_pose_noise_of_a_frame_does_not_depend_on_the_batch(tiny_capture):
    cap = Capture(tiny_capture)
    source = TargetSource(cap)
    both = source.build("hmc", cap.frames()[:2], pose_noise_rot=2.0, seed=4)
    alone = source.build("hmc", cap.frames()[1:2], pose_noise_rot=2.0, seed=4)
    torch.testing.assert_close(both.headset_R[1:], alone.headset_R)
    other = source.build("hmc", cap.frames()[1:2], pose_noise_rot=2.0, seed=5)
    assert not torch.equal(other.headset_R, alone.headset_R)


def test_sequence_mode_warm_starts_and_smoothness_lowers_jitter(dam_run, tiny_capture, tmp_path):
    """Sequence mode: every frame starts from the previous frame's fitted code (also across
    the batch boundary, 2 + 1 frames here), the first from the prior's mean; the reported
    jitter is that of the fitted meshes; the smoothness term lowers it. A small lr, so that
    every frame's first steps improve its objective whatever the CPU (with the default
    lr of 0.1, the nearly untrained test avatar's fits may not improve at all in a few steps)."""
    avatar = Avatar.load(dam_run)

    def run(name, smoothness):
        job = FitJob(run=str(dam_run), capture=str(tiny_capture), target="frontal", frames="", batch=2, sequence=True,
                     fit=FitConfig(steps=10, lr=0.01, smoothness=smoothness))
        report = run_fit_job(job, tmp_path / name, progress=False, log=lambda m: None)
        with np.load(tmp_path / name / "fits.npz") as fits:
            return report.summary, {k: fits[k] for k in fits.files}

    free, fits = run("free", 0.0)
    assert free["frames"] == 3
    np.testing.assert_array_equal(fits["z_start"][1:], fits["z"][:-1])
    with torch.no_grad():
        z0 = avatar.model.prior.mean(avatar.model.prior.params(batch=1))
        verts = avatar.geometry(torch.from_numpy(fits["z"]))
    np.testing.assert_allclose(fits["z_start"][0], z0[0].numpy(), atol=1e-6)
    # The "_init" columns are the prior mean's for every frame, not the warm start's.
    np.testing.assert_allclose(fits["z_init"], z0.expand(3, -1).numpy(), atol=1e-6)
    from avatarfit.data.capture import Capture
    from avatarfit.metrics import geometry_error
    cap = Capture(tiny_capture)
    truth = torch.stack([cap.vertices(*str(n).split("/")) for n in fits["names"]])
    with torch.no_grad():
        prior_geom = geometry_error(avatar.geometry(z0).expand_as(truth), truth)
    np.testing.assert_allclose(fits["metric_geom_mm_init"], prior_geom.numpy(), rtol=1e-4)
    assert not np.array_equal(fits["z"], fits["z_start"])  # the fits moved
    assert free["jitter_mm"] == pytest.approx(float((verts[1:] - verts[:-1]).norm(dim=-1).mean()), rel=1e-5)
    assert free["jitter_mm"] > 0 and free["jitter_mm_truth"] > 0
    smooth, _ = run("smooth", 0.1)
    assert smooth["jitter_mm_truth"] == free["jitter_mm_truth"]
    # Measured: 0.001 against 0.023 mm (the first frame, fitted without the term, is the same).
    assert smooth["jitter_mm"] < 0.5 * free["jitter_mm"], (smooth, free)


def test_sequence_mode_warm_starts_each_segment_from_its_own_frames(dam_run, tmp_path):
    """Two segments of 3 frames, batch 2: the segments' first two frames are fitted in
    lockstep in one batch, their third frames in the next (warm-started from the job's
    record of each segment's last code). Every frame starts from the previous frame of its
    own segment, each segment's first frame from the prior's mean (never from the other
    segment's codes), and the jitter is the mean of the segments' own."""
    from avatarfit.fit.sequence import jitter
    from avatarfit.synth.generate import generate_capture
    from tests.conftest import TINY

    capture = generate_capture(tmp_path / "cap", dataclasses.replace(TINY, segments=2, frames=3), progress=False)
    job = FitJob(run=str(dam_run), capture=str(capture), target="frontal", frames="", batch=2, sequence=True,
                 fit=FitConfig(steps=3, lr=0.01))
    report = run_fit_job(job, tmp_path / "fit", progress=False, log=lambda m: None)
    assert sorted(p.name for p in (tmp_path / "fit" / "parts").iterdir()) == ["00000.npz", "00001.npz"]
    avatar = Avatar.load(dam_run)
    with np.load(tmp_path / "fit" / "fits.npz") as fits:
        names, z, z_start, z_init = (fits[k] for k in ("names", "z", "z_start", "z_init"))
    assert [str(n) for n in names] == [f"{r.segment}/{r.frame}" for r in Capture(capture).frames()]  # in order
    segments = [str(n).split("/")[0] for n in names]
    assert len(set(segments)) == 2 and len(names) == 6
    per_segment = []
    for seg in dict.fromkeys(segments):
        rows = [i for i, s in enumerate(segments) if s == seg]
        np.testing.assert_array_equal(z_start[rows[0]], z_init[rows[0]])
        for a, b in zip(rows[:-1], rows[1:]):
            np.testing.assert_array_equal(z_start[b], z[a])
        with torch.no_grad():
            per_segment.append(jitter(avatar.geometry(torch.from_numpy(z[rows]))))
    assert not np.array_equal(z_start[3], z[2])  # the second segment does not start where the first ended
    assert report.summary["jitter_mm"] == pytest.approx(np.mean(per_segment), rel=1e-5)


def test_a_frame_whose_objective_turns_nan_is_stopped_and_nothing_nan_is_written(dam_run, tiny_capture, tmp_path,
                                                                                   monkeypatch):
    from avatarfit.fit import optimize

    real = optimize._data_term
    calls = []

    victim = Capture(tiny_capture).frames()[1]
    victim = f"{victim.segment}/{victim.frame}"

    def poisoned(avatar, target, pred, scored=None):
        d = real(avatar, target, pred, scored)
        calls.append(1)
        if len(calls) > 3 and victim in target.names:  # frame 1 turns NaN at the fourth evaluation
            d = d.clone()
            d[target.names.index(victim)] = float("nan")
        return d

    monkeypatch.setattr(optimize, "_data_term", poisoned)
    job = FitJob(run=str(dam_run), capture=str(tiny_capture), target="frontal", frames="0:2", batch=2,
                 fit=FitConfig(steps=8, lambda_latent=0.0))
    with pytest.warns(RuntimeWarning, match=r"became NaN or Inf for \['[^']+'\] at step 3"):
        report = run_fit_job(job, tmp_path / "nan", progress=False, log=lambda m: None)
    assert [f["failed"] for f in report.frames] == [False, True]
    assert report.frames[1]["steps"] == 3 and report.summary["failed"] == 1
    with np.load(tmp_path / "nan" / "fits.npz") as fits:
        for key in fits.files:
            if fits[key].dtype.kind == "f":
                assert np.isfinite(fits[key]).all(), key
        assert list(fits["failed"]) == [False, True]
    _strict_json(tmp_path / "nan" / "metrics.json")


@pytest.mark.parametrize("kind", ["masked", "keypoints"])
def test_masked_and_keypoint_fits_write_their_strips(dam_run, tiny_capture, tmp_path, kind):
    from avatarfit._io import read_png

    job = FitJob(run=str(dam_run), capture=str(tiny_capture), target=kind, frames="0", fit=FitConfig(steps=2))
    report = run_fit_job(job, tmp_path / kind, progress=False, log=lambda m: None)
    strip = read_png(next((tmp_path / kind / "strips").glob("*.png")))
    assert strip.shape[1] == 96 and strip.shape[2] == 6 * 72 + 5 * 2  # six photo-sized columns
    if kind == "keypoints":
        # two steps bring the keypoints closer (no rasterisation in a keypoint fit; measured 0.0652 -> 0.0651 px)
        assert report.summary["kpt_px"] < report.summary["kpt_px_init"], report.summary
        # the target column shows green keypoints over the darkened photo
        target_col = strip[:, :, :72]
        assert bool(((target_col[1] > 0.9) & (target_col[0] < 0.2)).any())


def test_spread_picks_evenly_with_both_ends():
    from avatarfit.data.splits import spread

    refs = list(range(16))
    assert spread(refs, 4) == [0, 5, 10, 15]
    assert spread(refs, 1) == [0]
    assert spread(refs, 40) == refs


def test_heldout_count_is_checked():
    import pytest

    from avatarfit.fit.job import FitJob

    with pytest.raises(ValueError, match="heldout:N"):
        FitJob(run="r", capture="c", frames="heldout:0")
    with pytest.raises(ValueError, match="grid"):
        FitJob(run="r", capture="c", grid=((), (0.1,)))


def test_bad_cli_input_is_one_named_line_and_loses_nothing(dam_run, tiny_capture, tmp_path, capsys):
    """Every refusal: exit status 2, one line on stderr naming the argument or file, no
    traceback; what the folder held before is still there."""
    out = tmp_path / "f"
    base = ["fit", "--run", str(dam_run), "--capture", str(tiny_capture), "--target", "frontal", "--frames", "0",
            "--steps", "2", "--no-progress"]
    assert main(base + ["--out", str(out)]) == 0
    capsys.readouterr()
    kept = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}

    def refused(argv, message):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err and err.count("\n") == 1, err

    other = ["--out", str(tmp_path / "g")]
    refused(base + other + ["--device", "cuda:x"], "device: expected auto, cpu, cuda or cuda:N")
    refused(base + other + ["--device", "cuda:999"], "device: cuda:999 asked for")
    for flag in ("--lr", "--lambda-latent"):
        for value in ("nan", "inf"):
            refused(base + other + [flag, value], f"{flag[2:].replace('-', '_')}: expected a finite number")
    refused(base + other + ["--sequence", "--smoothness", "nan"], "smoothness: expected a finite number")
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    refused(base + ["--out", str(blocker / "sub")], f"--out {blocker / 'sub'}: cannot write there")

    config = out / "config.yaml"
    text = config.read_text()
    config.write_text("job: [unclosed\n")
    refused(base + ["--out", str(out)], f"{config}: not readable YAML")
    config.write_text(text)
    part = out / "parts" / "00000.npz"
    good = part.read_bytes()
    with np.load(part) as data:
        arrays = {k: data[k] for k in data.files if k != "z"}
    with open(part, "wb") as fh:
        np.savez(fh, **arrays)
    refused(base + ["--out", str(out)], f"{part}: not a complete partial result (lacks z)")
    part.write_bytes(good)
    assert {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()} == kept


def test_a_damaged_search_file_is_named(dam_run, tiny_capture, tmp_path, capsys):
    out = tmp_path / "s"
    argv = ["fit", "--run", str(dam_run), "--capture", str(tiny_capture), "--target", "frontal", "--frames", "0",
            "--steps", "2", "--no-progress", "--search", "--out", str(out)]
    (out).mkdir()
    job = FitJob(run=str(dam_run), capture=str(tiny_capture), target="frontal", frames="0", search=True,
                 fit=FitConfig(steps=2))
    (out / "config.yaml").write_text(__import__("yaml").safe_dump({"job": job_module.job_dict(job)}))
    (out / "search.json").write_text(json.dumps({"lr": 0.1}))
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert f"{out / 'search.json'}: expected the chosen 'lr' (> 0) and 'lambda_latent' (>= 0)" in err


def test_a_capture_of_another_subject_is_refused(dam_run, tiny_capture, tmp_path):
    """Same topology (same vertex count), another identity: refused by name; the same
    subject in another capture (other performances) is accepted."""
    from avatarfit.synth.generate import generate_capture
    from tests.conftest import TINY

    other = generate_capture(tmp_path / "other", dataclasses.replace(TINY, seed=TINY.seed + 1, frames=1),
                             progress=False)
    same = generate_capture(tmp_path / "same", dataclasses.replace(TINY, frames=2, segments=2), progress=False)
    job = FitJob(run=str(dam_run), capture=str(tmp_path / "other"), target="frontal", frames="0",
                 fit=FitConfig(steps=1))
    with pytest.raises(ValueError, match=r"another subject than the avatar .* mm from the avatar's at the median"):
        run_fit_job(job, tmp_path / "f1", progress=False)
    assert not (tmp_path / "f1").exists()
    report = run_fit_job(dataclasses.replace(job, capture=str(tmp_path / "same")), tmp_path / "f2", progress=False)
    assert report.summary["frames"] == 1
    del other, same


def test_running_out_of_device_memory_names_the_batch(dam_run, tiny_capture, tmp_path, monkeypatch, capsys):
    def oom(*args, **kwargs):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(job_module, "fit", oom)
    argv = ["fit", "--run", str(dam_run), "--capture", str(tiny_capture), "--target", "frontal", "--frames", "0",
            "--batch", "64", "--no-progress", "--out", str(tmp_path / "f")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "the GPU ran out of memory (the search and every batch fit 64 frames together); lower --batch (now 64)" \
        in err and "Traceback" not in err


def test_a_job_records_its_resolved_latent_weight():
    """The default lambda_L is resolved in the job itself, so config.yaml holds the number
    (as folders written before the per-kind default did) and giving it explicitly is the
    same job."""
    implicit = FitJob(run="r", capture="c", target="hmc")
    assert implicit.fit.lambda_latent == 0.01
    assert job_module.job_dict(implicit) == job_module.job_dict(
        FitJob(run="r", capture="c", target="hmc", fit=FitConfig(lambda_latent=0.01)))
    assert FitJob(run="r", capture="c", target="masked").fit.lambda_latent == 0.001
