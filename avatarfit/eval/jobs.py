"""What the evaluation's jobs run (:mod:`avatarfit.eval.launch` submits them): a model's
training (:func:`avatarfit.train.runs.train_run`) and :func:`model_cells`, a model's
unfinished cells one after another. Both continue from their files when called again
after an interruption: a requeued job repeats nothing that finished."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .cache import read_cell
from .cells import cell_args, cell_spec, run_cell
from .config import EvalConfig
from .plan import TASKS, Cell

__all__ = ["model_cells"]


def model_cells(config: EvalConfig, cells: list[Cell], bases: dict[str, Cell], run: Path, capture: Path,
                cells_dir: Path) -> dict[str, dict[str, Any]]:
    """Run a trained model's cells in order, each JSON written as it finishes.

    Args:
        config: the evaluation's config.
        cells: the model's cells, Table 9's after the HMC fits they reuse.
        bases: ``cell key -> the cell`` whose searched lr and lambda_L it reuses (its
            finished JSON is read when the cell starts).
        run, capture: the model's run folder and the subject's capture.
        cells_dir: the subject's ``cells`` folder.

    Under several processes (``WORLD_SIZE`` > 1, set by the job's launcher) every fit cell
    fits its frames across the processes, which join one process group for the whole job;
    decoding cells run on the main process.

    Returns:
        ``cell key -> document`` (spec, summary, per-frame records) of every cell given.
    """
    from ..distributed import cleanup, from_main, setup, wait_all

    info = setup(config.device, "device")  # one process, or a process group for the whole job
    docs: dict[str, dict[str, Any]] = {}
    try:
        for cell in cells:
            base = bases.get(cell.key)
            spec = cell_spec(config, cell, run, capture, base)
            done = read_cell(cells_dir / f"{cell.key}.json", spec)  # finished before a requeue
            if done is not None:
                docs[cell.key] = done
                continue
            grid = None
            if base is not None:  # read by the main process, which wrote it
                path = cells_dir / f"{base.key}.json"
                doc = from_main(info, lambda: json.loads(path.read_text(encoding="utf-8")))
                grid = ((doc["lr"],), (doc["lambda_latent"],))
            (cells_dir / cell.key).parent.mkdir(parents=True, exist_ok=True)
            args = cell_args(config, cell, run, capture, cells_dir, spec, grid)
            fits = TASKS[cell.task].is_fit  # a fit runs on every process; a decoding on the main one
            docs[cell.key] = run_cell(args) if fits else from_main(info, lambda: run_cell(args))
            wait_all(info)  # the main process has written the cell's JSON before any process reads it
    finally:
        cleanup(info)
    return docs
