"""Running an evaluation's cells in worker processes (``jobs`` of them), wave by wave:
Table 9's cells after the HMC fits whose searched settings they reuse."""

from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any, Callable

from .cache import read_cell, summary_of
from .cells import cell_args, cell_spec, describe, run_cell
from .config import EvalConfig
from .plan import TASKS, Cell

__all__ = ["run_cells"]


def _worker_init(threads: int) -> None:
    import torch

    if threads:
        torch.set_num_threads(threads)


def run_cells(config: EvalConfig, capture: Path, runs: dict[str, Path], cells_dir: Path, cells: list[Cell],
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
                    done = read_cell(path, spec)
                    if done is not None:
                        docs[cell.key] = done
                        bar.update(1)
                        continue
                    path.parent.mkdir(parents=True, exist_ok=True)
                    args = cell_args(config, cell, runs[cell.model], capture, cells_dir, spec, grid)
                    futures[pool.submit(run_cell, args)] = cell
                for fut in as_completed(futures):
                    cell = futures[fut]
                    try:
                        docs[cell.key] = fut.result()
                    except Exception as exc:  # the cells finished so far stay written
                        raise RuntimeError(f"evaluate: cell {cell.key} ({cells_dir.parent.name}) failed: "
                                           f"{type(exc).__name__}: {exc}; --resume retries it") from exc
                    bar.update(1)
                    log(f"  {cell.key}: {describe(cell, docs[cell.key]['summary'])}")
    finally:
        bar.close()
    for key, doc in docs.items():
        results[key] = summary_of(doc)
    return results
