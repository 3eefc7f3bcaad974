"""``avatarfit evaluate``: train (or reuse) every model the tables need, run every cell on
the held-out frames of every subject, and write the tables and the pictures.

Output folder::

    eval.yaml                       the resolved config
    tables.md, tables.csv           averaged over the subjects (as the paper averages four)
    table{6,7,8,9}.png              bar charts: PSNR and geometry error per model and task
    SUBJECT/capture/                the subject's capture (when made here)
    SUBJECT/runs/MODEL/             training runs
    jobs/SUBJECT/JOB/               each job's logs (ID_0_log.out, ID_0_log.err) and submitit's files
    SUBJECT/cells/MODEL/TASK.json   a finished cell: its settings and its summary
    SUBJECT/cells/MODEL/TASK/       a fit cell's folder (``avatarfit fit`` outputs: strips, TensorBoard)
    SUBJECT/tables.md, tables.csv, table*.png, fits_table{7,8}.png   the subject's own

Every cell is written as it finishes; a re-run with ``resume`` recomputes nothing already
done (a cell whose settings, frames or trained model changed is computed again) and
continues interrupted trainings from their last checkpoint.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import yaml

from .._io import write_text_atomic
from ..config import merge_mappings, to_dict
from .cache import finished_cells, read_cell, summary_of
from .cells import cell_spec, describe, pose_base
from .config import EvalConfig, SubjectSpec, capture_path
from .plan import MODELS, TASKS, Cell, plan_cells, table_models

__all__ = ["EvalResult", "run_evaluation", "model_train_config", "check_capture_for", "resolved_config_yaml"]


@dataclass
class EvalResult:
    """Per subject ``cell key -> summary``, the files written and the wall time."""

    results: dict[str, dict[str, dict[str, Any]]]
    out: Path
    files: list[Path]
    seconds: float


def model_train_config(config: EvalConfig, name: str, runs: Path):
    """The :class:`~avatarfit.train.config.TrainConfig` of model ``name``: the config's
    training base and ``set``, the model's variant and condition, the paper's lambda_L
    (LiP-Flow, supplementary H.1), and for DAM-*-Reg the DAM run in ``runs``."""
    from ..models.catalog import VARIANTS
    from ..train.config import load_train_config

    spec = MODELS[name]
    top: dict[str, Any] = {"model": {"variant": spec.variant, "condition": spec.condition},
                           "loss": {"latent": VARIANTS[spec.variant].lambda_latent}}
    if spec.pretrained:
        top["train"] = {"pretrained": str(runs / spec.pretrained)}
    if config.device != "auto":
        top = merge_mappings(top, {"train": {"device": config.device}})
    return load_train_config(config.base_path(), merge_mappings(config.train.set, top))


def check_capture_for(capture: Path, models: list[str], data) -> None:
    """Refuse a capture that lacks what the models and targets need, before any training.

    Args:
        capture: the subject's capture folder.
        models: the models to train.
        data: their :class:`~avatarfit.train.config.DataConfig` (``hmc_source``, ``hmc_dir``).

    Raises:
        FileNotFoundError: naming the missing file or folder and the command that makes it.
    """
    from ..data.layout import Layout

    layout = Layout.of(capture)
    if not layout.frame_list.is_file():
        raise FileNotFoundError(f"{capture}: not a capture (no {layout.frame_list.name}); make one with "
                                f"avatarfit synth --out {capture}, or give a Multiface capture folder")
    if not layout.landmarks.is_file():
        raise FileNotFoundError(f"{layout.landmarks}: missing; HMC views, keypoints and the masked targets are made "
                                "from the capture's landmarks (avatarfit synth writes them; a real capture needs 68 "
                                "'face b0 b1 b2' rows in this file)")
    conditions = {MODELS[m].condition for m in models if MODELS[m].conditional}
    if conditions and data.hmc_source == "files":
        root = Layout.of(data.hmc_dir) if data.hmc_dir else layout
        needed = {"hmc": (root.hmc_rig, root.hmc_dir), "kpt": (root.keypoints_dir, root.keypoints_dir)}
        missing = [folder for cond, (probe, folder) in needed.items() if cond in conditions and not probe.exists()]
        if missing:
            where = f" --out {data.hmc_dir}" if data.hmc_dir else ""
            raise FileNotFoundError(f"{missing[0]}: missing (data.hmc_source is files: the models train on the HMC "
                                    f"tool's views and keypoints); make it with avatarfit hmc --capture {capture}{where}")


def _subject_capture(config: EvalConfig, subject: SubjectSpec, folder: Path, progress: bool,
                     log: Callable[[str], None]) -> Path:
    from ..synth.generate import SynthConfig, ensure_capture

    if subject.capture is not None:
        return capture_path(config, subject, folder)
    c = config.capture
    synth = SynthConfig(subject=subject.subject, seed=subject.seed, segments=c.segments, frames=c.frames,
                        cameras=c.cameras, image_size=c.image_size, texture_size=c.texture_size)
    target = folder / "capture"
    if ensure_capture(target, synth, progress=progress, log=lambda m: None):
        log(f"  capture: reusing {target}")
    else:
        log(f"  capture: made {c.segments} x {c.frames} frames x {c.cameras} cameras ({subject.subject}, "
            f"seed {subject.seed}) in {target}")
    return target


def _prepare_out(out: Path, config: EvalConfig, resume: bool) -> None:
    saved = out / "eval.yaml"
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"--out {out}: exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not resume:
        what = "an evaluation" if saved.is_file() else "other files"
        raise FileExistsError(f"--out {out}: holds {what}; --resume continues it (finished cells are reused), or "
                              "choose another --out")
    out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(saved, resolved_config_yaml(config))


def resolved_config_yaml(config: EvalConfig) -> str:
    """The config as a YAML text that :func:`~avatarfit.eval.config.load_eval_config` reads
    back from anywhere: paths made absolute (the training base, the subjects' captures),
    the file it came from in a comment."""
    doc = to_dict(config)
    source = doc.pop("source", "")
    doc["train"]["base"] = str(config.base_path())
    doc["subjects"] = [{**to_dict(s), **({"capture": str(capture_path(config, s, Path(".")))} if s.capture else {})}
                       for s in config.subjects]
    head = f"# avatarfit evaluate: the resolved config (read from {source})\n" if source else ""
    return head + yaml.safe_dump(doc, sort_keys=False)


def run_evaluation(config: EvalConfig, out: str | Path, *, subjects: list[str] | None = None, resume: bool = False,
                   tables_only: bool = False, progress: bool = True,
                   log: Callable[[str], None] = print) -> EvalResult:
    """Run the evaluation ``config`` describes into ``out`` (see the module's docstring).

    Every training and every cell not finished yet is a job (:mod:`avatarfit.eval.launch`:
    local processes, ``config.jobs`` at a time, or SLURM jobs, ``config.launch``); DAM-*-Reg
    trainings wait for their DAM, cells for their model, Table 9's cells for the HMC fit
    whose searched settings they reuse (a model's cells are one job, in that order). A
    subject's tables are written when its last cell finishes.

    The top-level tables average every subject of the config whose cells are all finished
    in ``out``: those run now and those finished by earlier runs (``--subjects`` splits an
    evaluation over several runs or machines).

    Args:
        config: :class:`~avatarfit.eval.config.EvalConfig`.
        out: output folder.
        subjects: names of the config's subjects to run (default: all).
        resume: continue in a folder that holds an evaluation (finished cells are reused).
        tables_only: train and fit nothing; write the tables of the finished subjects.

    Raises:
        ValueError: unknown subject names, training settings the trainer rejects.
        FileNotFoundError: a capture without what a table needs (before any training).
        FileExistsError: ``out`` holds something and ``resume`` is not set.
        JobsFailedError: naming each failed training or cell and its log (after the others).
    """
    from .launch import run_jobs
    from .report import write_reports

    t0 = time.perf_counter()
    out = Path(out)
    names = [s.name for s in config.subjects]
    unknown = [s for s in subjects or [] if s not in names]
    if unknown:
        raise ValueError(f"--subjects: unknown subject(s) {unknown}; the config has {names}")
    chosen = [s for s in config.subjects if not subjects or s.name in subjects]
    models = table_models(config.tables, config.models)
    cells = plan_cells(config.tables, tuple(models))
    # everything that can be checked is checked before the first training starts
    configs = {m: model_train_config(config, m, Path("runs")) for m in models}
    data = configs[models[0]].data
    for s in chosen:
        if s.capture is not None:
            check_capture_for(_subject_capture(config, s, out / s.name, False, lambda m: None), models, data)
    if tables_only:
        return _tables_only(config, out, cells, t0, log)
    _prepare_out(out, config, resume)
    launch = config.launch
    where = (f"{config.jobs} job(s) at a time on this machine" if launch.launcher == "local"
             else f"SLURM jobs{' on partition ' + launch.partition if launch.partition else ''}")
    log(f"evaluate: {len(chosen)} subject(s), {len(models)} models, {len(cells)} cells each, tables "
        f"{', '.join(map(str, config.tables))}; {where}; output {out}, job logs {out / 'jobs'}")
    results: dict[str, dict[str, dict[str, Any]]] = {}
    jobs, contexts = [], {}
    for k, s in enumerate(chosen):
        log(f"[{k + 1}/{len(chosen)}] {s.name}")
        folder = out / s.name
        capture = _subject_capture(config, s, folder, progress, log)
        check_capture_for(capture, models, data)
        subject_jobs, done = _subject_jobs(config, s.name, folder, capture, models, cells)
        results[s.name] = done
        contexts[s.name] = (folder, capture)
        trainings = sum(j.kind == "train" for j in subject_jobs)
        log(f"  {trainings} training(s) and {len(cells) - len(done)} cell(s) of "
            f"{len(subject_jobs) - trainings} model(s) to run; {len(done)} cell(s) finished before")
        jobs += subject_jobs
        if len(done) == len(cells):
            _subject_reports(config, s.name, contexts[s.name], done)

    def finished(job, result) -> None:
        subject = job.name.split("/", 1)[0]
        if job.kind == "train":
            log(f"  {job.label}: {result}")
            return
        for cell in job.kwargs["cells"]:
            results[subject][cell.key] = summary_of(result[cell.key])
            log(f"  {subject} {cell.key}: {describe(cell, result[cell.key]['summary'])}")
        if len(results[subject]) == len(cells):
            _subject_reports(config, subject, contexts[subject], results[subject])

    run_jobs(jobs, launch, out / "jobs", parallel=config.jobs, progress=progress, log=log, on_finish=finished)
    for s in config.subjects:
        if s.name not in results or len(results[s.name]) < len(cells):
            earlier = finished_cells(config, out, s) if s.name not in results else {}
            if len(earlier) == len(cells):
                results[s.name] = earlier
            else:
                results.pop(s.name, None)
    results = {s.name: results[s.name] for s in config.subjects if s.name in results}
    log(f"tables: mean over {', '.join(results)}")
    files = write_reports(config, out, results)
    return EvalResult(results=results, out=out, files=files, seconds=time.perf_counter() - t0)


def _subject_jobs(config: EvalConfig, subject: str, folder: Path, capture: Path, models: list[str],
                  cells: list[Cell]) -> tuple[list, dict[str, dict[str, Any]]]:
    """The jobs of a subject: each unfinished training, and for each model with unfinished
    cells one job that runs them after its training; and ``key -> summary`` of the cells
    finished before (with a finished model, the same spec)."""
    from ..train.runs import run_is_done, train_run
    from .jobs import model_cells
    from .launch import Job

    runs = {m: folder / "runs" / m for m in models}
    configs = {m: model_train_config(config, m, folder / "runs") for m in models}
    pending = {m for m in models if not run_is_done(runs[m], configs[m])}
    jobs: list[Job] = []
    for m in models:  # the DAM before its DAM-*-Reg runs (the list is in dependency order)
        if m in pending:
            need = MODELS[m].pretrained
            jobs.append(Job(f"{subject}/train-{m}", "train", f"{subject} {MODELS[m].title} training", train_run,
                            {"config": configs[m], "capture": capture, "run": runs[m]},
                            after=(f"{subject}/train-{need}",) if need in pending else ()))
    planned = {c.key for c in cells}
    cells_dir = folder / "cells"
    done: dict[str, dict[str, Any]] = {}
    for m in models:
        todo, bases = [], {}
        for cell in sorted((c for c in cells if c.model == m), key=lambda c: TASKS[c.task].pose):
            base = pose_base(cell) if TASKS[cell.task].pose and pose_base(cell).key in planned else None
            if base is not None:
                bases[cell.key] = base
            if m not in pending and (base is None or base.key in done):
                doc = read_cell(cells_dir / f"{cell.key}.json", cell_spec(config, cell, runs[m], capture, base))
                if doc is not None:
                    done[cell.key] = summary_of(doc)
                    continue
            todo.append(cell)
        if todo:
            fits = any(TASKS[c.task].is_fit for c in todo)
            jobs.append(Job(f"{subject}/cells-{m}", "cells", f"{subject} {MODELS[m].title} cells", model_cells,
                            {"config": config, "cells": todo, "bases": {c.key: bases[c.key] for c in todo
                                                                        if c.key in bases},
                             "run": runs[m], "capture": capture, "cells_dir": cells_dir},
                            after=(f"{subject}/train-{m}",) if m in pending else (),
                            processes=config.launch.processes_per_fit if fits else 1))
    return jobs, done


def _subject_reports(config: EvalConfig, subject: str, context: tuple[Path, Path],
                     cells: dict[str, dict[str, Any]]) -> None:
    from .report import write_reports

    folder, capture = context
    runs = {m: folder / "runs" / m for m in table_models(config.tables, config.models)}
    write_reports(config, folder, {subject: cells}, runs=runs, capture=capture)


def _tables_only(config: EvalConfig, out: Path, cells: list[Cell], t0: float,
                 log: Callable[[str], None]) -> EvalResult:
    from .report import write_reports

    if not (out / "eval.yaml").is_file():
        raise FileNotFoundError(f"--out {out}: no evaluation here (no eval.yaml) to make tables of")
    results, partial = {}, []
    for s in config.subjects:
        found = finished_cells(config, out, s)
        if len(found) == len(cells):
            results[s.name] = found
        elif found:
            partial.append(f"{s.name} ({len(found)} of {len(cells)} cells)")
    if partial:
        log(f"tables: left out unfinished subject(s) {', '.join(partial)}; --resume finishes them")
    if not results:
        raise FileNotFoundError(f"--out {out}: no subject has all {len(cells)} cells finished with these settings")
    log(f"tables: mean over {', '.join(results)}")
    files = write_reports(config, out, results)
    return EvalResult(results=results, out=out, files=files, seconds=time.perf_counter() - t0)
