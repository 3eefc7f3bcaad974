import subprocess
import sys

import pytest

from avatarfit.cli import build_parser, main


def test_help_teaches():
    text = build_parser().format_help()
    for word in ("demo", "synth", "render", "hmc", "Multiface", "examples:"):
        assert word in text


def test_synth_then_render(tmp_path, capsys):
    cap = tmp_path / "cap"
    assert main(["synth", "--subject", "procedural", "--segments", "1", "--frames", "2", "--cameras", "6",
                 "--image-size", "128x96", "--texture-size", "256", "--out", str(cap), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "2 frames, 6 cameras" in out
    seg = (cap / "frame_list.txt").read_text().split()[0]
    png = tmp_path / "view.png"
    cmp = tmp_path / "cmp.png"
    assert main(["render", str(cap), "--segment", seg, "--frame", "000001", "--camera", "400000",
                 "--out", str(png), "--compare", str(cmp)]) == 0
    out = capsys.readouterr().out
    psnr = float(out.split("PSNR against")[1].split(":")[1].split("dB")[0])
    assert psnr >= 35
    from PIL import Image

    assert Image.open(png).size == (96, 128) and Image.open(cmp).size == (288, 128)
    # A second synth into the same folder is refused without --overwrite.
    assert main(["synth", "--frames", "1", "--cameras", "1", "--out", str(cap), "--no-progress"]) == 2
    assert "--overwrite" in capsys.readouterr().err


def test_errors_are_clear(tmp_path, capsys):
    assert main(["render", str(tmp_path / "missing"), "--segment", "s", "--frame", "0", "--camera", "c",
                 "--out", str(tmp_path / "x.png")]) == 2
    assert "capture folder not found" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["synth", "--out", str(tmp_path), "--image-size", "big"])
    assert "expected HxW" in capsys.readouterr().err


def test_console_script_runs():
    proc = subprocess.run([sys.executable, "-m", "avatarfit.cli", "--help"], capture_output=True, text=True)
    assert proc.returncode == 0 and "avatarfit" in proc.stdout


def test_hmc_tool(tiny_capture, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["hmc", "--capture", str(tiny_capture), "--out", str(out), "--frames", "0:2", "--preview",
                 "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "wrote 2 frames (240x320, 3 views)" in printed and "frames/s" in printed
    from PIL import Image

    assert len(list((out / "hmc").rglob("*_headset.txt"))) == 2
    assert len(list((out / "keypoints").rglob("0*.txt"))) == 2
    # Preview: 2 rows (frames) of photo | 3 views, each row 240 pixels high.
    assert Image.open(out / "hmc" / "preview.png").size[1] == 2 * 240 + 4
    # Running again on all frames writes only the missing one.
    assert main(["hmc", "--capture", str(tiny_capture), "--out", str(out), "--no-progress"]) == 0
    assert "wrote 1 frames" in capsys.readouterr().out


def test_hmc_tool_bad_input(tiny_capture, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["hmc", "--capture", str(tiny_capture), "--out", str(out), "--frames", "2:9", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "--frames: '2:9' is outside the capture's 3 frames" in err
    rig = tmp_path / "rig.txt"
    rig.write_text("left_eye\n1 0 0\n0 1 0\n0 0 1\n0 0 0 0 0\n1 0 0 0\n0 1 0 0\n0 0 1 0\n\n")
    assert main(["hmc", "--capture", str(tiny_capture), "--out", str(out), "--rig", str(rig), "--no-progress"]) == 2
    assert "expected 3 HMC cameras" in capsys.readouterr().err
    assert not out.exists()


def test_hmc_data_tool_script_help():
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "data_tools" / "make_synthetic_hmc.py"
    proc = subprocess.run([sys.executable, str(script), "--help"], capture_output=True, text=True)
    assert proc.returncode == 0 and "--pose-noise-rot" in proc.stdout and "hmc/rig.txt" in proc.stdout


def test_train_cli_errors_and_help(tiny_capture, tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("base: ../../nowhere.yaml\n")
    assert main(["train", "--config", str(bad), "--capture", str(tiny_capture), "--out", str(tmp_path / "r")]) == 2
    assert "nowhere.yaml: config file not found" in capsys.readouterr().err
    bad.write_text("model: {variant: lip_flow, latent: 3}\n")
    assert main(["train", "--config", str(bad), "--capture", str(tiny_capture), "--out", str(tmp_path / "r")]) == 2
    assert "unknown key(s) ['latent']" in capsys.readouterr().err
    assert main(["train", "--capture", str(tiny_capture)]) == 2
    assert "--config" in capsys.readouterr().err
    text = build_parser()._subparsers._group_actions[0].choices["train"].format_help()
    for word in ("--resume", "--set", "torchrun", "lip_flow", "dam_hmc_reg"):
        assert word in text
    assert not (tmp_path / "r").exists()


def test_defaults_live_in_the_dataclasses_the_cli_fills(monkeypatch):
    """The CLI's defaults and the defaults its help names are the library's: change a
    dataclass default and both follow."""
    import dataclasses

    from avatarfit.fit.job import FitJob
    from avatarfit.fit.optimize import FitConfig

    def fit_parser():
        return build_parser()._subparsers._group_actions[0].choices["fit"]

    parser = fit_parser()
    args = parser.parse_args(["--run", "R", "--capture", "C", "--target", "hmc", "--out", "O"])
    job = FitJob(run="R", capture="C")
    assert (args.batch, args.seed, args.device, args.pose_noise_rot) == (job.batch, job.seed, job.device,
                                                                         job.pose_noise_rot)
    text = " ".join(parser.format_help().split())
    assert f"(default {FitConfig().steps})" in text and f"(default {FitConfig().patience})" in text
    # another default in the dataclass -> another value and another help text
    fields = {f.name: f for f in dataclasses.fields(FitJob)}
    monkeypatch.setattr(fields["batch"], "default", 5)
    again = fit_parser()
    assert again.parse_args(["--run", "R", "--target", "hmc", "--out", "O"]).batch == 5
    assert "(default 5)" in " ".join(again.format_help().split())


def test_top_level_help_starts_without_torch():
    """``avatarfit --help`` lists the commands without importing what they need."""
    code = ("import sys\nfrom avatarfit.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "print('torch imported:', 'torch' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert "fit" in proc.stdout and "evaluate" in proc.stdout, proc.stdout + proc.stderr
    assert proc.stdout.strip().endswith("torch imported: False"), proc.stdout[-500:]
