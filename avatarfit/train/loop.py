"""The training loop behind ``avatarfit train``.

A run folder holds ``config.yaml`` (the resolved config), ``last.pt`` (every
``checkpoint_every`` steps and at the end), ``best.pt`` (the best validation evaluation: lowest
loss, or highest prior R^2, ``train.select``),
``avatar.pt`` (the best weights as a self-contained :class:`~avatarfit.avatar.Avatar`),
``metrics.yaml`` and TensorBoard logs in ``tb/``. Batches and noise are functions of
``(seed, step)`` and the optimiser state is checkpointed, so ``--resume`` continues
exactly where the run stopped.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
import yaml

from .._io import write_text_atomic
from ..avatar import AVATAR_FILE
from ..config import merge_mappings, from_dict
from ..data.capture import Capture
from ..metrics import psnr, r_squared
from ..models.variants import build_model
from .checkpoint import plain_config, config_of, load_checkpoint, save_checkpoint
from .config import TrainConfig
from .data import TrainingData
from ..distributed import DistInfo, cleanup, setup
from .objective import Objective

__all__ = ["TrainResult", "train", "evaluate", "build_optimizer", "RESUMABLE"]

#: Settings a resumed run may change (the schedule's length and cadence).
RESUMABLE = ("steps", "patience", "max_minutes", "eval_every", "log_every", "checkpoint_every")


@dataclass(frozen=True)
class TrainResult:
    """Outcome of a run: folder, steps done, why it stopped (``steps``, ``early`` or
    ``time``), the best evaluation's validation loss and step, the validation frontal PSNR
    (whole image and face pixels, dB) at the last evaluation, seconds spent training, the
    PSNR of the untrained model (about the mean avatar) for comparison, and what chose the
    best evaluation (``loss`` or ``prior_r2``, :attr:`TrainConfig.selection`)."""

    out: Path
    steps: int
    stopped: str
    best_loss: float
    best_step: int
    psnr: float
    psnr_face: float
    seconds: float
    initial_psnr: float = math.nan
    initial_psnr_face: float = math.nan
    selected_by: str = "loss"

    def describe(self) -> str:
        """One line: why it stopped, the best evaluation and the validation PSNR."""
        why = {"steps": "step budget reached", "early": "stopped early (no validation improvement)",
               "time": "time budget reached"}.get(self.stopped, self.stopped)
        best = (f"best validation loss {self.best_loss:.4f} at step {self.best_step}" if self.selected_by == "loss"
                else f"best prior R^2 on validation frames at step {self.best_step} (validation loss "
                f"{self.best_loss:.4f})")
        return (f"{why} after {self.steps} steps ({self.seconds / 60:.1f} min): {best}; validation frontal PSNR "
                f"{self.psnr:.2f} dB (face pixels {self.psnr_face:.2f} dB; untrained {self.initial_psnr:.2f} / "
                f"{self.initial_psnr_face:.2f} dB)")


def _to(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    return {k: v.to(device) for k, v in batch.items()}


@torch.no_grad()
def evaluate(objective: Objective, data: TrainingData, device: torch.device, batch: int) -> dict[str, float | torch.Tensor]:
    """Validation loss (codes at their means) and frontal-camera PSNR of the decoded avatar.

    Returns:
        ``loss``, ``psnr``, ``psnr_face``, ``geom_mm`` (mean vertex error of the decoded
        mesh) and ``motion_explained`` (``1 - geom_mm`` / the mean mesh's) (floats, averaged
        over frames), ``prior_r2_*`` (conditional priors) and ``grid``:
        ``(3, H', W')`` photo | rendering | error x4 for up to four frames.
    """
    objective.eval()
    total, n, ps, pf, rows, geom, still = 0.0, 0, [], [], [], [], []
    for b in data.validation_batches(batch):
        b = _to(b, device)
        out = objective(b, renders=True)
        k = b["texture"].shape[0]
        total += float(out["loss"]) * k
        n += k
        render, photo, mask = out["render"][:, 0].clamp(0, 1), b["photo"][:, 0], b["mask"][:, 0]
        ps.append(psnr(render, photo))
        pf.append(psnr(render, photo, mask))
        # Normalised vertices: the mean mesh is 0, one unit is vert_std mm.
        geom.append(((out["verts"] - b["verts"]).norm(dim=-1).mean(-1) * data.vert_std).cpu())
        still.append((b["verts"].norm(dim=-1).mean(-1) * data.vert_std).cpu())
        for i in range(min(k, 4 - len(rows))):
            rows.append(torch.cat([photo[i], render[i], ((render[i] - photo[i]).abs() * 4).clamp(0, 1)], -1))
    geom_mm, mean_mesh_mm = float(torch.cat(geom).mean()), float(torch.cat(still).mean())
    out = {"loss": total / n, "psnr": float(torch.cat(ps).mean()), "psnr_face": float(torch.cat(pf).mean()),
           "geom_mm": geom_mm, "motion_explained": 1.0 - geom_mm / mean_mesh_mm if mean_mesh_mm > 0 else math.nan,
           "grid": torch.cat(rows, -2).cpu()}
    from ..data.splits import spread

    # Training frames spread over every segment: R^2 divides by the frames' variance, which
    # the first frames of one or two segments would understate.
    for split, frames in (("validation", data.validation_frames), ("train", spread(data.train_frames, 64))):
        r2 = prior_responsiveness(objective, data, frames, device, batch)
        if r2 is not None:
            out[f"prior_r2_{split}"] = r2
    objective.train()
    return out


@torch.no_grad()
def prior_responsiveness(objective: Objective, data: TrainingData, frames: list, device: torch.device,
                         batch: int) -> float | None:
    """R^2 of the conditional prior's mean code (in the decoder's space) against the DAM
    encoder Q's codes of ``frames`` observed as fitting observes them (draw 0): 1 when the
    prior predicts each frame's code, 0 or below when it ignores its observation.
    ``None`` for unconditional models, models without Q, or fewer than two frames."""
    model = objective.model
    if not model.conditional or model.encoder is None or len(frames) < 2:
        return None
    pred, target = [], []
    for i in range(0, len(frames), batch):
        f = [data.frame(r) for r in frames[i:i + batch]]  # no photos needed
        texture, verts, condition = (torch.stack([getattr(x, k) for x in f]).to(device)
                                     for k in ("texture", "verts", "condition"))
        target.append(model.encoder(texture, verts)[0])
        pred.append(model.prior.mean(model.prior.params(condition)))
    return float(r_squared(torch.cat(pred), torch.cat(target)))


def _resume_config(out: Path, config: TrainConfig | None, payload: dict, overrides: dict | None) -> TrainConfig:
    """The config a resumed run continues with: ``config`` if given, else the checkpoint's
    own resolved config with ``overrides`` applied; only :data:`RESUMABLE` fields may differ."""
    saved = config_of(payload)
    if config is None:
        config = from_dict(TrainConfig, merge_mappings(plain_config(saved), overrides or {}), where="--resume --set")
    elif overrides:
        raise ValueError("overrides: pass them with config=None when resuming (a given config is used as it is)")
    def changed(x, y, prefix: str):
        if isinstance(x, dict) and isinstance(y, dict):
            for k in x:
                yield from changed(x[k], y.get(k), f"{prefix}{k}.")
        elif x != y:
            yield prefix[:-1]

    allowed = {f"train.{k}" for k in RESUMABLE}
    diffs = [k for k in changed(plain_config(saved), plain_config(config), "") if k not in allowed]
    if diffs:
        raise ValueError(f"--resume: the config differs from the run's in {diffs}; only train.{{{', '.join(RESUMABLE)}}} "
                         f"may change when resuming ({out / 'config.yaml'} holds the run's)")
    if saved.train.lr_schedule == "cosine" and config.train.steps != saved.train.steps:
        raise ValueError(f"--resume: train.steps {saved.train.steps} -> {config.train.steps}: this run's learning rate "
                         f"follows a cosine over its {saved.train.steps} steps, and another length would jump it "
                         "back up mid-run; resume with the same train.steps, or start a new run")
    return dataclasses.replace(saved, train=dataclasses.replace(
        saved.train, **{k: getattr(config.train, k) for k in RESUMABLE}))


def _load_pretrained(model, config: TrainConfig, num_verts: int) -> None:
    payload = load_checkpoint(config.train.pretrained)
    other = config_of(payload)
    if other.model.dam != config.model.dam or payload["num_verts"] != num_verts:
        raise ValueError(f"train.pretrained: {config.train.pretrained} has DAM sizes {other.model.dam} for "
                         f"{payload['num_verts']} vertices; this run needs {config.model.dam} for {num_verts}")
    dam = {k: v for k, v in payload["model"].items() if k.startswith(("encoder.", "decoder."))}
    missing = set(model.dam_state_dict()) - set(dam)
    if missing:
        raise ValueError(f"train.pretrained: {config.train.pretrained} lacks {sorted(missing)[:3]} (not a DAM run?)")
    model.load_state_dict(dam, strict=False)
    model.freeze_dam()


def train(
    config: TrainConfig | None,
    capture: Capture | str | os.PathLike,
    out: str | os.PathLike,
    *,
    resume: bool = False,
    overrides: dict | None = None,
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> TrainResult:
    """Train ``config``'s variant on ``capture`` into the run folder ``out``.

    Args:
        config: the training config; with ``resume`` it may be ``None``: the run continues
            with the config saved in its last checkpoint (plus ``overrides``). A resumed
            config may differ only in :data:`RESUMABLE` schedule fields, and is written to
            ``config.yaml`` again.
        capture: capture (or folder) with photos, meshes, textures and statistics.
        out: run folder.
        resume: continue from ``out/last.pt``.
        overrides: nested mapping of values to change when resuming with ``config=None``
            (``{"train": {"steps": 40000}}``; see :func:`avatarfit.config.parse_overrides`).
        progress: progress bar (steps/s and loss) on the main process.

    Started by ``torchrun --nproc_per_node N``, each process trains on its share of every
    batch (DistributedDataParallel; gloo on CPU, NCCL on CUDA); the main one writes.
    """
    out = Path(out)
    payload = None
    if resume:
        if not (out / "last.pt").is_file():
            raise FileNotFoundError(f"--resume: {out / 'last.pt'} not found; nothing to resume")
        payload = load_checkpoint(out / "last.pt")
        config = _resume_config(out, config, payload, overrides)
    elif overrides:
        raise ValueError("overrides: only with resume=True; apply them to the config (load_train_config) otherwise")
    elif config is None:
        raise ValueError("config: needed unless resuming")
    elif (out / "last.pt").exists():
        raise FileExistsError(f"--out: {out} already holds a run; pass --resume to continue it or choose another --out")
    info = setup(config.train.device)
    try:
        return _train(config, capture if isinstance(capture, Capture) else Capture(capture), out, payload, info,
                      progress, log)
    finally:
        cleanup(info)


def _broadcast_buffers(objective: Objective, info: DistInfo) -> None:
    if info.world > 1:
        import torch.distributed as dist

        for buf in objective.buffers():
            dist.broadcast(buf, 0)


_STOPS = ("steps", "early", "time")


def _agree(stopped: str, info: DistInfo) -> str:
    """The main process's stop decision, on every process (clocks differ between them)."""
    if info.world == 1:
        return stopped
    import torch.distributed as dist

    code = torch.tensor([_STOPS.index(stopped)], device=info.device)
    dist.broadcast(code, 0)
    return _STOPS[int(code)]


