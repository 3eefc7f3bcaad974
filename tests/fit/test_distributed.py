"""``torchrun -m avatarfit.cli fit``: each process fits a disjoint share of the batches and
the outputs merge into what one process writes (two gloo processes on the CPU here)."""

import json
import os
import subprocess
import sys

import numpy as np

ARGS = ["--target", "hmc", "--frames", "", "--batch", "1", "--steps", "5", "--search", "--device", "cpu",
        "--no-progress"]


def _fit(run, capture, out, processes: int):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # torchrun's default per process: the same arithmetic
    head = [sys.executable, "-m", "avatarfit.cli"] if processes == 1 else [
        sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={processes}",
        "-m", "avatarfit.cli", "--"]  # "--": torchrun would read --run as its own --run-path
    proc = subprocess.run(head + ["fit", "--run", str(run), "--capture", str(capture), "--out", str(out)] + ARGS,
                          capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def _without_timings(doc):
    if isinstance(doc, dict):
        return {k: _without_timings(v) for k, v in doc.items() if k not in ("seconds", "seconds_per_frame")}
    if isinstance(doc, list):
        return [_without_timings(v) for v in doc]
    return doc


def _same_outputs(one, two):
    a, b = np.load(one / "fits.npz"), np.load(two / "fits.npz")
    assert sorted(a.files) == sorted(b.files)
    for key in a.files:
        if key != "seconds":
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    ma, mb = (json.loads((d / "metrics.json").read_text()) for d in (one, two))
    assert _without_timings(ma) == _without_timings(mb)
    assert json.loads((one / "search.json").read_text()) == json.loads((two / "search.json").read_text())
    assert sorted(p.name for p in (one / "strips").iterdir()) == sorted(p.name for p in (two / "strips").iterdir())


def test_two_processes_write_what_one_does_and_resume_their_shares(dam_run, tiny_capture, tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    _fit(dam_run, tiny_capture, one, 1)
    out = _fit(dam_run, tiny_capture, two, 2)
    assert out.count("fitted 3 frames now (3 in all)") == 1  # the main process reports, for both
    _same_outputs(one, two)
    assert len(list((two / "tb").glob("events.*.rank*"))) == 2  # one TensorBoard file per process
    # Resume: a batch of each process lost (batches 0, 2 are rank 0's, 1 rank 1's); only those two are fitted again.
    for k in (1, 2):
        (two / "parts" / f"{k:05d}.npz").unlink()
    again = _fit(dam_run, tiny_capture, two, 2)
    assert "fitted 2 frames now (3 in all)" in again and "search: reusing" in again
    _same_outputs(one, two)
    # A sequence job is one process's work: refused by name, nothing written.
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2",
                           "-m", "avatarfit.cli", "--", "fit", "--run", str(dam_run), "--capture", str(tiny_capture),
                           "--out", str(tmp_path / "seq"), "--target", "frontal", "--sequence", "--device", "cpu"],
                          capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode != 0 and "--sequence: a segment's frames are fitted in order" in proc.stderr
    assert not (tmp_path / "seq").exists()
