import dataclasses
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from avatarfit.data import Capture
from avatarfit.models import VARIANTS, build_model
from avatarfit.train import train
from avatarfit.train.checkpoint import config_of, load_checkpoint
from avatarfit.train.data import TrainingData
from avatarfit.train.objective import Objective
from tests.conftest import TINY
from tests.train.conftest import tiny_config, tiny_sets

CASES = [(v, c) for v in VARIANTS for c in ("hmc", "kpt") if c == "hmc" or VARIANTS[v].conditional]


def _objective(config, capture):
    with torch.random.fork_rng():
        torch.manual_seed(config.train.seed)
        model = build_model(config.model, Capture(capture).topology.num_verts)
    data = TrainingData(Capture(capture), config, model.conditional)
    return Objective(model, data, config), data


@pytest.mark.parametrize("variant, condition", CASES)
def test_every_variant_trains_and_its_loss_falls(variant, condition, tiny_capture, dam_run, tmp_path):
    extra = {"pretrained": str(dam_run)} if VARIANTS[variant].pretrained else {}
    config = tiny_config(variant, condition, steps=16, **extra)
    out = tmp_path / "run"
    result = train(config, tiny_capture, out, progress=False)
    assert result.steps == 16 and (out / "best.pt").is_file() and (out / "metrics.yaml").is_file()
    assert any((out / "tb").iterdir())
    # The loss of a fixed batch, with the initial and with the trained parameters.
    objective, data = _objective(config, tiny_capture)
    batch = data.training_batch(0)
    objective.train()
    with torch.no_grad(), torch.random.fork_rng():
        torch.manual_seed(0)
        objective(batch)  # ActNorm initialisation, as in train()
        if VARIANTS[variant].pretrained:
            objective.model.load_state_dict(load_checkpoint(dam_run)["model"], strict=False)
            objective.model.freeze_dam()
        torch.manual_seed(1)
        before = float(objective(batch)["loss"])
        objective.model.load_state_dict(load_checkpoint(out / "last.pt")["model"])
        torch.manual_seed(1)
        after = float(objective(batch)["loss"])
    assert after < before, (variant, condition, before, after)


def test_checkpoint_round_trip_and_exact_resume(tiny_capture, tmp_path):
    config = tiny_config("lip_flow", "kpt", steps=8)
    straight = train(config, tiny_capture, tmp_path / "straight", progress=False)
    half = dataclasses.replace(config, train=dataclasses.replace(config.train, steps=4))
    train(half, tiny_capture, tmp_path / "resumed", progress=False)
    first = load_checkpoint(tmp_path / "resumed" / "last.pt")
    assert first["step"] == 4 and config_of(first) == half
    resumed = train(config, tiny_capture, tmp_path / "resumed", resume=True, progress=False)
    a = load_checkpoint(tmp_path / "straight" / "last.pt")
    b = load_checkpoint(tmp_path / "resumed" / "last.pt")
    assert a["step"] == b["step"] == 8
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    assert straight.best_loss == resumed.best_loss
    saved = yaml.safe_load((tmp_path / "straight" / "config.yaml").read_text())
    assert saved["model"]["variant"] == "lip_flow" and saved["model"]["condition"] == "kpt"


def test_resume_refuses_a_different_model(tiny_capture, tmp_path):
    config = tiny_config("dam", steps=2)
    train(config, tiny_capture, tmp_path / "r", progress=False)
    other = tiny_config("lip_kl", steps=4)
    with pytest.raises(ValueError, match=r"differs from the run.s in \[.model.variant.\]"):
        train(other, tiny_capture, tmp_path / "r", resume=True, progress=False)
    with pytest.raises(FileExistsError, match="--resume"):
        train(config, tiny_capture, tmp_path / "r", progress=False)


def test_pretrained_must_match(tiny_capture, dam_run, tmp_path):
    config = tiny_config("dam_hmc_reg", pretrained=str(dam_run))
    config = dataclasses.replace(config, model=dataclasses.replace(
        config.model, dam=dataclasses.replace(config.model.dam, latent=4)))
    with pytest.raises(ValueError, match="train.pretrained"):
        train(config, tiny_capture, tmp_path / "r", progress=False)


def _torchrun_train(root: Path, capture: Path, out: Path, sets: list[str], resume: bool = False) -> str:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(root))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--standalone",
           "-m", "avatarfit.cli", "train", "--capture", str(capture), "--out", str(out), "--no-progress"]
    cmd += ["--resume"] if resume else ["--config", str(root / "configs" / "train" / "small" / "dam_hmc.yaml")]
    cmd += [f"--set={k}" for k in sets]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout + proc.stderr


