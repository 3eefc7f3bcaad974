"""``avatarfit evaluate``: train (or reuse) every model the tables need, run every cell on
the held-out frames of every subject, and write the tables and the pictures.

Output folder::

    eval.yaml                       the resolved config
    tables.md, tables.csv           averaged over the subjects (as the paper averages four)
    table{6,7,8,9}.png              bar charts: PSNR and geometry error per model and task
    SUBJECT/capture/                the subject's capture (when made here)
    SUBJECT/runs/MODEL/             training runs (+ MODEL.yaml, MODEL.log)
    SUBJECT/cells/MODEL/TASK.json   a finished cell: its settings and its summary
    SUBJECT/cells/MODEL/TASK/       a fit cell's folder (``avatarfit fit`` outputs: strips, TensorBoard)
    SUBJECT/tables.md, tables.csv, table*.png, fits_table{7,8}.png   the subject's own

Every cell is written as it finishes; a re-run with ``resume`` recomputes nothing already
done (a cell whose settings, frames or trained model changed is computed again).
"""

from __future__ import annotations

import hashlib
import json
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import yaml

from .._io import write_text_atomic
from ..config import merge_mappings, to_dict
from .config import EvalConfig, SubjectSpec
from .plan import MODELS, TASKS, Cell, plan_cells, table_models

__all__ = ["EvalResult", "run_evaluation", "model_train_config", "check_capture_for", "cell_spec"]


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
    (seed 003, H.1), and for DAM-*-Reg the DAM run in ``runs``."""
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


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


#: What a cell's JSON holds; raised when its metrics change, so that older cells are recomputed
#: (2: face-pixel PSNR and SSIM).
CELL_FORMAT = 2


def cell_spec(config: EvalConfig, cell: Cell, run: Path, capture: Path) -> dict[str, Any]:
    """What a cell's result depends on (a finished cell with another spec is recomputed)."""
    run_cfg = (run / "config.yaml").read_text(encoding="utf-8") if (run / "config.yaml").is_file() else ""
    return {"cell": cell.key, "format": CELL_FORMAT, "capture": str(capture), "run": str(run),
            "run_config": _sha(run_cfg), "fit": to_dict(config.fit), "device": config.device}


def _grid(config: EvalConfig, cell: Cell) -> tuple[tuple[float, ...], tuple[float, ...]]:
    kind = TASKS[cell.task].kind
    lambdas = config.fit.lambda_frontal if kind in ("frontal", "masked") else config.fit.lambda_observed
    return tuple(config.fit.lr), (tuple(lambdas) if cell.latent else (0.0,))


def _worker_init(threads: int) -> None:
    import torch

    if threads:
        torch.set_num_threads(threads)


def _decode_cell(args: dict[str, Any]) -> dict[str, Any]:
    """Frontal metrics of the prior encoder's mean or the DAM encoder's codes, per frame;
    for the prior's mean also ``prior_r2``, its R^2 against the DAM encoder's codes of the
    same frames (prior responsiveness; the model's own Q, or DAM-*-Reg's frozen DAM's)."""
    import torch

    from ..avatar import Avatar
    from ..data.capture import Capture
    from ..fit.job import heldout_frames, resolve_device, spread
    from ..fit.optimize import frontal_metrics
    from ..fit.sources import TargetSource
    from ..inspect.interpolate import encoder_codes
    from .metrics import r_squared

    t0 = time.perf_counter()
    run = Path(args["run"])
    avatar = Avatar.load(run)
    capture = Capture(args["capture"])
    refs = heldout_frames(avatar, run, capture)
    if args["frames"]:
        refs = spread(refs, args["frames"])
    avatar = avatar.to(resolve_device(args["device"])).eval()
    source = TargetSource.for_avatar(capture, avatar)
    prior = args["kind"] == "decode_prior" or avatar.model.encoder is None
    scores: dict[str, list] = {}
    codes: list[tuple[torch.Tensor, torch.Tensor]] = []
    with torch.no_grad():
        for a in range(0, len(refs), args["batch"]):
            chunk = refs[a:a + args["batch"]]
            q = encoder_codes(avatar, capture, chunk) if avatar.model.encoder is not None else None
            if prior:
                params = avatar.model.prior.params(source.observation(chunk).to(avatar.vert_mean))
                z = avatar.model.prior.mean(params)
                if q is not None:
                    codes.append((z.cpu(), q.cpu()))
            else:
                z = q
            truth = source.truth(chunk).to(avatar.vert_mean.device)
            m, _ = frontal_metrics(avatar, truth, z.to(avatar.vert_mean))
            for k, v in m.items():
                scores.setdefault(k, []).extend(v.tolist())
    seconds = time.perf_counter() - t0
    summary = {k: float(sum(v) / len(v)) for k, v in scores.items()}
    summary.update(frames=len(refs), steps_mean=0.0, seconds_per_frame=seconds / len(refs))
    if len(codes) and len(refs) >= 2:
        summary["prior_r2"] = float(r_squared(torch.cat([c[0] for c in codes]), torch.cat([c[1] for c in codes])))
    frames = [{"name": f"{r.segment}/{r.frame}", **{k: v[i] for k, v in scores.items()}} for i, r in enumerate(refs)]
    return {"summary": summary, "frames": frames}


