"""`avatarfit evaluate` end to end on a tiny subject: trainings with a dependency, every
kind of cell, tables, charts and grids; --resume recomputes nothing; bad captures and
configs are refused before anything is trained."""

import csv
import json
from pathlib import Path

import pytest
import yaml

from avatarfit.cli import main
from avatarfit.eval.config import load_eval_config
from avatarfit.eval.run import run_evaluation

REPO = Path(__file__).resolve().parents[2]
TINY = {"subjects": [{"name": "p1", "subject": "procedural", "seed": 3}],
        "capture": {"segments": 1, "frames": 8, "cameras": 3, "image_size": [64, 48], "texture_size": 64},
        "train": {"base": str(REPO / "configs/train/small.yaml"),
                  "set": {"model": {"dam": {"texture_size": 64}}, "data": {"validation": 0.25, "test": 0.25},
                          "train": {"steps": 4, "eval_every": 4, "checkpoint_every": 4}}},
        "models": ["dam", "dam_hmc_reg", "lip_flow_hmc"], "tables": [7, 9],
        "fit": {"frames": 2, "batch": 2, "search_frames": 1, "steps": 3, "patience": 2, "lr": [0.1],
                "lambda_frontal": [0.01], "lambda_observed": [0.1, 0.01]},
        "jobs": 2, "device": "cpu"}


def write_config(tmp_path, **changes) -> Path:
    path = tmp_path / "eval.yaml"
    path.write_text(yaml.safe_dump({**TINY, **changes}))
    return path


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval")
    config = load_eval_config(write_config(root))
    messages = []
    result = run_evaluation(config, root / "out", progress=False, log=messages.append)
    return config, result, messages


def test_tables_have_every_cell(evaluated):
    config, result, _ = evaluated
    out = result.out
    cells = result.results["p1"]
    # Table 7: DAM 7 cells, Reg 7, LiP-Flow 8; Table 9: 3 pose fits
    assert len(cells) == 25
    assert cells["lip_flow_hmc/hmc"]["frames"] == 2
    # The searched pair is the best-scoring row of the cell's search table (frontal PSNR on
    # validation frames, higher is better), each grid pair scored once, none of the
    # searched frames among those reported.
    search = json.loads((out / "p1" / "cells" / "lip_flow_hmc" / "hmc" / "search.json").read_text())
    assert search["criterion"] == "psnr"
    assert sorted((r["lr"], r["lambda_latent"]) for r in search["table"]) == [(0.1, 0.01), (0.1, 0.1)]
    scores = [r["score"] for r in search["table"]]
    assert all(isinstance(s, float) and s == s for s in scores), search["table"]
    best = max(search["table"], key=lambda r: r["score"])
    pair = (search["lr"], search["lambda_latent"])
    chosen = next(r for r in search["table"] if (r["lr"], r["lambda_latent"]) == pair)
    assert chosen["score"] == best["score"], search
    assert (cells["lip_flow_hmc/hmc"]["lr"], cells["lip_flow_hmc/hmc"]["lambda_latent"]) == pair
    assert len(search["frames"]) == 1  # search_frames
    assert not set(search["frames"]) & {r["name"] for r in cells["lip_flow_hmc/hmc"]["per_frame"]}
    assert cells["dam/hmc_noLL"]["lambda_latent"] == 0.0
    assert cells["lip_flow_hmc/decode_prior"]["steps_mean"] == 0
    # the fit starts where the prior decoding is: same code, same frames
    assert cells["lip_flow_hmc/hmc"]["psnr_init"] == pytest.approx(cells["lip_flow_hmc/decode_prior"]["psnr"],
                                                                   abs=1e-4)
    pose = cells["lip_flow_hmc/hmc_pose"]
    assert pose["headset_deg_init"] > 0 and "headset_deg" in pose
    assert pose["lr"] == cells["lip_flow_hmc/hmc"]["lr"]  # Table 9 reuses the HMC fit's search
    md = (out / "tables.md").read_text()
    assert "Table 7" in md and "Table 9" in md and "HMC-Encoder Decoding" in md
    dam_row = next(line for line in md.splitlines() if line.startswith("| DAM |"))
    assert dam_row.split("|")[2].strip() == "n/a"  # DAM has no HMC encoder
    rows = list(csv.DictReader((out / "tables.csv").open()))
    assert {r["subject"] for r in rows} == {"p1"}
    hmc = next(r for r in rows if r["model"] == "lip_flow_hmc" and r["task"] == "hmc" and r["latent"] == "1")
    assert float(hmc["psnr"]) == pytest.approx(cells["lip_flow_hmc/hmc"]["psnr"])
    # Motion explained and prior responsiveness, from the same frames' geometry and codes.
    prior = cells["lip_flow_hmc/decode_prior"]
    assert prior["motion_explained"] == pytest.approx(1 - prior["geom_mm"] / prior["geom_mm_mean_mesh"])
    assert -100 < prior["prior_r2"] <= 1 and "prior_r2" not in cells["lip_flow_hmc/decode_encoder"]
    assert [r["name"] for r in prior["per_frame"]] == [r["name"] for r in cells["dam/hmc"]["per_frame"]]
    assert "Geom of the mean mesh on the test frames" in md
    comparison = next(line for line in md.splitlines() if line.startswith("| LiP-Flow-HMC vs DAM, HMC fitting | PSNR"))
    verdict = comparison.rstrip(" |").rsplit("|", 1)[1].strip()
    assert verdict in ("holds", "reversed", "not resolved") and "(n=2)" in comparison
    for n in (7, 9):
        assert (out / f"table{n}.png").stat().st_size > 1000
        assert (out / "p1" / f"fits_table{n}.png").is_file()
    assert (out / "p1" / "cells" / "lip_flow_hmc" / "hmc" / "fits.npz").is_file()


