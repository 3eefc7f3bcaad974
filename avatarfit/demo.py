"""``avatarfit demo``: the library's main job on the built-in synthetic subject, end to end.

1. a small synthetic capture (3 segments x 24 frames, 6 cameras, 128x96);
2. a DAM and a LiP-Flow-HMC trained on it side by side for a fixed number of steps (900
   and 750: 2.5-4.5 minutes each on 2 cores; one process per model, one thread each, which
   on a 2-core CPU is faster than one after the other), each capped at ``minutes`` so that
   a slow machine still finishes (then with fewer steps, which it says);
3. HMC targets of the test frames (clean synthetic head-mounted views);
4. both models fitted to them; a table of frontal PSNR and geometry error before fitting
   (the prior's mean) and after, PNG strips, a side-by-side sheet and TensorBoard logs.

Everything is cached in the output folder: a second run reuses the capture, the trained
models and the finished fits (an interrupted run picks up where it stopped). The settings
are :data:`DEMO_SYNTH`, :data:`DEMO_TRAIN` and :data:`DEMO_MODELS`; each run folder keeps
its resolved ``config.yaml``, which ``avatarfit train --config`` accepts as it is.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

__all__ = ["DEMO_SYNTH", "DEMO_TRAIN", "DEMO_MODELS", "DemoResult", "run_demo", "demo_train_config", "demo_table"]

#: The demo capture (``avatarfit synth`` settings; ``subject`` and ``seed`` come from the command).
DEMO_SYNTH = {"segments": 3, "frames": 24, "cameras": 6, "image_size": (128, 96), "texture_size": 128}

#: Training settings shared by the demo's models (``configs/train/small.yaml``: a cosine
#: learning rate from 1e-3, gradient clipping, lambda_G 10; the steps per model instead of its
#: step count, a time budget, and 10% of the frames for validation, 10% for test).
DEMO_TRAIN = {
    "model": {"dam": {"latent": 64, "texture_size": 128, "channels": [16, 32, 64, 64, 64], "geometry_hidden": 256,
                      "view_features": 8},
              "hmc": {"input_size": [60, 80], "channels": [16, 32, 64, 64], "features": 128},
              "flow": {"layers": 4, "hidden": 128, "blocks_per_layer": 2, "batch_norm": True, "dropout": 0.0}},
    "data": {"views_per_frame": 2, "validation": 0.1, "test": 0.1, "hmc_source": "memory", "hmc": {"views_size": [120, 160]}},
    "loss": {"image": 10.0, "geometry": 10.0},
    "train": {"batch": 4, "lr": 0.001, "steps": 100000, "patience": 100000, "eval_every": 100, "log_every": 25,
              "checkpoint_every": 100, "max_minutes": 8.0, "lr_schedule": "cosine", "lr_final": 0.05,
              "grad_clip": 10.0},
}

#: ``name -> (label, model settings, lambda_L (LiP-Flow, supplementary H.1), training steps)`` of the demo's
#: two models. Steps, not minutes, so that the demo's numbers do not depend on the machine.
DEMO_MODELS = {
    "dam": ("DAM", {"variant": "dam", "condition": "hmc"}, 0.01, 900),
    "lip_flow_hmc": ("LiP-Flow-HMC", {"variant": "lip_flow", "condition": "hmc"}, 0.0005, 750),
}


def demo_train_config(name: str, minutes: float):
    """The :class:`~avatarfit.train.config.TrainConfig` of demo model ``name``, its
    training capped at ``minutes``."""
    from .config import merge_mappings
    from .train.config import load_train_config

    _, model, latent, steps = DEMO_MODELS[name]
    data = merge_mappings(DEMO_TRAIN, {"model": model, "loss": {"latent": latent},
                                       "train": {"steps": steps, "max_minutes": float(minutes)}})
    return load_train_config(None, data)


@dataclass
class DemoResult:
    """Summaries of both fits (``name -> metrics.json summary``) and the files written."""

    summaries: dict[str, dict]
    out: Path
    sheet: Path
    seconds: float


def _capture(out: Path, subject: str, seed: int, progress: bool, log: Callable[[str], None],
             synth: dict | None = None) -> Path:
    from .synth.generate import SynthConfig, ensure_capture

    config = SynthConfig(subject=subject, seed=seed, **{**DEMO_SYNTH, **(synth or {})})
    folder = out / "capture"
    if ensure_capture(folder, config, progress=progress, log=lambda m: None):
        log(f"1/4 capture: reusing {folder}")
    else:
        log(f"1/4 capture: generated {config.segments} segments x {config.frames} frames x {config.cameras} cameras "
            f"({subject}, seed {seed}) in {folder}")
    return folder


def _train_models(out: Path, capture: Path, minutes: float, progress: bool,
                  log: Callable[[str], None]) -> tuple[dict[str, Path], set[str]]:
    """Train the models not cached yet, one local job each, side by side; returns the run
    folders and the names trained now."""
    from .errors import JobsFailedError
    from .eval.config import LaunchSpec
    from .eval.launch import Job, run_jobs
    from .train.runs import run_is_done, train_run

    configs = {name: demo_train_config(name, minutes) for name in DEMO_MODELS}
    runs = {name: out / "runs" / name for name in DEMO_MODELS}
    todo = [n for n in DEMO_MODELS if not run_is_done(runs[n], configs[n])]
    if not todo:
        log(f"2/4 models: reusing {', '.join(str(r) for r in runs.values())}")
        return runs, set()
    labels = {n: DEMO_MODELS[n][0] for n in DEMO_MODELS}
    steps = " and ".join(str(DEMO_MODELS[n][3]) for n in todo)
    log(f"2/4 models: training {', '.join(labels[n] for n in todo)} side by side for {steps} steps (at most "
        f"{minutes:g} min each; logs in {out / 'jobs'})")
    jobs = [Job(f"train-{n}", "train", labels[n], train_run, {"config": configs[n], "capture": capture,
                                                              "run": runs[n]}) for n in todo]
    try:
        run_jobs(jobs, LaunchSpec(), out / "jobs", parallel=len(todo), progress=progress, log=log,
                 on_finish=lambda job, line: log(f"  {job.label}: {line}"))
    except JobsFailedError as exc:
        raise JobsFailedError(f"demo: {exc}", exc.failed) from None
    return runs, set(todo)


def _split_strip(strip, width: int) -> list:
    """The six columns of a :func:`~avatarfit.fit.strips.fit_strip` whose four frontal
    columns are ``width`` wide (2-pixel gaps)."""
    total = strip.shape[-1]
    side = (total - 4 * width - 10) // 2
    starts = [0, side + 2] + [2 * side + 4 + k * (width + 2) for k in range(4)]
    widths = [side, side] + [width] * 4
    return [strip[..., a:a + w] for a, w in zip(starts, widths)]


def _sheet(out: Path, fits: dict[str, Path], width: int) -> Path:
    """Rows: frames; columns: HMC views | photo | each model before and after fitting."""
    import torch

    from ._io import read_png, write_png

    names = sorted(p.name for p in (next(iter(fits.values())) / "strips").glob("*.png"))
    rows = []
    for n in names:
        cols = []
        for k, folder in enumerate(fits.values()):
            parts = _split_strip(read_png(folder / "strips" / n), width)
            if k == 0:
                cols += [parts[0], parts[4]]
            cols += [parts[2], parts[3]]
        row = []
        for c in cols:
            row += [c, torch.ones(3, c.shape[1], 4)]
        rows.append(torch.cat(row[:-1], dim=-1))
    sheet = []
    for r in rows:
        sheet += [r, torch.ones(3, 4, r.shape[-1])]
    path = out / "comparison.png"
    write_png(path, torch.cat(sheet[:-1], dim=1))
    return path


def run_demo(out: str | Path = "avatarfit-demo", *, subject: str = "procedural", seed: int = 0, minutes: float = 8.0,
             progress: bool = True, log: Callable[[str], None] = print, synth: dict | None = None,
             fit_config=None) -> DemoResult:
    """Run the demo into ``out`` (see the module's docstring); returns the fit summaries.

    Args:
        out: the demo folder (cache included).
        subject: ``procedural`` (offline) or ``james`` (the real scan, fetched once).
        seed: seed of the subject and its performances.
        minutes: cap on each model's training time (both train at once).
        synth: settings that replace :data:`DEMO_SYNTH`'s (a smaller capture, say).
        fit_config: the fit's :class:`~avatarfit.fit.FitConfig` (default: lr 0.1, lambda_L 0.01).
    """
    from .fit import FitConfig
    from ._io import json_safe
    from .fit.job import FitJob, run_fit_job

    if minutes <= 0:
        raise ValueError(f"--minutes: expected a positive training time, got {minutes}")
    t0 = time.perf_counter()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    capture = _capture(out, subject, seed, progress, log, synth)
    runs, trained = _train_models(out, capture, minutes, progress, log)
    log("3/4 fitting both models to the clean HMC views of the test frames (lr 0.1, lambda_L 0.01, <= 200 steps)")
    summaries, fits = {}, {}
    for name, run in runs.items():
        job = FitJob(run=str(run), capture=str(capture), target="hmc", frames="test", batch=8,
                     fit=fit_config or FitConfig(lr=0.1, lambda_latent=0.01))
        fits[name] = out / "fits" / name
        fresh = name in trained or not _same_job(fits[name], job)
        report = run_fit_job(job, fits[name], overwrite=fresh, progress=progress, log=lambda m: None)
        summaries[name] = report.summary
    width = {**DEMO_SYNTH, **(synth or {})}["image_size"][1]
    sheet = _sheet(out, fits, width)
    (out / "summary.json").write_text(json.dumps(json_safe(summaries), indent=1), encoding="utf-8")
    log(f"4/4 wrote {sheet}, strips and TensorBoard logs in {out / 'fits'}")
    return DemoResult(summaries=summaries, out=out, sheet=sheet, seconds=time.perf_counter() - t0)


def _same_job(folder: Path, job) -> bool:
    """Whether ``folder`` holds this fit job already, or nothing (else the demo starts it afresh)."""
    from .fit.folder import saved_job
    from .fit.jobspec import job_differences

    old = saved_job(folder)
    return old is None or not job_differences(old, job)


def demo_table(summaries: dict[str, dict]) -> str:
    """The demo's before/after table as Markdown."""
    lines = ["| model | frontal PSNR (dB) prior mean -> fitted | geometry error (mm) prior mean -> fitted | "
             "steps | s/frame |", "|---|---|---|---|---|"]
    for name, s in summaries.items():
        lines.append(f"| {DEMO_MODELS[name][0]} | {s['psnr_init']:.2f} -> {s['psnr']:.2f} | "
                     f"{s['geom_mm_init']:.3f} -> {s['geom_mm']:.3f} | {s['steps_mean']:.0f} | "
                     f"{s['seconds_per_frame']:.2f} |")
    return "\n".join(lines)
