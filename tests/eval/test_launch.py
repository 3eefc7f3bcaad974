"""Jobs through submitit: local jobs wait for what they need and name a failed job's log;
a pre-empted training is requeued and ends where an uninterrupted one does; an evaluation
whose training process is killed resumes to the tables of an uninterrupted run; the SLURM
submission scripts carry the partition, GPUs, time and afterok dependencies (a fake
``sbatch`` records them; nothing is submitted)."""

import csv
import os
import signal
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch
import yaml

from avatarfit.errors import JobsFailedError
from avatarfit.eval.config import LaunchSpec, load_eval_config
from avatarfit.eval.launch import Job, _submit, run_jobs, submission_parameters, submit_all
from avatarfit.eval.run import run_evaluation
from avatarfit.train.runs import train_run
from tests.train.conftest import tiny_config

REPO = Path(__file__).resolve().parents[2]


def _stamp(path: str, needs: str = "") -> str:
    """Write whether ``needs`` existed when this job ran."""
    Path(path).write_text(str(Path(needs).is_file()) if needs else "first")
    return path


def _sleep(seconds: float) -> None:
    time.sleep(seconds)


def _fail() -> None:
    raise ValueError("no frame s1/000042 in this capture")


def _tasks(pid: int) -> list[int]:
    """The processes below ``pid`` that run a job's function (submitit's task processes)."""
    parents = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except OSError:
                continue
    below, found = {pid}, []
    for _ in range(4):
        below |= {p for p, parent in parents.items() if parent in below}
    for p in below - {pid}:
        try:
            if b"submitit.core._submit" in Path(f"/proc/{p}/cmdline").read_bytes():
                found.append(p)
        except OSError:
            continue
    return found


def _wait_for(path: Path, seconds: float = 300) -> None:
    t0 = time.monotonic()
    while not path.exists():
        assert time.monotonic() - t0 < seconds, f"{path} did not appear"
        time.sleep(0.05)


def test_local_jobs_wait_for_what_they_need_and_failures_name_their_log(tmp_path):
    a, b, d = (str(tmp_path / n) for n in "abd")
    jobs = [Job("s/a", "train", "A", _stamp, {"path": a}),
            Job("s/b", "cells", "B", _stamp, {"path": b, "needs": a}, after=("s/a",)),
            Job("s/c", "train", "C", _fail),
            Job("s/d", "cells", "D", _stamp, {"path": d}, after=("s/c",))]
    finished, messages = [], []
    with pytest.raises(JobsFailedError) as err:
        run_jobs(jobs, LaunchSpec(), tmp_path / "jobs", parallel=2, progress=False, log=messages.append,
                 on_finish=lambda job, result: finished.append((job.name, result)))
    assert sorted(finished) == [("s/a", a), ("s/b", b)]
    assert Path(b).read_text() == "True"  # B started after A had finished
    assert not Path(d).exists()
    text = str(err.value)
    assert "C: ValueError: no frame s1/000042 in this capture (log " in text
    assert "D: not started: it needs C, which failed" in text
    log = Path(err.value.failed["s/c"])
    assert log.parent == tmp_path / "jobs" / "s" / "c" and "no frame s1/000042" in log.read_text()
    assert any(m.startswith("  FAILED C:") for m in messages)
    with pytest.raises(ValueError, match="unknown"):
        run_jobs([Job("x", "train", "X", _fail, after=("y",))], LaunchSpec(), tmp_path / "j2", progress=False)


def test_a_preempted_training_is_requeued_and_ends_where_an_uninterrupted_one_does(tiny_capture, tmp_path):
    config = tiny_config("dam", steps=120, checkpoint_every=5, eval_every=60)
    train_run(config, tiny_capture, tmp_path / "reference", log=lambda m: None)
    run = tmp_path / "run"
    handle = _submit(Job("t", "train", "T", train_run, {"config": config, "capture": tiny_capture, "run": run}),
                     LaunchSpec(), tmp_path / "jobs", [], 1)
    _wait_for(run / "last.pt")
    tasks = _tasks(int(handle.job_id))
    assert len(tasks) == 1
    os.kill(tasks[0], signal.SIGUSR2)  # what SLURM sends before a pre-emption or the time limit
    line = handle.results()[0]
    assert line.startswith("resumed:"), line
    out = Path(handle.paths.stdout).read_text() + Path(handle.paths.stderr).read_text()
    assert "preempted" in out and "Requeued" in out
    ref = torch.load(tmp_path / "reference" / "avatar.pt", weights_only=False)
    got = torch.load(run / "avatar.pt", weights_only=False)
    for key, value in ref["model"].items():
        assert torch.equal(value, got["model"][key]), key
    metrics = [yaml.safe_load((d / "metrics.yaml").read_text()) for d in (tmp_path / "reference", run)]
    for m in metrics:
        m.pop("seconds", None)
    assert metrics[0] == metrics[1]


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_a_terminated_command_cancels_its_local_jobs(tmp_path):
    """``kill PID`` of the waiting command (started with SIGINT ignored, as a script's
    background job is) leaves no job running that a --resume would start again."""
    code = ("from avatarfit.eval.launch import Job, run_jobs; from avatarfit.eval.config import LaunchSpec; "
            "from tests.eval.test_launch import _sleep; "
            f"run_jobs([Job('s', 'cells', 'S', _sleep, {{'seconds': 600}})], LaunchSpec(), {str(tmp_path)!r}, "
            "progress=False)")
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    t0 = time.monotonic()
    while not _tasks(proc.pid):
        assert time.monotonic() - t0 < 60 and proc.poll() is None, "the job did not start"
        time.sleep(0.1)
    task = _tasks(proc.pid)[0]
    time.sleep(1.0)  # the job's function is running
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=60)
    assert "interrupted: cancelled 1 unfinished job(s)" in out, out
    assert not _alive(task)


