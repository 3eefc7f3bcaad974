"""One cell of the evaluation: what it depends on (its spec: a finished cell with another
is computed again), what it computes (a decoding of the prior's or the DAM encoder's codes,
or a fit job with its search) and the JSON file it writes. Cells run in worker processes
(in the jobs of :mod:`avatarfit.eval.jobs`)."""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any

from .._io import json_safe, write_text_atomic
from ..config import to_dict
from .config import EvalConfig
from .plan import TASKS, Cell

__all__ = ["CELL_FORMAT", "pose_base", "cell_args", "cell_spec", "describe", "run_cell"]


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


#: What a cell's JSON holds; raised when its metrics change, so that older cells are recomputed
#: (2: face-pixel PSNR and SSIM).
CELL_FORMAT = 2


def cell_spec(config: EvalConfig, cell: Cell, run: Path, capture: Path, base: Cell | None = None) -> dict[str, Any]:
    """What a cell's result depends on (a finished cell with another spec is recomputed);
    ``base``: the cell whose searched settings it reuses (:func:`pose_base`)."""
    run_cfg = (run / "config.yaml").read_text(encoding="utf-8") if (run / "config.yaml").is_file() else ""
    spec = {"cell": cell.key, "format": CELL_FORMAT, "capture": str(capture), "run": str(run),
            "run_config": _sha(run_cfg), "fit": to_dict(config.fit), "device": config.device}
    return {**spec, "from": base.key} if base is not None else spec


def pose_base(cell: Cell) -> Cell:
    """The cell whose searched lr and lambda_L a headset-pose cell (Table 9) reuses: the
    model's HMC fit with L_L."""
    return Cell(cell.model, "hmc", True)


def _grid(config: EvalConfig, cell: Cell) -> tuple[tuple[float, ...], tuple[float, ...]]:
    kind = TASKS[cell.task].kind
    lambdas = config.fit.lambda_frontal if kind in ("frontal", "masked") else config.fit.lambda_observed
    return tuple(config.fit.lr), (tuple(lambdas) if cell.latent else (0.0,))


def _decode_cell(args: dict[str, Any]) -> dict[str, Any]:
    """Frontal metrics of the prior encoder's mean or the DAM encoder's codes, per frame;
    for the prior's mean also ``prior_r2``, its R^2 against the DAM encoder's codes of the
    same frames (prior responsiveness; the model's own Q, or DAM-*-Reg's frozen DAM's)."""
    import torch

    from ..avatar import Avatar
    from ..data.capture import Capture
    from ..data.splits import frames_of_split, spread
    from ..device import resolve_device
    from ..fit.score import frontal_metrics
    from ..metrics import r_squared
    from ..observe.sources import TargetSource

    t0 = time.perf_counter()
    run = Path(args["run"])
    avatar = Avatar.load(run)
    capture = Capture(args["capture"])
    refs = frames_of_split(avatar.info, run, capture, "test")
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
            q = avatar.encode(*capture.tracked(chunk)) if avatar.model.encoder is not None else None
            if prior:
                z, _ = avatar.prior_mean(source.observation(chunk), batch=len(chunk))
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
    from ..fit.folder import saved_job
    from ..fit.job import FitJob, job_differences, run_fit_job
    from ..fit.optimize import FitConfig

    fit = FitConfig(steps=args["steps"], patience=args["patience"], lambda_latent=args["grid"][1][0],
                    fit_headset=args["pose"], raster_every=args["raster_every"])
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


def run_cell(args: dict[str, Any]) -> dict[str, Any]:
    """Run one cell and write its JSON file (the main process of a distributed fit alone);
    returns what it wrote."""
    t0 = time.perf_counter()
    out = _decode_cell(args) if args["kind"].startswith("decode") else _fit_cell(args)
    doc = {"spec": args["spec"], **out, "seconds": time.perf_counter() - t0}
    if int(os.environ.get("RANK", "0")) == 0:
        write_text_atomic(Path(args["json"]), json.dumps(json_safe(doc), indent=1))
    return doc


def cell_args(config: EvalConfig, cell: Cell, run: Path, capture: Path, cells_dir: Path,
              spec: dict[str, Any], grid=None) -> dict[str, Any]:
    task = TASKS[cell.task]
    f = config.fit
    return {"kind": task.kind, "pose": task.pose, "run": str(run), "capture": str(capture), "device": config.device,
            "frames": f.frames, "frames_spec": f"test:{f.frames}" if f.frames else "test", "batch": f.batch,
            "search_frames": f.search_frames, "steps": f.steps, "patience": f.patience,
            "raster_every": f.raster_every, "pose_noise_rot": f.pose_noise_rot, "pose_noise_trans": f.pose_noise_trans,
            "grid": grid or _grid(config, cell), "folder": str(cells_dir / cell.key), "spec": spec,
            "json": str(cells_dir / f"{cell.key}.json")}


def describe(cell: Cell, s: dict[str, Any]) -> str:
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