def test_ddp_on_gloo_equals_one_process_with_the_same_global_batch(tiny_capture, tmp_path):
    """Two processes, each with half of every global batch of 4 (gradients averaged), train
    as one process with the whole batch does. DAM: no batch norm or dropout, whose
    per-process statistics would differ by design.

    What is compared, and why not the parameters after several steps: the two runs sum the
    same per-pixel gradient contributions in different orders (two half batches, then
    gloo's all-reduce, against one whole batch), so their gradients differ by float32
    rounding, about ``sqrt(n) * 2**-24`` relative for a sum of ``n`` terms. Adam divides
    each gradient element by its own running magnitude, so an element whose gradient is
    nearly zero (where rounding decides its sign) moves by a full learning rate either way:
    parameters after a few steps differ by up to ``steps * lr`` on one CPU and agree on
    another. So the test checks (1) the averaged gradient of the first step, read from
    Adam's first moment (``exp_avg = (1 - beta1) * g`` after one step), per tensor in
    relative norm, against a tolerance derived from that rounding; (2) every process holds
    the same parameters (DDP applies one averaged gradient everywhere); (3) after six steps
    (resumed from the first), the held-out loss, a smooth function of all parameters,
    agrees. A real defect (gradients summed instead of averaged, a sample dropped or
    duplicated, processes seeing the same half) changes the gradient by 10 % or more.
    """
    root = Path(__file__).resolve().parents[2]
    out = tmp_path / "ddp"
    sets = tiny_sets() + ["train.batch=4", "train.lr_schedule=constant", "train.grad_clip=null"]
    _torchrun_train(root, tiny_capture, out, sets + ["train.steps=1"])
    ddp1 = load_checkpoint(out / "last.pt")
    assert ddp1["step"] == 1
    single = tmp_path / "single"
    config = config_of(ddp1)
    train(config, tiny_capture, single, progress=False)
    one1 = load_checkpoint(single / "last.pt")
    # The longest reduction of the backward pass: the image loss over every pixel of the
    # global batch's rendered views.
    n = config.train.batch * config.data.views_per_frame * math.prod(TINY.image_size)
    tol = 16 * math.sqrt(n) * 2.0**-24  # ~2e-4 here; measured differences are below 1e-5
    beta1 = one1["optimizer"]["param_groups"][0]["betas"][0]
    g_ddp, g_one = ddp1["optimizer"]["state"], one1["optimizer"]["state"]
    assert set(g_ddp) == set(g_one) and len(g_one) == len(list(ddp1["model"]))
    for i in g_one:
        a, b = g_ddp[i]["exp_avg"] / (1 - beta1), g_one[i]["exp_avg"] / (1 - beta1)
        rel = float((a - b).norm() / b.norm())
        assert rel < tol, f"parameter {i} {tuple(b.shape)}: gradients differ by {rel:.2e} (relative norm) > {tol:.2e}"
    out6 = _torchrun_train(root, tiny_capture, out, ["train.steps=6"], resume=True)
    sums = dict(re.findall(r"rank (\d): parameter checksum (\S+)", out6))
    assert set(sums) == {"0", "1"} and sums["0"] == sums["1"]
    ddp = load_checkpoint(out / "last.pt")
    assert ddp["step"] == 6
    train(None, tiny_capture, single, resume=True, overrides={"train": {"steps": 6}}, progress=False)
    one = load_checkpoint(single / "last.pt")
    assert ddp["state"]["best_step"] == one["state"]["best_step"]
    assert ddp["state"]["best_loss"] == pytest.approx(one["state"]["best_loss"], rel=1e-4)


def test_prior_responsiveness_is_the_r2_of_the_prior_mean_against_q(tiny_capture):
    from avatarfit.metrics import r_squared
    from avatarfit.train.loop import prior_responsiveness

    config = tiny_config("lip_kl", "hmc")
    objective, data = _objective(config, tiny_capture)
    objective.eval()
    frames = data.capture.frames()  # all three: R^2 needs two frames or more
    got = prior_responsiveness(objective, data, frames, torch.device("cpu"), batch=2)
    b = data.collate(frames, [[data.frontal]] * len(frames))
    with torch.no_grad():
        q = objective.model.encoder(b["texture"], b["verts"])[0]
        p = objective.model.prior.params(b["condition"]).mu
    assert got == pytest.approx(float(r_squared(p, q)), abs=1e-5)
    # A prior that answers every frame with the frames' mean code scores 0.
    with torch.no_grad():
        objective.model.prior.encoder.mu.weight.zero_()
        objective.model.prior.encoder.mu.bias.copy_(q.mean(0))
    assert prior_responsiveness(objective, data, frames, torch.device("cpu"), batch=2) == pytest.approx(0.0, abs=1e-5)
    dam, dam_data = _objective(tiny_config("dam"), tiny_capture)
    assert prior_responsiveness(dam, dam_data, frames, torch.device("cpu"), batch=2) is None


def test_a_run_reports_the_motion_its_decoding_explains_and_follows_its_schedule(tiny_capture, tmp_path):
    """metrics.yaml and TensorBoard carry the validation frames' geometry error and motion
    explained (1 - Geom / Geom of the mean mesh on the same frames); the cosine schedule
    ends at lr * lr_final; clipping logs the gradient norm."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from avatarfit.avatar import Avatar
    from avatarfit.metrics import geometry_error

    config = tiny_config("dam", steps=8, eval_every=8, log_every=1, lr_schedule="cosine", lr_final=0.2, grad_clip=5.0)
    out = tmp_path / "run"
    train(config, tiny_capture, out, progress=False)
    metrics = yaml.safe_load((out / "metrics.yaml").read_text())
    geom, explained = metrics["validation_geom_mm"], metrics["validation_motion_explained"]
    cap = Capture(tiny_capture)
    names = Avatar.load(out).info["splits"]["validation"]
    truth = torch.stack([cap.vertices(*n.split("/")) for n in names])
    mean_mesh = float(geometry_error(Avatar.load(out).vert_mean.expand_as(truth), truth).mean())
    assert geom > 0 and geom / (1.0 - explained) == pytest.approx(mean_mesh, rel=1e-3)
    ea = EventAccumulator(str(out / "tb"))
    ea.Reload()
    assert {"validation/geom_mm", "validation/motion_explained", "stats/grad_norm"} <= set(ea.Tags()["scalars"])
    lrs = [e.value for e in ea.Scalars("lr")]
    assert lrs[0] == pytest.approx(config.train.lr) and lrs[-1] == pytest.approx(config.train.lr_at(7))
    assert lrs == sorted(lrs, reverse=True)