def _fit_cell(args: dict[str, Any]) -> dict[str, Any]:
    """A fit job (search on the first frames, then every evaluation frame) in the cell's folder."""
    from ..fit import FitConfig
    from ..fit.job import FitJob, job_differences, run_fit_job, saved_job

    fit = FitConfig(steps=args["steps"], patience=args["patience"], lambda_latent=args["grid"][1][0],
                    fit_headset=args["pose"])
    job = FitJob(run=args["run"], capture=args["capture"], target=args["kind"], frames=args["frames_spec"],
                 batch=args["batch"], search=True, grid=args["grid"], search_frames=args["search_frames"],
                 pose_noise_rot=args["pose_noise_rot"] if args["pose"] else 0.0,
                 pose_noise_trans=args["pose_noise_trans"] if args["pose"] else 0.0, device=args["device"], fit=fit)
    folder = Path(args["folder"])
    old = saved_job(folder)
    report = run_fit_job(job, folder, overwrite=old is not None and bool(job_differences(old, job)), progress=False,
                         log=lambda m: None)
    return {"summary": report.summary, "frames": report.frames, "lr": report.config.lr,
            "lambda_latent": report.config.lambda_latent}


def _run_cell(args: dict[str, Any]) -> dict[str, Any]:
    """Run one cell (in a worker process) and write its JSON file; returns what it wrote."""
    t0 = time.perf_counter()
    out = _decode_cell(args) if args["kind"].startswith("decode") else _fit_cell(args)
    doc = {"spec": args["spec"], **out, "seconds": time.perf_counter() - t0}
    from ..fit.job import json_safe

    write_text_atomic(Path(args["json"]), json.dumps(json_safe(doc), indent=1))
    return doc


def _cell_args(config: EvalConfig, cell: Cell, run: Path, capture: Path, cells_dir: Path,
               spec: dict[str, Any], grid=None) -> dict[str, Any]:
    task = TASKS[cell.task]
    f = config.fit
    return {"kind": task.kind, "pose": task.pose, "run": str(run), "capture": str(capture), "device": config.device,
            "frames": f.frames, "frames_spec": f"test:{f.frames}" if f.frames else "test", "batch": f.batch,
            "search_frames": f.search_frames, "steps": f.steps, "patience": f.patience,
            "pose_noise_rot": f.pose_noise_rot, "pose_noise_trans": f.pose_noise_trans,
            "grid": grid or _grid(config, cell), "folder": str(cells_dir / cell.key), "spec": spec,
            "json": str(cells_dir / f"{cell.key}.json")}


def _read_cell(path: Path, spec: dict[str, Any], ignore: tuple[str, ...] = ()) -> dict[str, Any] | None:
    """The cell's JSON when it was computed with ``spec`` (keys in ``ignore`` aside)."""
    if not path.is_file():
        return None
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError:
        return None
    saved = {k: v for k, v in (doc.get("spec") or {}).items() if k not in ignore}
    return doc if saved == {k: v for k, v in spec.items() if k not in ignore} else None


