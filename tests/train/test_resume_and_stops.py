"""Resuming every variant, resuming with changed schedules, and why a run stops."""

import dataclasses
import socket

import pytest
import torch
import yaml

from avatarfit.cli import main
from avatarfit.models import VARIANTS
from avatarfit.train import train
from avatarfit.train.checkpoint import load_checkpoint
from tests.train.conftest import tiny_config, tiny_sets

CASES = [(v, c) for v in VARIANTS for c in ("hmc", "kpt") if c == "hmc" or VARIANTS[v].conditional]


@pytest.mark.parametrize("variant, condition", CASES)
def test_every_variant_resumes_exactly(variant, condition, tiny_capture, dam_run, tmp_path):
    extra = {"pretrained": str(dam_run)} if VARIANTS[variant].pretrained else {}
    straight = train(tiny_config(variant, condition, steps=6, **extra), tiny_capture, tmp_path / "a", progress=False)
    train(tiny_config(variant, condition, steps=3, **extra), tiny_capture, tmp_path / "b", progress=False)
    resumed = train(tiny_config(variant, condition, steps=6, **extra), tiny_capture, tmp_path / "b", resume=True,
                    progress=False)
    a, b = load_checkpoint(tmp_path / "a" / "last.pt"), load_checkpoint(tmp_path / "b" / "last.pt")
    assert a["step"] == b["step"] == 6
    # The interrupted run also evaluated at its last step (3, between evaluations every 4):
    # that evaluation may be the best; otherwise both saw the same ones.
    assert resumed.best_loss == straight.best_loss or (resumed.best_step == 3 and resumed.best_loss < straight.best_loss)
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    if VARIANTS[variant].pretrained:  # the DAM stays the pretrained one, frozen
        dam = load_checkpoint(dam_run)["model"]
        for k, v in dam.items():
            if k.startswith(("encoder.", "decoder.")):
                assert torch.equal(b["model"][k], v), k


def test_plain_resume_keeps_a_longer_schedule(tiny_capture, tmp_path, capsys):
    out = tmp_path / "run"
    base = ["train", "--capture", str(tiny_capture), "--out", str(out), "--no-progress"]
    assert main(base + ["--config", "configs/train/small/dam_hmc.yaml"] + [f"--set={k}" for k in tiny_sets()] + ["--set=train.steps=2", "--set=train.lr_schedule=constant"]) == 0
    # Extend the run: --resume with --set, no --config.
    assert main(base + ["--resume", "--set=train.steps=4"]) == 0
    assert yaml.safe_load((out / "config.yaml").read_text())["train"]["steps"] == 4
    assert load_checkpoint(out / "last.pt")["step"] == 4
    # A later plain --resume continues with 4 steps, not the first config's 2.
    assert main(base + ["--resume", "--set=train.max_minutes=10"]) == 0
    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert saved["train"]["steps"] == 4 and saved["train"]["max_minutes"] == 10
    assert main(base + ["--resume", "--set=model.dam.latent=4"]) == 2
    assert "model.dam.latent" in capsys.readouterr().err


def test_early_stop_after_patience_without_improvement(tiny_capture, tmp_path):
    # A learning rate too small to move float32 weights: the held-out loss never improves.
    config = tiny_config("dam", steps=50, lr=1e-12, eval_every=1, patience=3)
    result = train(config, tiny_capture, tmp_path / "r", progress=False)
    assert (result.stopped, result.best_step, result.steps) == ("early", 1, 4)
    assert load_checkpoint(tmp_path / "r" / "last.pt")["step"] == 4


def test_time_budget_stops_the_run(tiny_capture, tmp_path):
    config = tiny_config("dam", steps=50, max_minutes=1e-9)
    result = train(config, tiny_capture, tmp_path / "r", progress=False)
    assert (result.stopped, result.steps) == ("time", 1)
    assert load_checkpoint(tmp_path / "r" / "last.pt")["step"] == 1


def _agree_worker(rank: int, port: int, queue) -> None:
    import torch.distributed as dist

    from avatarfit.distributed import DistInfo
    from avatarfit.train.loop import _agree

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    try:
        info = DistInfo(rank=rank, world=2, device=torch.device("cpu"))
        # The clocks of the two processes disagree: rank 1 thinks its budget is spent.
        queue.put((rank, _agree("time" if rank == 1 else "steps", info), _agree("early" if rank == 0 else "steps", info)))
    finally:
        dist.destroy_process_group()


