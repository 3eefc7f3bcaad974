"""The prepared GPU check's dry run: every stage executes on the CPU at tiny sizes, so the
script is ready when a GPU is (a GPU session has minutes, not time to debug it)."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_gpu_check_dry_run_executes_every_stage():
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), "--device", "cpu", "--tiny"],
                          capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    for section in ("## 1. smoke test", "## 2. fitting frames/s", "## 3. training steps/s", "## 5. NaN hunt"):
        assert section in out, out
    assert "rasterisers on cpu" in out and "% of pixels covered by the same face" in out
    for kind in ("frontal", "masked", "hmc", "keypoints"):
        assert f"- fit {kind}:" in out
    from avatarfit.models import VARIANTS

    assert out.count("- train ") == sum(2 if v.conditional else 1 for v in VARIANTS.values())  # HMC and KPT
    assert "failed frames: 0 of 4" in out


def test_compare_eval_sees_numbers_and_arrays_but_not_timings(tmp_path):
    import json

    import numpy as np

    def cell(root, psnr, seconds, z):
        folder = root / "p" / "cells" / "dam"
        (folder / "hmc").mkdir(parents=True)
        doc = {"spec": {"run": str(root)}, "summary": {"psnr": psnr, "seconds_per_frame": seconds}, "seconds": seconds}
        (folder / "hmc.json").write_text(json.dumps(doc))
        np.savez(folder / "hmc" / "fits.npz", z=np.array(z), seconds=np.array([seconds]))

    cell(tmp_path / "a", 30.0, 1.0, [0.5, float("nan")])
    cell(tmp_path / "b", 30.0, 9.0, [0.5, float("nan")])  # other timings, other folder: the same results
    cell(tmp_path / "c", 30.5, 1.0, [0.5, float("nan")])
    cell(tmp_path / "d", 30.0, 1.0, [0.25, float("nan")])
    script = str(ROOT / "benchmarks" / "compare_eval.py")
    run = lambda other: subprocess.run([sys.executable, script, str(tmp_path / "a"), str(tmp_path / other)],  # noqa
                                       capture_output=True, text=True, timeout=60)
    same = run("b")
    assert same.returncode == 0 and "identical" in same.stdout, same.stdout + same.stderr
    numbers, arrays = run("c"), run("d")
    assert numbers.returncode == 1 and "p/cells/dam/hmc.json: numbers differ" in numbers.stdout
    assert arrays.returncode == 1 and "array z differs" in arrays.stdout
