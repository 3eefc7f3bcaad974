"""Running a graph of jobs (trainings, evaluation cells) through submitit: processes on
this machine (``local``) or a SLURM cluster (``slurm``), one code path for both.

Each :class:`Job` is submitted by its own executor, whose folder holds the job's logs
(``JOBS/<subject>/<job>/<id>_0_log.out`` and ``.err``). Locally, at most ``parallel`` jobs
run at once and a job starts when the jobs it waits for have finished; on SLURM every job
is submitted at once, each waiting for the others through ``afterok`` dependencies (and
cancelled by SLURM when one of them fails). A job that reaches its time limit or is
pre-empted is requeued by submitit (:class:`Requeueable`'s ``checkpoint`` hook) and
continues from its own files: trainings from ``last.pt``, fit cells from their finished
batches.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ..errors import JobsFailedError
from .config import LaunchSpec

__all__ = ["Job", "Requeueable", "job_gpus", "visible_gpus", "submission_parameters", "submit_all", "run_jobs"]

#: Seconds between looks at the jobs' states (SLURM's ``sacct`` is asked less often by submitit).
_POLL = {"local": 0.5, "slurm": 15.0}


@dataclass(frozen=True)
class Job:
    """One unit of work.

    Attributes:
        name: unique name, also its log folder below the jobs folder (``p7/train-dam``).
        kind: what it is, for the progress counts (``train`` or ``cell``).
        label: how messages name it.
        fn: a module-level function, called as ``fn(**kwargs)`` in the job's process(es);
            called again after a requeue, it must continue from its own files.
        kwargs: its arguments (picklable).
        after: names of the jobs it waits for.
        processes: processes of the job (more than one: ``fn`` runs in each, with
            ``torch.distributed``'s environment set, as under ``torchrun``).
    """

    name: str
    kind: str
    label: str
    fn: Callable[..., Any]
    kwargs: dict[str, Any] = field(default_factory=dict)
    after: tuple[str, ...] = ()
    processes: int = 1


class Requeueable:
    """``fn(**kwargs)`` with ``threads`` CPU threads, which submitit requeues after a
    pre-emption or a time limit (it calls :meth:`checkpoint` on the signal): the new
    attempt calls ``fn`` again, and ``fn`` continues from its own files.

    ``env``: environment variables set first (the local launcher passes the caller's
    ``CUDA_VISIBLE_DEVICES`` on: submitit's own numbers GPUs from 0); ``exit_on_term``:
    SIGTERM ends the process (how the local launcher cancels a job; submitit ignores it,
    as SLURM sends it before its own kill)."""

    def __init__(self, fn: Callable[..., Any], kwargs: dict[str, Any], threads: int = 0,
                 distributed: bool = False, env: dict[str, str] | None = None, exit_on_term: bool = False) -> None:
        self.fn, self.kwargs, self.threads, self.distributed = fn, kwargs, threads, distributed
        self.env, self.exit_on_term = dict(env or {}), exit_on_term

    def __call__(self) -> Any:
        os.environ.update(self.env)
        if self.exit_on_term:
            signal.signal(signal.SIGTERM, _exit)
        if self.threads:
            import torch

            torch.set_num_threads(self.threads)
        if self.distributed:  # RANK, WORLD_SIZE, MASTER_ADDR/PORT, LOCAL_RANK from the job's tasks
            from submitit.helpers import TorchDistributedEnvironment

            TorchDistributedEnvironment().export(set_cuda_visible_devices=False, overwrite=True)
        return self.fn(**self.kwargs)

    def checkpoint(self, *args: Any, **kwargs: Any):
        """submitit's hook before a requeue: the same call again (the work resumes from its
        files, which it writes as it goes)."""
        from submitit.helpers import DelayedSubmission

        return DelayedSubmission(self)


def visible_gpus() -> list[str]:
    """The GPUs this process sees, as ``CUDA_VISIBLE_DEVICES`` names them (or numbered)."""
    names = os.environ.get("CUDA_VISIBLE_DEVICES")
    if names is not None:
        return [n.strip() for n in names.split(",") if n.strip()]
    import torch

    return [str(k) for k in range(torch.cuda.device_count())] if torch.cuda.is_available() else []


def job_gpus(spec: LaunchSpec, job: Job) -> int:
    """GPUs ``job`` is given: one per process, at most ``gpus_per_job`` (0: the local
    launcher's jobs share every GPU)."""
    return min(spec.gpus_per_job, job.processes) if spec.gpus_per_job else 0


def _exit(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)


def _sbatch_extra(spec: LaunchSpec, dependencies: list[str]) -> dict[str, Any]:
    extra = {k.replace("_", "-"): v for k, v in spec.sbatch.items()}
    if dependencies:
        extra.setdefault("kill-on-invalid-dep", "yes")
    return extra


def submission_parameters(spec: LaunchSpec, job: Job, dependencies: list[str]) -> dict[str, Any]:
    """The submitit parameters of ``job`` (``AutoExecutor.update_parameters``), with the
    SLURM ids of the jobs it waits for in ``dependencies``. Locally the job's GPUs are
    set by the launcher itself (:class:`Requeueable`'s ``env``)."""
    params: dict[str, Any] = {"name": job.name.replace("/", "-"), "tasks_per_node": job.processes, "nodes": 1}
    if spec.launcher == "local":
        params.update(timeout_min=spec.time_min or 10 ** 6, gpus_per_node=0)
        return params
    params["timeout_min"] = spec.time_min or 24 * 60
    if spec.gpus_per_job:
        params["gpus_per_node"] = job_gpus(spec, job)
    if spec.cpus_per_job:
        params["cpus_per_task"] = max(1, spec.cpus_per_job // job.processes)
    if spec.mem_gb:
        params["mem_gb"] = spec.mem_gb
    if spec.partition:
        params["slurm_partition"] = spec.partition
    if spec.account:
        params["slurm_account"] = spec.account
    if dependencies:
        params["slurm_dependency"] = "afterok:" + ":".join(dependencies)
    extra = _sbatch_extra(spec, dependencies)
    if extra:
        params["slurm_additional_parameters"] = extra
    return params


def _threads(spec: LaunchSpec, job: Job, parallel: int) -> int:
    """CPU threads of each of the job's processes (0: torch's default)."""
    if spec.cpus_per_job:
        return max(1, spec.cpus_per_job // job.processes)
    return 1 if spec.launcher == "local" and parallel > 1 else 0


def _submit(job: Job, spec: LaunchSpec, folder: Path, dependencies: list[str], parallel: int,
            gpus: list[str] | None = None):
    """Submit ``job``; locally ``gpus`` are the GPUs it sees (``None``: the caller's own)."""
    import submitit

    from ..errors import JobsFailedError

    (folder / job.name).mkdir(parents=True, exist_ok=True)
    for old in (folder / job.name).glob("*_result.pkl"):  # a reused process id must not find an old result
        old.unlink()
    executor = submitit.AutoExecutor(folder=folder / job.name, cluster=spec.launcher,
                                     slurm_max_num_timeout=spec.requeues, local_max_num_timeout=spec.requeues)
    executor.update_parameters(**submission_parameters(spec, job, dependencies))
    local = spec.launcher == "local"
    env = {}
    if local:
        names = visible_gpus() if gpus is None else gpus
        env = {"CUDA_VISIBLE_DEVICES": ",".join(names)} if names or "CUDA_VISIBLE_DEVICES" in os.environ else {}
    try:
        return executor.submit(Requeueable(job.fn, job.kwargs, _threads(spec, job, parallel), job.processes > 1, env,
                                           exit_on_term=local))
    except (submitit.core.utils.FailedSubmissionError, submitit.core.utils.FailedJobError, OSError) as exc:
        raise JobsFailedError(f"{job.label}: could not be submitted ({type(exc).__name__}: {str(exc).strip()[:600]})",
                              {job.name: ""}) from None


def _descendants(pid: int) -> list[int]:
    """Processes below ``pid`` (Linux ``/proc``; none found elsewhere)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
    below: set[int] = set()
    frontier = {pid}
    while frontier:
        frontier = {p for p, parent in parents.items() if parent in frontier} - below
        below |= frontier
    return sorted(below)


def _cancel(handles: dict[str, Any], spec: LaunchSpec, log: Callable[[str], None]) -> None:
    """Cancel jobs: SLURM's ``scancel``; locally SIGTERM to each job's controller, which
    passes it to the job's processes (a SIGINT, submitit's own local cancel, is lost where
    the command started with SIGINT ignored, as in a script's background job), then
    SIGKILL to what still runs after 15 s."""
    if spec.launcher != "local":
        for handle in handles.values():
            handle.cancel(check=False)
        return
    below = {name: _descendants(int(h.job_id)) for name, h in handles.items()}
    for handle in handles.values():
        try:
            os.kill(int(handle.job_id), signal.SIGTERM)
        except (ProcessLookupError, ValueError):
            pass
    t0 = time.monotonic()
    while any(not h.done() for h in handles.values()) and time.monotonic() - t0 < 15:
        time.sleep(0.1)
    for name, handle in handles.items():
        if not handle.done():
            log(f"  {name}: still running 15 s after SIGTERM; killed")
            for pid in [int(handle.job_id)] + below[name]:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass


def _log_file(handle) -> str:
    """The job's error log when it has anything in it, else its output log."""
    err, out = Path(handle.paths.stderr), Path(handle.paths.stdout)
    return str(err if err.is_file() and err.stat().st_size else out)


def _error_text(exc: BaseException) -> str:
    """The job's own exception (``Type: message``) out of submitit's report of its traceback."""
    text = str(exc)
    if "Traceback (most recent call last):" in text:
        trace = text.split("Traceback (most recent call last):", 1)[1].split("\n----", 1)[0]
        lines = trace.strip("\n").splitlines()
        first = next((k for k, line in enumerate(lines) if line and not line[0].isspace()), None)
        if first is not None:
            return " ".join(line.strip() for line in lines[first:] if line.strip())[:400]
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[0][:400] if lines else type(exc).__name__


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def submit_all(jobs: list[Job], spec: LaunchSpec, folder: str | os.PathLike, parallel: int = 1,
               handles: dict[str, Any] | None = None) -> dict[str, Any]:
    """Submit every job now, in list order, each depending on the jobs it waits for (on
    SLURM: ``afterok`` on their ids, which must come earlier in the list).

    Args:
        handles: filled as jobs are submitted (what was submitted before an error).

    Returns:
        ``job name -> submitit job``.

    Raises:
        JobsFailedError: ``sbatch`` refused a job (the ones before it are submitted).
    """
    handles = {} if handles is None else handles
    known = {j.name for j in jobs}
    for k, job in enumerate(jobs):
        later = [d for d in job.after if d not in {j.name for j in jobs[:k]}]
        if later:
            raise ValueError(f"jobs: {job.name} waits for {later}, which must come before it in the list"
                             if all(d in known for d in later) else f"jobs: {job.name} waits for unknown {later}")
    for job in jobs:
        handles[job.name] = _submit(job, spec, Path(folder), [handles[d].job_id for d in job.after], parallel)
    return handles


def run_jobs(jobs: list[Job], spec: LaunchSpec, folder: str | os.PathLike, *, parallel: int = 1,
             progress: bool = True, log: Callable[[str], None] = print,
             on_finish: Callable[[Job, Any], None] | None = None) -> dict[str, Any]:
    """Run ``jobs`` (waiting for one another as their ``after`` says) and wait for them all.

    Args:
        jobs: the jobs; ``after`` may only name jobs of the list (what is finished before
            is left out of the list, and out of ``after``).
        spec: the launcher and its settings.
        folder: the jobs' folder (one log folder per job).
        parallel: jobs at once with the local launcher (a job of N processes counts N).
            With ``gpus_per_job``, a local job also waits for free GPUs of this machine and
            sees only its own (:func:`job_gpus`).
        progress: a progress bar with the counts of finished, running and failed jobs.
        on_finish: called in this process with each finished job and its result.

    Returns:
        ``job name -> result`` (task 0's).

    Raises:
        ValueError: a local job needs more GPUs than this machine shows.
        JobsFailedError: after every job that could run has run, naming each failed job
            (and those not started because a job they wait for failed) and its log file;
            or when ``sbatch`` refuses a job.
        KeyboardInterrupt: on Ctrl-C, SIGTERM or SIGHUP. On this and any other error the
            unfinished jobs are cancelled first.
    """
    from tqdm.auto import tqdm

    folder = Path(folder)
    by_name = {j.name: j for j in jobs}
    unknown = {d for j in jobs for d in j.after if d not in by_name}
    if len(by_name) != len(jobs) or unknown:
        raise ValueError(f"jobs: names must be unique and after= must name jobs of the list; unknown {sorted(unknown)}")
    local = spec.launcher == "local"
    free = visible_gpus() if local and spec.gpus_per_job else []
    short = [j for j in jobs if local and job_gpus(spec, j) > len(free)]
    if short:
        raise ValueError(f"launch.gpus_per_job: {short[0].label} needs {job_gpus(spec, short[0])} GPU(s), this machine "
                         f"shows {len(free)} (CUDA_VISIBLE_DEVICES {os.environ.get('CUDA_VISIBLE_DEVICES', 'unset')})")
    held: dict[str, list[str]] = {}  # name -> the GPUs a running local job was given
    waiting = list(jobs)
    running: dict[str, Any] = {}  # name -> submitit job
    results: dict[str, Any] = {}
    failed: dict[str, tuple[str, str]] = {}  # name -> (what, log file)
    kinds = sorted({j.kind for j in jobs})
    bar = tqdm(total=len(jobs), desc="jobs", unit="job", disable=not progress)

    def counts() -> str:
        parts = []
        for kind in kinds:
            total = sum(j.kind == kind for j in jobs)
            done = sum(by_name[n].kind == kind for n in results)
            mine = [h for n, h in running.items() if by_name[n].kind == kind]
            run = len(mine) if local else sum(h.state == "RUNNING" for h in mine)
            bad = sum(by_name[n].kind == kind for n in failed)
            parts.append(f"{kind} {done}/{total} done, {run} running" + (f", {len(mine) - run} queued"
                                                                          if len(mine) > run else "") +
                         (f", {bad} failed" if bad else ""))
        return "; ".join(parts)

    def submit_ready() -> None:  # the local launcher: what can start now
        for job in list(waiting):
            lost = [d for d in job.after if d in failed]
            if lost:
                waiting.remove(job)
                failed[job.name] = (f"not started: it needs {by_name[lost[0]].label}, which failed", "")
                bar.update(1)
                continue
            busy = sum(by_name[n].processes for n in running)
            need = job_gpus(spec, job)
            if not all(d in results for d in job.after) or (running and busy + job.processes > parallel) or \
                    need > len(free):
                continue
            gpus = None
            if spec.gpus_per_job:
                gpus, free[:need] = free[:need], []
                held[job.name] = gpus
            running[job.name] = _submit(job, spec, folder, [], parallel, gpus)
            waiting.remove(job)
            log(f"  started {job.label}" + (f" on GPU {','.join(gpus)}" if gpus else "") +
                f": log {running[job.name].paths.stdout}")

    previous = {}
    if threading.current_thread() is threading.main_thread():  # `kill PID`, a closed terminal: as Ctrl-C
        previous = {sig: signal.signal(sig, _interrupt) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        if local:
            submit_ready()
        else:
            submit_all(jobs, spec, folder, handles=running)
            waiting.clear()
            log(f"  submitted {len(jobs)} job(s) (SLURM ids {', '.join(h.job_id for h in running.values())}); logs in "
                f"{folder}")
        while running or waiting:
            time.sleep(_POLL[spec.launcher])
            for name in [n for n, h in running.items() if h.done()]:
                handle = running.pop(name)
                free.extend(held.pop(name, []))
                job = by_name[name]
                lost = [d for d in job.after if d in failed]
                try:
                    results[name] = handle.results()[0]
                except Exception as exc:  # noqa: BLE001 - the job's own error, reported with its log
                    if lost:  # SLURM cancelled it (kill-on-invalid-dep)
                        failed[name] = (f"not started: it needs {by_name[lost[0]].label}, which failed", "")
                    else:
                        failed[name] = (_error_text(exc), _log_file(handle))
                        log(f"  FAILED {job.label}: {failed[name][0]} (log {failed[name][1]})")
                else:
                    if on_finish is not None:
                        on_finish(job, results[name])
                bar.update(1)
                bar.set_postfix_str(counts())
            if local:
                submit_ready()
            if waiting and not running:  # only jobs whose dependencies can no longer finish
                for job in waiting:
                    failed[job.name] = ("not started: a job it needs failed", "")
                break
    except BaseException as exc:  # Ctrl-C, a signal, a report that failed to write, sbatch refusing a job
        if running:
            _cancel(running, spec, log)
            what = "interrupted" if isinstance(exc, KeyboardInterrupt) else f"stopped ({type(exc).__name__})"
            log(f"  {what}: cancelled {len(running)} unfinished job(s); --resume continues from what they wrote")
        raise
    finally:
        bar.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if failed:
        lines = [f"{by_name[n].label}: {what}" + (f" (log {path})" if path else "") for n, (what, path) in failed.items()]
        raise JobsFailedError(f"{len(failed)} of {len(jobs)} job(s) failed ({counts()}):\n  " + "\n  ".join(lines) +
                              "\nwhat finished is kept; --resume runs the rest",
                              {n: path for n, (_, path) in failed.items()})
    return results