def test_resume_recomputes_nothing(evaluated, tmp_path):
    config, result, _ = evaluated
    out = result.out
    before = (out / "tables.md").read_text()
    stamps = {p: p.stat().st_mtime_ns for p in (out / "p1" / "cells").rglob("*.json")}
    dropped = out / "p1" / "cells" / "dam" / "masked.json"
    dropped.unlink()  # as if interrupted before this cell was written
    messages = []
    again = run_evaluation(config, out, resume=True, progress=False, log=messages.append)
    assert any("0 training(s) and 1 cell(s) of 1 model(s) to run; 24 cell(s) finished before" in m
               for m in messages), messages
    assert [m for m in messages if m.startswith("  p1 dam/") or m.startswith("  p1 lip")] == [
        next(m for m in messages if m.startswith("  p1 dam/masked:"))]
    redone = dropped.with_suffix("")  # the cell's fit folder: its finished parts are read back, not refitted
    assert all(p.stat().st_mtime_ns == t for p, t in stamps.items() if p != dropped and redone not in p.parents)
    assert (out / "tables.md").read_text() == before
    assert again.results == result.results
    with pytest.raises(FileExistsError, match="--resume"):
        run_evaluation(config, out, progress=False, log=lambda m: None)


def test_capture_without_landmarks_is_refused_before_training(tmp_path, handmade_capture):
    path = write_config(tmp_path, subjects=[{"name": "mine", "capture": str(handmade_capture)}])
    with pytest.raises(FileNotFoundError) as err:
        run_evaluation(load_eval_config(path), tmp_path / "out", progress=False, log=lambda m: None)
    assert "landmarks.txt" in str(err.value) and "avatarfit synth" in str(err.value)
    assert not (tmp_path / "out").exists()


def test_capture_without_hmc_files_names_the_command(tmp_path, tiny_capture):
    train = {**TINY["train"], "set": {**TINY["train"]["set"], "data": {"validation": 0.25, "test": 0.25, "hmc_source": "files"}}}
    path = write_config(tmp_path, subjects=[{"name": "mine", "capture": str(tiny_capture)}], train=train)
    with pytest.raises(FileNotFoundError) as err:
        run_evaluation(load_eval_config(path), tmp_path / "out", progress=False, log=lambda m: None)
    assert "hmc" in str(err.value) and "avatarfit hmc --capture" in str(err.value)