def test_every_process_follows_the_main_ones_stop_decision():
    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_agree_worker, args=(r, port, queue)) for r in range(2)]
    for p in procs:
        p.start()
    results = sorted(queue.get(timeout=60) for _ in procs)
    for p in procs:
        p.join(timeout=60)
    assert results == [(0, "steps", "early"), (1, "steps", "early")]


def test_a_cosine_run_resumes_only_with_its_own_length(tiny_capture, tmp_path):
    """Another train.steps would move the cosine's end and jump the learning rate back up."""
    train(tiny_config("dam", steps=3, lr_schedule="cosine"), tiny_capture, tmp_path / "c", progress=False)
    with pytest.raises(ValueError, match=r"train.steps 3 -> 6: this run's learning rate follows a cosine"):
        train(tiny_config("dam", steps=6, lr_schedule="cosine"), tiny_capture, tmp_path / "c", resume=True,
              progress=False)
    resumed = train(tiny_config("dam", steps=3, lr_schedule="cosine"), tiny_capture, tmp_path / "c", resume=True,
                    progress=False)
    assert resumed.steps == 3


@pytest.mark.parametrize("select, best", [("loss", 4), ("prior_r2", 2), ("auto", 2)])
def test_best_checkpoint_is_chosen_by_train_select(select, best, tiny_capture, dam_run, tmp_path, monkeypatch):
    """A regressing prior whose validation loss keeps falling while its R^2 peaks at step 2:
    ``loss`` keeps the last evaluation, ``prior_r2`` (and ``auto`` for DAM-HMC-Reg) the peak."""
    import avatarfit.train.loop as loop

    real, calls = loop.evaluate, []

    def scripted(objective, data, device, batch):
        out = real(objective, data, device, batch)
        calls.append(len(calls))
        step = len(calls) - 1  # 0: the untrained model's baseline
        out["loss"] = 10.0 - step
        out["prior_r2_validation"] = {1: 0.2, 2: 0.6, 3: 0.4, 4: 0.3}.get(step, -1.0)
        return out

    monkeypatch.setattr(loop, "evaluate", scripted)
    config = tiny_config("dam_hmc_reg", steps=4, eval_every=1, pretrained=str(dam_run), select=select)
    config = dataclasses.replace(config, data=dataclasses.replace(config.data, validation=0.67, test=0.0))
    result = train(config, tiny_capture, tmp_path / "r", progress=False)
    assert result.best_step == best
    assert load_checkpoint(tmp_path / "r" / "best.pt")["step"] == best
    metrics = yaml.safe_load((tmp_path / "r" / "metrics.yaml").read_text())
    assert metrics["selected_by"] == ("prior_r2" if select == "auto" else select)


def test_prior_r2_selection_needs_a_conditional_prior_and_an_encoder():
    for variant, condition in (("dam", "hmc"), ("dam_hmc_enc", "hmc")):
        with pytest.raises(ValueError, match="train.select: prior_r2"):
            tiny_config(variant, condition, select="prior_r2")
    with pytest.raises(ValueError, match="train.select: expected one of"):
        tiny_config("dam", select="r2")
    assert tiny_config("lip_flow", "kpt").selection == "loss"


def test_prior_r2_without_two_validation_frames(tiny_capture, dam_run, tmp_path):
    """The tiny capture's split leaves one validation frame, so no R^2: ``auto`` chooses
    DAM-HMC-Reg by the loss, an explicit ``prior_r2`` is refused by name."""
    result = train(tiny_config("dam_hmc_reg", steps=2, pretrained=str(dam_run)), tiny_capture, tmp_path / "a",
                   progress=False)
    assert result.selected_by == "loss" and (tmp_path / "a" / "avatar.pt").is_file()
    with pytest.raises(ValueError, match="train.select: prior_r2 needs at least 2 validation frames"):
        train(tiny_config("dam_hmc_reg", steps=2, pretrained=str(dam_run), select="prior_r2"), tiny_capture,
              tmp_path / "b", progress=False)


def test_a_run_whose_scores_are_all_nan_still_keeps_its_first_evaluation(tiny_capture, tmp_path, monkeypatch):
    import avatarfit.train.loop as loop

    real = loop.evaluate

    def nan_loss(*args):
        out = real(*args)
        out["loss"] = float("nan")
        return out

    monkeypatch.setattr(loop, "evaluate", nan_loss)
    result = train(tiny_config("dam", steps=4, eval_every=2), tiny_capture, tmp_path / "r", progress=False)
    assert result.best_step >= 2 and (tmp_path / "r" / "avatar.pt").is_file()
