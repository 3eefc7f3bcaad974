"""What to expect from a recording: HMC fits of clean views made in memory against fits of
the synthetic-HMC tool's augmented views read from files (``avatarfit fit --hmc-dir``).

    python benchmarks/recorded_hmc.py --capture CAP --run dam=RUN --run lip_flow_hmc=RUN --out DIR

The recording is ``avatarfit hmc`` with augmentation (gain, directional light, random
background, noise, camera jitter) at the settings the conditional runs' priors were trained
on (so their prior sees the same views in both conditions and only the data term differs),
written to ``DIR/recorded``. Protocol: the ways of fitting a recording (with or without a
gain and bias per view; every pixel or the starting face's pixels; the headset pose too) are
compared on ``--validation`` of each avatar's validation frames; the clean views, the naive
recorded fit, the CLI's default and the recorded fit chosen there (its PSNR, summed over
models) are then reported on every test frame (the tool's headset files hold the true
poses, so fits start from them, clean or recorded; fitting the headset then absorbs the
recording's camera jitter only), with 95 % bootstrap intervals of the means and of the paired differences to the
clean fit. lr and lambda_L are the fitting defaults, never tuned here. Writes
``DIR/table.md`` and ``DIR/results.json``; fits go to ``DIR/fits`` (re-running reuses them).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

from avatarfit.avatar import Avatar
from avatarfit.config import from_dict
from avatarfit.data import Capture
from avatarfit.eval.compare import paired_difference
from avatarfit.fit import FitConfig
from avatarfit.data.splits import frames_of_split
from avatarfit.fit.job import RECORDED_FIT, FitJob, run_fit_job
from avatarfit.synth.hmc import HmcConfig
from avatarfit.synth.hmc_write import write_hmc

#: Ways of fitting a recording compared on validation frames: FitConfig settings.
RECORDED = {"recorded, as if clean": {},
            "recorded, gain+bias": {"photometric": True},
            "recorded, face pixels": {"hmc_pixels": "face"},
            "recorded, gain+bias, face pixels": {"photometric": True, "hmc_pixels": "face"},
            "recorded, gain+bias, face pixels, headset": {"photometric": True, "hmc_pixels": "face",
                                                          "fit_headset": True},
            "recorded, gain+bias+shading, face pixels": {"photometric": True, "shading": True, "hmc_pixels": "face"},
            "recorded, gain+bias+shading, face pixels, headset": {"photometric": True, "shading": True,
                                                                  "hmc_pixels": "face", "fit_headset": True}}
CLEAN = "clean views (in memory)"


def _recording_config(avatars: dict[str, Avatar]) -> HmcConfig:
    """The conditional priors' training settings, augmented; else the default augmented 120x160."""
    for avatar in avatars.values():
        record = avatar.info.get("observation") or {}
        if isinstance(record.get("hmc"), dict):
            return dataclasses.replace(from_dict(HmcConfig, record["hmc"], "observation.hmc"), augment=True)
    return HmcConfig(views_size=(120, 160), augment=True)


def _folder(condition: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in condition)


def _fit(run: str, capture: Path, out: Path, frames: str, condition: str, hmc_dir: Path) -> list[dict]:
    if condition == CLEAN:
        job = FitJob(run=run, capture=str(capture), target="hmc", frames=frames, device="cpu")
    else:
        job = FitJob(run=run, capture=str(capture), target="hmc", frames=frames, device="cpu", hmc_dir=str(hmc_dir),
                     fit=FitConfig(**RECORDED[condition]))
    report = run_fit_job(job, out, progress=False, log=lambda m: None)
    return report.frames


