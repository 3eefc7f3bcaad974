"""A training run as a unit of work (what the evaluation's and the demo's jobs run):
finished or not, and trained to its end, continuing from its ``last.pt`` when it has one.
Calling :func:`train_run` again after an interruption (a killed process, a pre-empted or
timed-out cluster job) continues the run; training resumes exactly (its random numbers
are keyed by seed and step)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import yaml

from .checkpoint import plain_config
from .config import TrainConfig

__all__ = ["run_is_done", "train_run"]


def run_is_done(run: str | os.PathLike, config: TrainConfig) -> bool:
    """A finished run of this config: its avatar file and a final metrics file, same settings."""
    run = Path(run)
    if not ((run / "avatar.pt").is_file() and (run / "metrics.yaml").is_file() and (run / "config.yaml").is_file()):
        return False
    return yaml.safe_load((run / "config.yaml").read_text(encoding="utf-8")) == \
        yaml.safe_load(yaml.safe_dump(plain_config(config), sort_keys=False))


def train_run(config: TrainConfig, capture: str | os.PathLike, run: str | os.PathLike, *, threads: int = 0,
              log: Callable[[str], None] = print) -> str:
    """Train ``config`` on ``capture`` into the run folder ``run``, unless it is finished.

    Args:
        config: the training config.
        capture: the capture folder.
        run: the run folder; one holding ``last.pt`` (an interrupted run) is continued.
        threads: CPU threads of this process (0: torch's default).

    Returns:
        What happened, in one line (reused, or trained / resumed and how it ended).

    Raises:
        ValueError: the interrupted run in ``run`` has other settings than ``config`` (beyond
            the schedule fields a resumed run may change).
    """
    from .loop import train

    run = Path(run)
    if run_is_done(run, config):
        return f"reused {run} (finished before)"
    if threads:
        import torch

        torch.set_num_threads(threads)
    resume = (run / "last.pt").is_file() and (run / "config.yaml").is_file()
    log(f"{'resuming' if resume else 'training'} {run} on {capture}")
    result = train(config, capture, run, resume=resume, progress=False, log=log)
    line = f"{'resumed' if resume else 'trained'}: {result.describe()}"
    log(line)
    return line