TWO = {"subjects": [{"name": "a", "subject": "procedural", "seed": 3},
                    {"name": "b", "subject": "procedural", "seed": 4}],
       "capture": {"segments": 1, "frames": 8, "cameras": 3, "image_size": [64, 48], "texture_size": 64},
       "train": {"base": str(REPO / "configs/train/small.yaml"),
                 "set": {"model": {"dam": {"texture_size": 64}}, "data": {"validation": 0.25, "test": 0.25},
                         "train": {"steps": 30, "eval_every": 15, "checkpoint_every": 5}}},
       "models": ["dam", "dam_hmc_reg"], "tables": [7],
       "fit": {"frames": 2, "batch": 2, "search_frames": 1, "steps": 3, "patience": 2, "lr": [0.1],
               "lambda_frontal": [0.01], "lambda_observed": [0.1]},
       "jobs": 2, "device": "cpu"}


def _table_rows(path: Path) -> list[dict]:
    return [{k: v for k, v in row.items() if "seconds" not in k} for row in csv.DictReader(path.open())]


def test_an_evaluation_whose_training_is_killed_resumes_to_the_uninterrupted_tables(tmp_path):
    (tmp_path / "eval.yaml").write_text(yaml.safe_dump(TWO))
    config = load_eval_config(tmp_path / "eval.yaml")
    out = tmp_path / "out"
    box = {}

    def evaluate():
        try:
            run_evaluation(config, out, progress=False, log=lambda m: None)
        except Exception as exc:  # noqa: BLE001 - inspected below
            box["error"] = exc

    worker = threading.Thread(target=evaluate)
    worker.start()
    _wait_for(out / "a" / "runs" / "dam" / "last.pt")
    controller = int(next((out / "jobs" / "a" / "train-dam").glob("*_0_log.out")).name.split("_")[0])
    tasks = _tasks(controller)
    assert len(tasks) == 1
    os.kill(tasks[0], signal.SIGKILL)  # the machine went away mid-training
    worker.join(timeout=600)
    error = box.get("error")
    assert isinstance(error, JobsFailedError), error
    assert set(error.failed) == {"a/train-dam", "a/train-dam_hmc_reg", "a/cells-dam", "a/cells-dam_hmc_reg"}
    assert not (out / "a" / "runs" / "dam" / "avatar.pt").exists()
    assert len(list((out / "b" / "cells").glob("*/*.json"))) == 14  # the other subject finished

    messages = []
    again = run_evaluation(config, out, resume=True, progress=False, log=messages.append)
    assert "  2 training(s) and 14 cell(s) of 2 model(s) to run; 0 cell(s) finished before" in messages
    assert "  0 training(s) and 0 cell(s) of 0 model(s) to run; 14 cell(s) finished before" in messages  # b
    logs = "".join(p.read_text() for p in (out / "jobs" / "a" / "train-dam").glob("*_0_log.out"))
    assert "resuming" in logs
    assert set(again.results) == {"a", "b"}

    reference = run_evaluation(config, tmp_path / "reference", subjects=["a"], progress=False, log=lambda m: None)
    assert _table_rows(out / "a" / "tables.csv") == _table_rows(reference.out / "a" / "tables.csv")


def _fake_slurm(tmp_path: Path) -> Path:
    """``sbatch`` that records its script and answers with increasing ids; ``srun`` present."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "sbatch").write_text(f"""#!/bin/sh