@dataclass
class _Run:
    """What one training run holds while it runs."""

    config: TrainConfig
    model: torch.nn.Module
    data: TrainingData
    objective: Objective
    optimizer: torch.optim.Optimizer
    state: dict
    start: int
    #: ``loss`` or ``prior_r2``: what chooses the best evaluation (see :func:`_selection`).
    selection: str = "loss"


def _selection(config: TrainConfig, data: TrainingData) -> str:
    """:attr:`TrainConfig.selection`, or ``loss`` where ``auto`` asked for the prior's R^2
    and fewer than two validation frames give none; an explicit ``prior_r2`` then raises."""
    selection = config.selection
    if selection == "prior_r2" and len(data.validation_frames) < 2:
        if config.train.select == "prior_r2":
            raise ValueError(f"train.select: prior_r2 needs at least 2 validation frames for an R^2, the split gives "
                             f"{len(data.validation_frames)} (data.validation {config.data.validation}); raise "
                             f"data.validation or use train.select: loss")
        selection = "loss"
    return selection


def build_optimizer(objective: torch.nn.Module, lr: float) -> torch.optim.Optimizer:
    """Training's optimiser: Adam over the trainable parameters, fused (one kernel over all
    of them: 8x faster than the per-tensor default on a CPU, where the 4.5M-parameter
    geometry layers of the small config made the update a third of a step)."""
    return torch.optim.Adam([p for p in objective.parameters() if p.requires_grad], lr=lr, fused=True)