def test_cli_rejects_unknown_model_before_training(tmp_path, capsys):
    path = write_config(tmp_path, models=["dam", "lip_flow_hmx"])
    assert main(["evaluate", "--config", str(path), "--out", str(tmp_path / "out"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "lip_flow_hmx" in err and "eval.yaml" in err
    assert not (tmp_path / "out").exists()


def test_cli_rejects_unknown_subject(tmp_path, capsys):
    path = write_config(tmp_path)
    assert main(["evaluate", "--config", str(path), "--subjects", "nobody", "--out", str(tmp_path / "out"),
                 "--no-progress"]) == 2
    assert "nobody" in capsys.readouterr().err and not (tmp_path / "out").exists()


def test_average_over_subjects():
    from avatarfit.eval.report import average_results

    avg = average_results({"a": {"dam/hmc": {"psnr": 30.0, "geom_mm": 1.0}},
                           "b": {"dam/hmc": {"psnr": 32.0, "geom_mm": float("nan")}}})
    assert avg["dam/hmc"]["psnr"] == 31.0 and avg["dam/hmc"]["geom_mm"] == 1.0 and avg["dam/hmc"]["subjects"] == 2


def test_cell_json_is_plain(evaluated):
    _, result, _ = evaluated
    doc = json.loads((result.out / "p1" / "cells" / "lip_flow_hmc" / "hmc.json").read_text())
    assert doc["spec"]["cell"] == "lip_flow_hmc/hmc" and doc["summary"]["frames"] == 2


def test_tables_only_reads_the_finished_subjects(evaluated):
    import dataclasses

    from avatarfit.eval.config import SubjectSpec

    config, result, _ = evaluated
    more = dataclasses.replace(config, subjects=config.subjects + (SubjectSpec("p2", "procedural", 4),))
    messages = []
    again = run_evaluation(more, result.out, tables_only=True, progress=False, log=messages.append)
    assert again.results == result.results  # p2 has nothing finished: left out
    assert messages[-1] == "tables: mean over p1"
    assert not (result.out / "p2").exists()


def test_tables_only_from_a_copy_holding_only_cells_and_run_configs(evaluated, tmp_path):
    """What benchmarks/results keeps of an evaluation (eval.yaml, the cell files, the runs'
    config.yaml), copied elsewhere, still makes the same tables: no weights, no capture."""
    import shutil

    config, result, _ = evaluated
    copy = tmp_path / "copy"
    copy.mkdir()
    shutil.copy(result.out / "eval.yaml", copy / "eval.yaml")
    for path in (result.out / "p1").rglob("*"):
        rel = path.relative_to(result.out)
        keep = (rel.parts[1] == "cells" and len(rel.parts) == 4 and path.suffix == ".json") or \
            (rel.parts[1] == "runs" and len(rel.parts) == 4 and path.name == "config.yaml")
        if keep:
            (copy / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(path, copy / rel)
    again = run_evaluation(config, copy, tables_only=True, progress=False, log=lambda m: None)
    assert again.results == result.results


def test_a_fit_cell_in_two_processes_writes_what_one_process_does(evaluated, tmp_path):
    """``launch.fit_processes: 2``: the cells' job runs two processes (gloo on the CPU) that
    fit the frames between them, as torchrun does for ``avatarfit fit``; the cells equal
    those of a one-process job."""
    import dataclasses

    from avatarfit.eval.jobs import model_cells
    from avatarfit.eval.launch import Job, run_jobs
    from avatarfit.eval.plan import Cell

    config, result, _ = evaluated
    config = dataclasses.replace(config, fit=dataclasses.replace(config.fit, batch=1))  # a batch per process
    cells = [Cell("dam", "decode_encoder", True), Cell("dam", "hmc", True)]
    folder = result.out / "p1"
    jobs = [Job(f"p1/cells-{n}", "cells", f"cells in {n}", model_cells,
                {"config": config, "cells": cells, "bases": {}, "run": folder / "runs" / "dam",
                 "capture": folder / "capture", "cells_dir": tmp_path / str(n)}, processes=n) for n in (1, 2)]
    docs = run_jobs(jobs, config.launch, tmp_path / "jobs", parallel=3, progress=False, log=lambda m: None)
    assert len(list((tmp_path / "2" / "dam" / "hmc" / "tb").glob("events.*.rank*"))) == 2  # both fitted

    def plain(doc):
        return {k: v for k, v in doc["summary"].items() if "seconds" not in k}, \
            [{k: v for k, v in f.items() if "seconds" not in k} for f in doc["frames"]]

    for cell in cells:
        one, two = (json.loads((tmp_path / str(n) / f"{cell.key}.json").read_text()) for n in (1, 2))
        assert plain(two) == plain(one) == plain(docs["p1/cells-2"][cell.key])
