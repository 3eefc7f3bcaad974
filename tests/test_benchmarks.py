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
