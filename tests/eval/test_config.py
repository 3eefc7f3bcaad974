"""Evaluation configs: unknown keys, models, tables and subjects are refused by name."""

from pathlib import Path

import pytest
import yaml

from avatarfit.errors import FormatError
from avatarfit.eval.config import load_eval_config

REPO = Path(__file__).resolve().parents[2]


def write(tmp_path, **changes):
    data = {"subjects": [{"name": "p", "subject": "procedural", "seed": 1}],
            "train": {"base": str(REPO / "configs/train/small.yaml")}, "models": ["dam", "lip_flow_hmc"],
            "tables": [7]}
    data.update(changes)
    path = tmp_path / "eval.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize("name", ["small.yaml", "paper.yaml"])
def test_shipped_configs_load(name):
    config = load_eval_config(REPO / "configs/eval" / name)
    assert config.tables == (6, 7, 8, 9) and len(config.models) == 10
    assert config.base_path().is_file()
    assert {s.subject for s in config.subjects} == {"james", "procedural"} and len(config.subjects) >= 3


@pytest.mark.parametrize("change, words", [
    ({"models": ["dam", "lip_flow"]}, ["unknown model", "lip_flow", "lip_flow_hmc"]),
    ({"tables": [5, 7]}, ["unknown table", "5"]),
    ({"models": ["dam_hmc_reg"]}, ["dam_hmc_reg", "add dam"]),
    ({"subjects": [{"name": "p", "subject": "martian"}]}, ["martian", "procedural or james"]),
    ({"subjects": [{"name": "p"}]}, ["exactly one of"]),
    ({"fit": {"lr": [0]}}, ["fit.lr"]),
    ({"fit": {"stepz": 3}}, ["unknown key", "stepz"]),
    ({"fit": {"raster_every": 0}}, ["raster_every", "0"]),
    ({"colour": 1}, ["unknown key", "colour"]),
    ({"launch": {"launcher": "pbs"}}, ["launch.launcher", "local", "slurm", "pbs"]),
    ({"launch": {"gpus": 1}}, ["unknown key", "gpus", "gpus_per_job"]),
    ({"launch": {"time_min": -5}}, ["launch.time_min", "-5"]),
    ({"launch": {"sbatch": ["qos=high"]}}, ["launch.sbatch", "mapping"]),
])
def test_bad_configs_name_the_file_and_the_setting(tmp_path, change, words):
    path = write(tmp_path, **change)
    with pytest.raises(FormatError) as err:
        load_eval_config(path)
    text = str(err.value)
    assert str(path.name) in text
    for w in words:
        assert w in text


def test_missing_file(tmp_path):
    with pytest.raises(FormatError, match="not found"):
        load_eval_config(tmp_path / "nope.yaml")


def test_the_saved_config_reads_back_from_the_output_folder(tmp_path):
    """``eval.yaml`` in an output folder is the resolved config: read back from there (its
    training base and captures made absolute), it equals the config it was written from."""
    from avatarfit.eval.run import resolved_config_yaml

    (tmp_path / "cfg").mkdir()
    (tmp_path / "cap").mkdir()
    path = tmp_path / "cfg" / "eval.yaml"
    path.write_text(yaml.safe_dump({"subjects": [{"name": "p", "subject": "procedural", "seed": 1},
                                                 {"name": "mine", "capture": "../cap"}],
                                    "train": {"base": str(Path("..") / "base.yaml")}, "models": ["dam"], "tables": [6]}))
    (tmp_path / "base.yaml").write_text("{}\n")
    config = load_eval_config(path)
    saved = tmp_path / "out" / "eval.yaml"
    saved.parent.mkdir()
    saved.write_text(resolved_config_yaml(config))
    again = load_eval_config(saved)
    assert again.base_path() == config.base_path() == (tmp_path / "base.yaml").resolve()
    assert Path(again.subjects[1].capture) == (tmp_path / "cap").resolve()
    assert saved.read_text().startswith(f"# avatarfit evaluate: the resolved config (read from {path.resolve()})")
    assert again.models == config.models and again.tables == config.tables and again.fit == config.fit


def test_a_cell_fitted_on_another_rasterisation_schedule_is_not_reused(tmp_path):
    """The schedule is part of a cell's spec (a finished cell with another spec is fitted
    again, and ``--tables-only`` does not tabulate it) and reaches the fit."""
    from avatarfit.eval.cells import cell_args, cell_spec
    from avatarfit.eval.plan import Cell

    every = load_eval_config(write(tmp_path))
    kept = load_eval_config(write(tmp_path, fit={"raster_every": 8}))
    assert every.fit.raster_every == 1 and kept.fit.raster_every == 8
    cell, run = Cell("dam", "hmc", True), tmp_path / "run"
    assert cell_spec(every, cell, run, tmp_path) != cell_spec(kept, cell, run, tmp_path)
    args = cell_args(kept, cell, run, tmp_path, tmp_path / "cells", cell_spec(kept, cell, run, tmp_path))
    assert args["raster_every"] == 8


def test_the_tiny_config_has_every_model_and_table():
    config = load_eval_config(REPO / "configs/eval/tiny.yaml")
    assert config.tables == (6, 7, 8, 9) and len(config.models) == 10 and config.base_path().is_file()


def test_launch_settings_from_the_command_line_override_the_file(tmp_path, capsys):
    from avatarfit.cli import _launch_overrides, build_parser

    path = write(tmp_path, launch={"launcher": "slurm", "partition": "cpu", "time_min": 60})
    args = build_parser("evaluate").parse_args(["evaluate", "--config", str(path), "--partition", "gpu",
                                                "--gpus-per-job", "2", "--sbatch", "qos=high", "--sbatch",
                                                "constraint=a100"])
    config = load_eval_config(path, {"launch": _launch_overrides(args)})
    launch = config.launch
    assert (launch.launcher, launch.partition, launch.time_min, launch.gpus_per_job) == ("slurm", "gpu", 60, 2)
    assert launch.sbatch == {"qos": "high", "constraint": "a100"}
    assert launch.processes_per_fit == 2  # one fitting process per GPU of the job
    args = build_parser("evaluate").parse_args(["evaluate", "--config", str(path), "--sbatch", "qos"])
    with pytest.raises(ValueError, match="--sbatch: expected KEY=VALUE"):
        _launch_overrides(args)