def _build(config: TrainConfig, cap: Capture, payload: dict | None, info: DistInfo) -> _Run:
    """Model, data, objective and optimiser, fresh or from ``payload``; DAM-HMC-Reg's
    pretrained parts are frozen before the optimiser's parameter list is built, on both paths."""
    cfg = config.train
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        model = build_model(config.model, cap.topology.num_verts)
    data = TrainingData(cap, config, model.conditional)
    if payload is not None:
        model.load_state_dict(payload["model"])
    elif cfg.pretrained:
        _load_pretrained(model, config, data.num_verts)
    if model.variant.pretrained:
        model.freeze_dam()
    objective = Objective(model, data, config).to(info.device)
    optimizer = build_optimizer(objective, cfg.lr)
    state = {"best_loss": math.inf, "best_score": math.inf, "best_step": 0, "psnr": math.nan, "psnr_face": math.nan,
             "seconds": 0.0}
    start = 0
    if payload is not None:
        optimizer.load_state_dict(payload["optimizer"])
        start, state = int(payload["step"]), dict(payload["state"])
    selection = _selection(config, data)
    if payload is not None:
        # Checkpoints written before train.select chose by the validation loss.
        state.setdefault("best_score", state["best_loss"] if selection == "loss" else math.inf)
    return _Run(config, model, data, objective, optimizer, state, start, selection)