def _describe(cell: Cell, s: dict[str, Any]) -> str:
    def num(k: str, fmt: str) -> str:
        v = s.get(k)
        return format(v, fmt) if isinstance(v, (int, float)) else "n/a"

    text = (f"PSNR {num('psnr', '.2f')} dB (face {num('psnr_face', '.2f')}), SSIM {num('ssim', '.3f')}, "
            f"geometry {num('geom_mm', '.3f')} mm")
    if TASKS[cell.task].is_fit:
        text = (f"PSNR {num('psnr_init', '.2f')} -> {num('psnr', '.2f')} dB (face {num('psnr_face_init', '.2f')} -> "
                f"{num('psnr_face', '.2f')}), geometry {num('geom_mm_init', '.3f')} "
                f"-> {num('geom_mm', '.3f')} mm, {num('steps_mean', '.0f')} steps, "
                f"{num('seconds_per_frame', '.1f')} s/frame")
    return text


def _run_cells(config: EvalConfig, capture: Path, runs: dict[str, Path], cells_dir: Path, cells: list[Cell],
               progress: bool, log: Callable[[str], None]) -> dict[str, dict[str, Any]]:
    """Run the cells not finished yet (``config.jobs`` processes); returns ``key -> summary``."""
    import multiprocessing

    from tqdm.auto import tqdm

    results: dict[str, dict[str, Any]] = {}
    docs: dict[str, dict[str, Any]] = {}
    waves = [[c for c in cells if not TASKS[c.task].pose], [c for c in cells if TASKS[c.task].pose]]
    bar = tqdm(total=len(cells), desc="cells", unit="cell", disable=not progress)
    threads = 1 if config.jobs > 1 else 0
    ctx = multiprocessing.get_context("spawn")
    try:
        with ProcessPoolExecutor(max_workers=config.jobs, mp_context=ctx, initializer=_worker_init,
                                 initargs=(threads,)) as pool:
            for wave in waves:
                futures = {}
                for cell in wave:
                    spec = cell_spec(config, cell, runs[cell.model], capture)
                    grid = None
                    if TASKS[cell.task].pose:  # Table 9 uses the HMC fit's searched pair when there is one
                        base = docs.get(Cell(cell.model, "hmc", True).key)
                        if base is not None:
                            grid = ((base["lr"],), (base["lambda_latent"],))
                            spec = {**spec, "from": Cell(cell.model, "hmc", True).key}
                    path = cells_dir / f"{cell.key}.json"
                    done = _read_cell(path, spec)
                    if done is not None:
                        docs[cell.key] = done
                        bar.update(1)
                        continue
                    path.parent.mkdir(parents=True, exist_ok=True)
                    args = _cell_args(config, cell, runs[cell.model], capture, cells_dir, spec, grid)
                    futures[pool.submit(_run_cell, args)] = cell
                for fut in as_completed(futures):
                    cell = futures[fut]
                    try:
                        docs[cell.key] = fut.result()
                    except Exception as exc:  # the cells finished so far stay written
                        raise RuntimeError(f"evaluate: cell {cell.key} ({cells_dir.parent.name}) failed: "
                                           f"{type(exc).__name__}: {exc}; --resume retries it") from exc
                    bar.update(1)
                    log(f"  {cell.key}: {_describe(cell, docs[cell.key]['summary'])}")
    finally:
        bar.close()
    for key, doc in docs.items():
        results[key] = _summary_of(doc)
    return results


def _capture_path(config: EvalConfig, subject: SubjectSpec, folder: Path) -> Path:
    if subject.capture is not None:
        path = Path(subject.capture)
        return path if path.is_absolute() else (config.folder / path).resolve()
    return folder / "capture"


def _subject_capture(config: EvalConfig, subject: SubjectSpec, folder: Path, progress: bool,
                     log: Callable[[str], None]) -> Path:
    from ..synth.generate import SynthConfig, ensure_capture

    if subject.capture is not None:
        return _capture_path(config, subject, folder)
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


