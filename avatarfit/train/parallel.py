"""Several trainings side by side, one ``avatarfit train`` process each (what the demo and
the evaluation run): on a CPU, N single-threaded processes train N models faster than one
after the other with N threads. Finished runs of the same config are reused, interrupted
ones resume from their ``last.pt``; runs that need another run (DAM-*-Reg needs its DAM)
start when it has finished.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import yaml

from .checkpoint import plain_config
from .config import TrainConfig

__all__ = ["TrainTask", "run_is_done", "train_side_by_side"]


@dataclass(frozen=True)
class TrainTask:
    """One training: its config, its run folder and the names of the tasks it waits for."""

    config: TrainConfig
    run: Path
    after: tuple[str, ...] = ()


def run_is_done(run: Path, config: TrainConfig) -> bool:
    """A finished run of this config: its avatar file and a final metrics file, same settings."""
    if not ((run / "avatar.pt").is_file() and (run / "metrics.yaml").is_file() and (run / "config.yaml").is_file()):
        return False
    return yaml.safe_load((run / "config.yaml").read_text(encoding="utf-8")) == \
        yaml.safe_load(yaml.safe_dump(plain_config(config), sort_keys=False))


def _last_line(path: Path) -> str:
    text = path.read_text(encoding="utf-8", errors="replace").strip() if path.is_file() else ""
    return text.splitlines()[-1] if text else "done"


def train_side_by_side(tasks: dict[str, TrainTask], capture: Path, *, workers: int = 2, progress: bool = True,
                       log: Callable[[str], None] = print, labels: dict[str, str] | None = None) -> set[str]:
    """Train the tasks not finished yet, at most ``workers`` processes at a time.

    Each run folder's parent gets ``NAME.yaml`` (the config, which ``avatarfit train
    --config`` accepts as it is) and ``NAME.log`` (the process's output). With more than one
    worker each process uses one thread.

    Returns:
        The names trained (or resumed) now.

    Raises:
        RuntimeError: naming each failed run and the end of its log (the others finish first).
    """
    from tqdm.auto import tqdm

    labels = labels or {}
    todo = {n: t for n, t in tasks.items() if not run_is_done(t.run, t.config)}
    if not todo:
        return set()
    env = dict(os.environ)
    if workers > 1:
        env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    running: dict[str, tuple[subprocess.Popen, object]] = {}
    finished: set[str] = set(tasks) - set(todo)
    failed: dict[str, str] = {}
    bar = tqdm(total=len(todo), desc="train", unit="model", disable=not progress)
    t0 = time.monotonic()
    try:
        while len(finished) + len(failed) < len(tasks):
            for name, task in todo.items():
                if name in running or name in finished or name in failed or len(running) >= workers:
                    continue
                if any(d in failed for d in task.after):
                    failed[name] = f"not started: it needs {', '.join(task.after)}, which failed"
                    continue
                if not all(d in finished for d in task.after):
                    continue
                task.run.mkdir(parents=True, exist_ok=True)
                spec = task.run.parent / f"{name}.yaml"
                spec.write_text(yaml.safe_dump(plain_config(task.config), sort_keys=False), encoding="utf-8")
                resume = (task.run / "last.pt").is_file() and (task.run / "config.yaml").is_file()
                cmd = [sys.executable, "-m", "avatarfit.cli", "train", "--capture", str(capture), "--out",
                       str(task.run), "--no-progress"]
                cmd += ["--resume", "--set", f"train.steps={task.config.train.steps}"] if resume else \
                    ["--config", str(spec)]
                logfile = open(task.run.parent / f"{name}.log", "w", encoding="utf-8")  # noqa: SIM115 - closed below
                running[name] = (subprocess.Popen(cmd, stdout=logfile, stderr=subprocess.STDOUT, env=env), logfile)
                log(f"  training {labels.get(name, name)}{' (resuming)' if resume else ''}: log {logfile.name}")
            if not running and len(finished) + len(failed) < len(tasks):
                raise RuntimeError(f"train: cannot start {sorted(set(tasks) - finished - set(failed))} "
                                   "(they wait for runs that are not among the tasks)")
            time.sleep(0.5)
            for name in [n for n, (p, _) in running.items() if p.poll() is not None]:
                proc, logfile = running.pop(name)
                logfile.close()
                logpath = tasks[name].run.parent / f"{name}.log"
                if proc.returncode != 0 or not (tasks[name].run / "avatar.pt").is_file():
                    text = logpath.read_text(encoding="utf-8", errors="replace").strip()
                    failed[name] = f"exit {proc.returncode}: {text[-800:]}"
                else:
                    finished.add(name)
                    log(f"  {labels.get(name, name)} ({(time.monotonic() - t0) / 60:.1f} min): {_last_line(logpath)}")
                bar.update(1)
    except KeyboardInterrupt:
        for proc, _ in running.values():
            proc.terminate()
        raise
    finally:
        bar.close()
        for _, logfile in running.values():
            logfile.close()
    if failed:
        raise RuntimeError("train: " + "; ".join(f"{labels.get(n, n)} ({msg})" for n, msg in failed.items()))
    return set(todo)