def _initialise(run: _Run, info: DistInfo) -> None:
    """A new run: ActNorm's data-dependent initialisation and the untrained model's PSNR."""
    cfg = run.config.train
    run.objective.train()
    with torch.no_grad(), torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)  # dropout, reproducibly
        run.objective(_to(run.data.training_batch(0, info.rank, info.world), info.device))
    # The untrained model decodes about the mean avatar: the baseline the PSNR improves on.
    ev0 = evaluate(run.objective, run.data, info.device, max(2, cfg.batch // info.world))
    run.state["initial_psnr"], run.state["initial_psnr_face"] = ev0["psnr"], ev0["psnr_face"]


def _step(run: _Run, runner: torch.nn.Module, step: int, info: DistInfo) -> dict[str, torch.Tensor]:
    """One optimiser step on the batch of ``step``; returns the loss terms."""
    cfg = run.config.train
    batch = _to(run.data.training_batch(step, info.rank, info.world), info.device)
    # Dropout draws from the global generator: seed it per step (and restore it after),
    # so a resumed run repeats an uninterrupted one exactly.
    with torch.random.fork_rng(devices=[info.device] if info.device.type == "cuda" else []):
        torch.manual_seed(cfg.seed * 1_000_003 + step * 7919 + info.rank)
        terms = runner(batch)
        run.optimizer.zero_grad(set_to_none=True)
        terms["loss"].backward()
        if cfg.grad_clip is not None:
            params = [p for g in run.optimizer.param_groups for p in g["params"]]
            terms["stats/grad_norm"] = torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
        lr = cfg.lr_at(step)
        for group in run.optimizer.param_groups:
            group["lr"] = lr
        run.optimizer.step()
    return terms


def _log_terms(writer, terms: dict[str, torch.Tensor], lr: float, step: int) -> None:
    for k, v in terms.items():
        if v.ndim:  # latent codes of the batch
            writer.add_histogram(k, v.detach(), step)
        else:
            writer.add_scalar(k if k.startswith("stats/") else f"loss/{k}", float(v.detach()), step)
    writer.add_scalar("lr", lr, step)


def _evaluate(run: _Run, writer, step: int, info: DistInfo) -> bool:
    """Validation-frame evaluation at ``step``; returns whether its score (``train.select``) improved."""
    _broadcast_buffers(run.objective, info)
    ev = evaluate(run.objective, run.data, info.device, max(2, run.config.train.batch // info.world))
    run.state["psnr"], run.state["psnr_face"] = ev["psnr"], ev["psnr_face"]
    run.state["geom_mm"], run.state["motion_explained"] = ev["geom_mm"], ev["motion_explained"]
    if "prior_r2_validation" in ev:
        run.state["prior_r2"] = ev["prior_r2_validation"]
    if writer is not None:
        writer.add_scalar("validation/loss", ev["loss"], step)
        writer.add_scalar("validation/psnr_frontal", ev["psnr"], step)
        writer.add_scalar("validation/psnr_frontal_face", ev["psnr_face"], step)
        writer.add_scalar("validation/geom_mm", ev["geom_mm"], step)
        writer.add_scalar("validation/motion_explained", ev["motion_explained"], step)
        for split in ("validation", "train"):
            if f"prior_r2_{split}" in ev:
                writer.add_scalar(f"prior/r2_{split}", ev[f"prior_r2_{split}"], step)
        writer.add_image("validation/photo_render_error", ev["grid"], step)
        writer.add_scalar("data/cache_mb", run.data.cache_bytes / 2**20, step)
    # Lower is better: the validation loss, or minus the prior's R^2 (train.select). A
    # non-finite score is the worst; the first evaluation is kept whatever it scores, so a
    # run always has a best checkpoint and avatar file.
    score = ev["loss"] if run.selection == "loss" else -ev["prior_r2_validation"]
    score = score if math.isfinite(score) else math.inf
    if score < run.state["best_score"] or not math.isfinite(run.state["best_loss"]):
        run.state["best_loss"], run.state["best_score"], run.state["best_step"] = ev["loss"], score, step
        return True
    return False


def _stop_reason(run: _Run, step: int, improved: bool, evaluated: bool) -> str:
    """``steps`` (go on), ``early`` (no validation improvement for ``patience`` steps) or ``time``."""
    cfg = run.config.train
    if evaluated and not improved and step - run.state["best_step"] >= cfg.patience:
        return "early"
    if cfg.max_minutes is not None and run.state["seconds"] >= cfg.max_minutes * 60:
        return "time"
    return "steps"


def _train(config: TrainConfig, cap: Capture, out: Path, payload: dict | None, info: DistInfo, progress: bool,
           log: Callable[[str], None]) -> TrainResult:
    from tqdm.auto import tqdm

    cfg = config.train
    if cfg.batch % info.world:
        raise ValueError(f"train.batch: {cfg.batch} frames do not split over {info.world} processes")
    run = _build(config, cap, payload, info)
    if payload is None:
        _initialise(run, info)
    if info.main:  # the resolved config, again on resume (its schedule may have changed)
        write_text_atomic(out / "config.yaml", yaml.safe_dump(plain_config(config), sort_keys=False))
    runner = run.objective
    if info.world > 1:
        from torch.nn.parallel import DistributedDataParallel

        runner = DistributedDataParallel(run.objective,
                                         device_ids=[info.device.index] if info.device.type == "cuda" else None)
    writer = None
    if info.main:
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(str(out / "tb"), purge_step=run.start if payload is not None else None)

    def checkpoint(name: str, step: int) -> None:
        if info.main:
            save_checkpoint(out / name, config=config, num_verts=run.data.num_verts, step=step,
                            model=run.model.state_dict(), optimizer=run.optimizer.state_dict(), state=run.state)

    bar = tqdm(total=cfg.steps, initial=run.start, unit="step", desc=f"train {config.model.variant}",
               disable=not (progress and info.main))
    stopped = "steps"
    t0 = time.perf_counter() - run.state["seconds"]
    step = run.start
    run.objective.train()
    while step < cfg.steps:
        terms = _step(run, runner, step, info)
        step += 1
        run.state["seconds"] = time.perf_counter() - t0
        bar.update(1)
        if step % cfg.log_every == 0 or step == cfg.steps:
            bar.set_postfix(loss=f"{float(terms['loss'].detach()):.4f}")
            if writer is not None:
                _log_terms(writer, terms, run.optimizer.param_groups[0]["lr"], step)
        # A run about to stop on time is evaluated first, so that it always ends with a
        # best checkpoint and avatar file (also when it stops before the first evaluation).
        over = cfg.max_minutes is not None and run.state["seconds"] >= cfg.max_minutes * 60
        time_up = _agree("time" if over else "steps", info) == "time"
        evaluated = step % cfg.eval_every == 0 or step == cfg.steps or time_up
        improved = evaluated and _evaluate(run, writer, step, info)
        if improved:
            checkpoint("best.pt", step)
            if info.main:  # the self-contained avatar of the best weights, for fitting
                avatar = run.data.avatar(run.model)
                avatar.info.update(run=str(out), step=step, validation_loss=run.state["best_loss"],
                                   selected_by=run.selection)
                avatar.save(out / AVATAR_FILE)
        stopped = _agree(_stop_reason(run, step, improved, evaluated), info)
        if stopped != "steps" or step % cfg.checkpoint_every == 0 or step == cfg.steps:
            checkpoint("last.pt", step)
        if stopped != "steps":
            break
    bar.close()
    if writer is not None:
        writer.close()
    if info.world > 1:
        checksum = sum(float(p.double().abs().sum()) for p in run.model.parameters())
        log(f"rank {info.rank}: parameter checksum {checksum:.12e}")
    return _finish(run, out, step, stopped, info)


def _finish(run: _Run, out: Path, step: int, stopped: str, info: DistInfo) -> TrainResult:
    """The run's result, and ``metrics.yaml`` (main process)."""
    state = run.state
    result = TrainResult(out, step, stopped, state["best_loss"], state["best_step"], state["psnr"], state["psnr_face"],
                         state["seconds"], state.get("initial_psnr", math.nan), state.get("initial_psnr_face", math.nan),
                         run.selection)
    if info.main:
        metrics = {"steps": step, "stopped": stopped, "best_validation_loss": state["best_loss"],
                   "best_step": state["best_step"], "selected_by": run.selection,
                   "best_validation_prior_r2": -state["best_score"] if run.selection == "prior_r2" else None,
                   "validation_psnr_frontal": state["psnr"],
                   "validation_psnr_frontal_face": state["psnr_face"],
                   "initial_psnr_frontal": state.get("initial_psnr", math.nan),
                   "initial_psnr_frontal_face": state.get("initial_psnr_face", math.nan),
                   "validation_geom_mm": state.get("geom_mm"),
                   "validation_motion_explained": state.get("motion_explained"),
                   "validation_prior_r2": state.get("prior_r2"),
                   "seconds": round(state["seconds"], 1),
                   "frontal_camera": run.data.frontal}
        write_text_atomic(out / "metrics.yaml", yaml.safe_dump(metrics, sort_keys=False))
    return result