def _interval(values: list[float]) -> str:
    d = paired_difference(values, [0.0] * len(values))
    return f"{d.mean:.3f} [{d.low:.3f}, {d.high:.3f}]"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--capture", type=Path, required=True)
    p.add_argument("--run", action="append", required=True, metavar="NAME=RUN", help="a model (repeat)")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--validation", type=int, default=8, help="validation frames per model for the choice")
    args = p.parse_args()
    runs = dict(r.split("=", 1) for r in args.run)
    avatars = {name: Avatar.load(Path(run)) for name, run in runs.items()}
    cap = Capture(args.capture)
    config = _recording_config(avatars)
    rec = args.out / "recorded"
    needed = list(dict.fromkeys(r for name, avatar in avatars.items() for split in ("validation", "test")
                                for r in frames_of_split(avatar.info, Path(runs[name]), cap, split)))
    t0 = time.perf_counter()
    write_hmc(cap, rec, config, frames=needed, progress=False, log=lambda m: None)
    print(f"recording: {len(needed)} frames, {config.views_size[0]}x{config.views_size[1]}, augmented, seed "
          f"{config.seed}, in {rec} ({time.perf_counter() - t0:.0f} s)", flush=True)

    results: dict = {"recording": dataclasses.asdict(config), "validation": {}, "test": {}}
    for name, run in runs.items():
        for condition in RECORDED:
            t0 = time.perf_counter()
            frames = _fit(run, cap.root, args.out / "fits" / "validation" / name / _folder(condition),
                          f"validation:{args.validation}", condition, rec)
            psnr = [f["psnr"] for f in frames]
            results["validation"].setdefault(condition, {})[name] = frames
            print(f"validation {name:14s} {condition:44s} PSNR {sum(psnr) / len(psnr):.2f} dB "
                  f"({time.perf_counter() - t0:.0f} s)", flush=True)
    score = {c: sum(sum(f["psnr"] for f in fr) / len(fr) for fr in results["validation"][c].values())
             for c in RECORDED}
    chosen = max(score, key=score.get)
    naive = "recorded, as if clean"
    print(f"chosen on validation frames: {chosen}", flush=True)
    default = next(c for c, v in RECORDED.items() if v == RECORDED_FIT)  # what avatarfit fit --hmc-dir does
    report = list(dict.fromkeys([CLEAN, naive, default, chosen]))
    for name, run in runs.items():
        for condition in report:
            t0 = time.perf_counter()
            frames = _fit(run, cap.root, args.out / "fits" / "test" / name / _folder(condition), "test", condition, rec)
            results["test"].setdefault(condition, {})[name] = frames
            print(f"test {name:14s} {condition:44s} PSNR {sum(f['psnr'] for f in frames) / len(frames):.2f} dB "
                  f"({time.perf_counter() - t0:.0f} s)", flush=True)
    results["chosen"] = chosen

    lines = [f"Test frames of `{args.capture.name}`: HMC fits of clean views made in memory and of an augmented "
             f"recording ({config.views_size[0]}x{config.views_size[1]}, gain {config.gain}, shading "
             f"{config.shading}, background {config.background}, noise {config.noise}, focal jitter "
             f"{config.focal_jitter}, centre jitter {config.center_jitter}) read from files. Frontal PSNR (dB) "
             "and geometry error (mm) against the ground truth; means with 95 % bootstrap intervals, and the "
             f"paired difference to the clean fit. The way of fitting the recording was chosen on "
             f"{args.validation} validation frames per model: {chosen} (avatarfit fit --hmc-dir's default: "
             f"{default}).", "",
             "| model | views | frames | PSNR | geometry mm | PSNR vs clean | geometry vs clean |", "|---|---|---|---|---|---|---|"]
    for name in runs:
        clean = results["test"][CLEAN][name]
        for condition in report:
            fr = results["test"][condition][name]
            psnr, geom = [f["psnr"] for f in fr], [f["geom_mm"] for f in fr]
            if condition == CLEAN:
                dp = dg = "-"
            else:
                a = paired_difference(psnr, [f["psnr"] for f in clean])
                b = paired_difference(geom, [f["geom_mm"] for f in clean])
                dp, dg = f"{a.mean:+.2f} [{a.low:+.2f}, {a.high:+.2f}]", f"{b.mean:+.3f} [{b.low:+.3f}, {b.high:+.3f}]"
            lines.append(f"| {name} | {condition} | {len(fr)} | {_interval(psnr)} | {_interval(geom)} | {dp} | {dg} |")
    lines += ["", "Validation frames (the choice; mean PSNR dB / geometry mm):", "",
              "| model | " + " | ".join(RECORDED) + " |", "|---|" + "---|" * len(RECORDED)]
    for name in runs:
        cells = []
        for c in RECORDED:
            fr = results["validation"][c][name]
            cells.append(f"{sum(f['psnr'] for f in fr) / len(fr):.2f} / {sum(f['geom_mm'] for f in fr) / len(fr):.3f}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    text = "\n".join(lines) + "\n"
    (args.out / "table.md").write_text(text, encoding="utf-8")
    (args.out / "results.json").write_text(json.dumps(results, indent=1), encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