n=$(cat {tmp_path}/count 2>/dev/null || echo 100); n=$((n + 1)); echo $n > {tmp_path}/count
cp "$1" {tmp_path}/script_$n.sh
echo "Submitted batch job $n"
""")
    (bin_dir / "srun").write_text("#!/bin/sh\nexit 0\n")
    for f in bin_dir.iterdir():
        f.chmod(f.stat().st_mode | stat.S_IEXEC)
    return bin_dir


def test_slurm_scripts_carry_the_resources_and_the_dependencies(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", f"{_fake_slurm(tmp_path)}:{os.environ['PATH']}")
    spec = LaunchSpec(launcher="slurm", partition="gpu", account="lab", gpus_per_job=2, cpus_per_job=8, mem_gb=64,
                      time_min=240, sbatch={"qos": "high"})
    jobs = [Job("s/train-dam", "train", "DAM", _stamp, {"path": "x"}),
            Job("s/train-dam_hmc_reg", "train", "Reg", _stamp, {"path": "y"}, after=("s/train-dam",)),
            Job("s/cells-dam_hmc_reg", "cells", "cells", _stamp, {"path": "z"}, after=("s/train-dam_hmc_reg",),
                processes=2)]
    handles = submit_all(jobs, spec, tmp_path / "jobs")
    assert [h.job_id for h in handles.values()] == ["101", "102", "103"]
    first, second, third = ((tmp_path / f"script_{n}.sh").read_text() for n in (101, 102, 103))
    for text in (first, second, third):
        for line in ("#SBATCH --partition=gpu", "#SBATCH --account=lab", "#SBATCH --mem=64GB", "#SBATCH --time=240",
                     "#SBATCH --qos=high", "#SBATCH --signal=USR2@90", "#SBATCH --open-mode=append"):
            assert line in text, (line, text)
    # a training runs one process on one GPU; the two-process cells share the job's GPUs and cores
    for text in (first, second):
        assert "#SBATCH --gpus-per-node=1" in text and "#SBATCH --cpus-per-task=8" in text
    assert "#SBATCH --gpus-per-node=2" in third and "#SBATCH --cpus-per-task=4" in third
    assert "--dependency" not in first
    assert "#SBATCH --dependency=afterok:101" in second and "#SBATCH --kill-on-invalid-dep=yes" in second
    assert "#SBATCH --dependency=afterok:102" in third and "#SBATCH --ntasks-per-node=2" in third
    assert f"#SBATCH --output={tmp_path / 'jobs' / 's' / 'train-dam'}/%j_0_log.out" in first  # the job's log folder
    assert "-m submitit.core._submit" in first and "srun" in first
    with pytest.raises(ValueError, match="before it"):
        submit_all(jobs[::-1], spec, tmp_path / "jobs2")
    mine = LaunchSpec(launcher="slurm", sbatch={"kill_on_invalid_dep": "no"})  # the user's choice stands
    assert submission_parameters(mine, jobs[1], ["7"])["slurm_additional_parameters"] == {"kill-on-invalid-dep": "no"}


def test_sbatch_refusing_a_job_is_named_and_cancels_what_was_submitted(tmp_path, monkeypatch):
    bin_dir = _fake_slurm(tmp_path)
    (bin_dir / "sbatch").write_text(f"""#!/bin/sh
if [ -f {tmp_path}/count ]; then echo "sbatch: error: invalid partition specified: gpux" >&2; exit 1; fi
echo 100 > {tmp_path}/count; echo "Submitted batch job 100"
""")
    (bin_dir / "scancel").write_text(f"#!/bin/sh\necho \"$@\" >> {tmp_path}/cancelled\n")
    (bin_dir / "scancel").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    jobs = [Job("s/a", "train", "A", _stamp, {"path": "x"}), Job("s/b", "train", "B", _stamp, {"path": "y"})]
    with pytest.raises(JobsFailedError, match="B: could not be submitted.*invalid partition") as err:
        run_jobs(jobs, LaunchSpec(launcher="slurm", partition="gpux"), tmp_path / "jobs", progress=False,
                 log=lambda m: None)
    assert set(err.value.failed) == {"s/b"}
    assert "100" in (tmp_path / "cancelled").read_text()  # A, already queued, was cancelled


def _gpu_span(path: str) -> str:
    """Record the GPUs this job sees and when it ran."""
    t0 = time.time()
    time.sleep(1.0)
    Path(path).write_text(f"{os.environ.get('CUDA_VISIBLE_DEVICES')} {t0} {time.time()}")
    return path


def test_local_jobs_with_gpus_per_job_get_gpus_of_their_own(tmp_path, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "4,6")  # the caller's GPUs, by their own names
    spec = LaunchSpec(gpus_per_job=1)
    jobs = [Job(f"s/{k}", "cells", str(k), _gpu_span, {"path": str(tmp_path / str(k))}) for k in range(3)]
    run_jobs(jobs, spec, tmp_path / "jobs", parallel=3, progress=False, log=lambda m: None)
    spans = [(g, float(a), float(b)) for g, a, b in (Path(tmp_path / str(k)).read_text().split() for k in range(3))]
    assert {g for g, _, _ in spans} <= {"4", "6"}
    for i, (g, a, b) in enumerate(spans):
        for h, c, d in spans[i + 1:]:
            assert g != h or b <= c or d <= a, spans  # two jobs at once never share a GPU
    with pytest.raises(ValueError, match="needs 2 GPU.*shows 1"):
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "4")
        run_jobs([Job("s/x", "cells", "X", _gpu_span, {"path": "x"}, processes=2)], LaunchSpec(gpus_per_job=2),
                 tmp_path / "j2", parallel=2, progress=False)