def finished_cells(config: EvalConfig, out: Path, subject: SubjectSpec) -> dict[str, dict[str, Any]]:
    """``cell key -> summary`` of the subject's cells finished in ``out`` with the current
    settings and models (what ``--tables-only`` tabulates). Where the capture and the run
    folders were is not compared, so a folder moved or committed elsewhere (cell files and
    the runs' ``config.yaml``) still tabulates; the training config and fit settings are."""
    folder = out / subject.name
    capture = _capture_path(config, subject, folder)
    found: dict[str, dict[str, Any]] = {}
    for cell in plan_cells(config.tables, tuple(table_models(config.tables, config.models))):
        spec = cell_spec(config, cell, folder / "runs" / cell.model, capture)
        path = folder / "cells" / f"{cell.key}.json"
        doc = _read_cell(path, spec, ignore=("from", "capture", "run")) \
            if (folder / "runs" / cell.model / "config.yaml").is_file() \
            else None
        if doc is not None:
            found[cell.key] = _summary_of(doc)
    return found


def _summary_of(doc: dict[str, Any]) -> dict[str, Any]:
    """A cell's summary with its searched settings, ``motion_explained`` (1 - Geom / Geom
    of the mean mesh on the same frames) and its per-frame records (``per_frame``)."""
    s = {**doc["summary"], **({"lr": doc["lr"], "lambda_latent": doc["lambda_latent"]} if "lr" in doc else {})}
    mean_mesh = s.get("geom_mm_mean_mesh")
    if isinstance(mean_mesh, (int, float)) and mean_mesh > 0 and isinstance(s.get("geom_mm"), (int, float)):
        s["motion_explained"] = 1.0 - s["geom_mm"] / mean_mesh
    s["per_frame"] = doc.get("frames") or []
    return s


def _prepare_out(out: Path, config: EvalConfig, resume: bool) -> None:
    saved = out / "eval.yaml"
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"--out {out}: exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not resume:
        what = "an evaluation" if saved.is_file() else "other files"
        raise FileExistsError(f"--out {out}: holds {what}; --resume continues it (finished cells are reused), or "
                              "choose another --out")
    out.mkdir(parents=True, exist_ok=True)
    doc = to_dict(config)
    doc["subjects"] = [to_dict(s) for s in config.subjects]
    write_text_atomic(saved, yaml.safe_dump(doc, sort_keys=False))


def run_evaluation(config: EvalConfig, out: str | Path, *, subjects: list[str] | None = None, resume: bool = False,
                   tables_only: bool = False, progress: bool = True,
                   log: Callable[[str], None] = print) -> EvalResult:
    """Run the evaluation ``config`` describes into ``out`` (see the module's docstring).

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
    """
    from ..train.parallel import TrainTask, train_side_by_side
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
    log(f"evaluate: {len(chosen)} subject(s), {len(models)} models, {len(cells)} cells each, tables "
        f"{', '.join(map(str, config.tables))}; {config.jobs} process(es); output {out}")
    results: dict[str, dict[str, dict[str, Any]]] = {}
    for k, s in enumerate(chosen):
        log(f"[{k + 1}/{len(chosen)}] {s.name}")
        folder = out / s.name
        capture = _subject_capture(config, s, folder, progress, log)
        check_capture_for(capture, models, data)
        runs = {m: folder / "runs" / m for m in models}
        tasks = {m: TrainTask(model_train_config(config, m, folder / "runs"), runs[m],
                              after=(MODELS[m].pretrained,) if MODELS[m].pretrained else ()) for m in models}
        labels = {m: MODELS[m].title for m in models}
        t1 = time.perf_counter()
        trained = train_side_by_side(tasks, capture, workers=config.jobs, progress=progress, log=log, labels=labels)
        log(f"  models: {'trained ' + str(len(trained)) if trained else 'reused'} "
            f"({(time.perf_counter() - t1) / 60:.1f} min)")
        t1 = time.perf_counter()
        results[s.name] = _run_cells(config, capture, runs, folder / "cells", cells, progress, log)
        log(f"  cells: {(time.perf_counter() - t1) / 60:.1f} min")
        write_reports(config, folder, {s.name: results[s.name]}, runs=runs, capture=capture)
    for s in config.subjects:
        if s.name not in results:
            earlier = finished_cells(config, out, s)
            if len(earlier) == len(cells):
                results[s.name] = earlier
    results = {s.name: results[s.name] for s in config.subjects if s.name in results}
    log(f"tables: mean over {', '.join(results)}")
    files = write_reports(config, out, results)
    return EvalResult(results=results, out=out, files=files, seconds=time.perf_counter() - t0)


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
