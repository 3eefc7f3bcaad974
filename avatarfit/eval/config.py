"""Settings of ``avatarfit evaluate``: a YAML file read with ``yaml.safe_load`` into
dataclasses that reject unknown keys, checked (models, tables, subjects, training configs)
before anything is trained.

Layout (``configs/eval/small.yaml`` is a complete example)::

    subjects:                      # each: a built-in subject made here, or a capture folder
      - {name: james, subject: james, seed: 0}
      - {name: proc101, subject: procedural, seed: 101}
      - {name: mine, capture: /data/multiface/m--XXXX}
    capture: {segments: 4, frames: 40, cameras: 6, image_size: [128, 96], texture_size: 128}
    train:
      base: ../train/small.yaml    # every model's training settings (relative to this file)
      set: {train: {steps: 1500}}  # merged over base for every model
    models: [dam, dam_flow, dam_hmc_enc, ...]
    tables: [6, 7, 8, 9]
    fit: {frames: 8, steps: 200, lr: [0.01, 0.1, 0.5], ...}
    jobs: 2                        # jobs side by side on this machine (launch.launcher local)
    launch: {launcher: slurm, partition: gpu, gpus_per_job: 1, time_min: 240}   # or on a cluster
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import from_dict, merge_mappings, read_mapping
from ..errors import FormatError

__all__ = ["SubjectSpec", "CaptureSpec", "TrainSpec", "EvalFitSpec", "LaunchSpec", "LAUNCHERS", "EvalConfig",
           "load_eval_config"]


@dataclass(frozen=True)
class SubjectSpec:
    """One subject: ``subject`` (``procedural`` or ``james``) made here with the config's
    ``capture`` settings and ``seed``, or ``capture``, an existing Multiface-layout folder.

    Attributes:
        name: folder name of the subject's results (letters, digits, ``-``, ``_``).
    """

    name: str
    subject: str | None = None
    seed: int = 0
    capture: str | None = None

    def __post_init__(self) -> None:
        if not self.name or not all(c.isalnum() or c in "-_" for c in self.name):
            raise ValueError(f"subjects: name {self.name!r}: expected letters, digits, '-' and '_'")
        if (self.subject is None) == (self.capture is None):
            raise ValueError(f"subjects: {self.name}: expected exactly one of 'subject' (procedural or james) "
                             f"and 'capture' (a folder), got subject={self.subject!r}, capture={self.capture!r}")
        if self.subject is not None and self.subject not in ("procedural", "james"):
            raise ValueError(f"subjects: {self.name}: subject expected procedural or james, got {self.subject!r}")


@dataclass(frozen=True)
class CaptureSpec:
    """The captures made for ``subject:`` entries (``avatarfit synth`` settings)."""

    segments: int = 4
    frames: int = 40
    cameras: int = 6
    image_size: tuple[int, int] = (128, 96)
    texture_size: int = 128

    def __post_init__(self) -> None:
        object.__setattr__(self, "image_size", tuple(int(x) for x in self.image_size))
        if min(self.segments, self.frames, self.cameras, self.texture_size) < 1 or len(self.image_size) != 2:
            raise ValueError(f"capture: expected positive counts and image_size [H, W], got {self}")


@dataclass(frozen=True)
class TrainSpec:
    """Training of every model: ``base`` (a training YAML, relative to the eval config)
    with ``set`` merged over it; each model then sets its variant, condition and the
    paper's lambda_L (LiP-Flow, supplementary H.1), and DAM-*-Reg its pretrained DAM."""

    base: str = "../train/small.yaml"
    set: dict = field(default_factory=dict)


@dataclass(frozen=True)
class EvalFitSpec:
    """Fitting of every cell (LiP-Flow, supplementary H.2).

    Attributes:
        frames: test frames evaluated per subject, spread evenly (0: all of them).
        batch: frames fitted together.
        search_frames: the validation frames the hyper-parameter search fits (0: a batch).
        steps, patience: Adam steps at most, and the stop without improvement.
        lr: learning rates searched (paper: 0.01, 0.1, 0.5).
        lambda_frontal: latent weights searched for frontal and masked targets.
        lambda_observed: latent weights searched for HMC and keypoint targets.
        pose_noise_rot, pose_noise_trans: Table 9's headset pose noise (degrees, mm).
        grid_frames: frames shown in the grids of frontal fits.
        raster_every: the rasteriser's schedule of every fit (:class:`~avatarfit.fit.FitConfig`'s
            ``raster_every``: 1 rasterises every step; the committed small evaluation ran
            with 8, faces kept between steps).
    """

    frames: int = 0
    batch: int = 8
    search_frames: int = 0
    steps: int = 200
    patience: int = 10
    lr: tuple[float, ...] = (0.01, 0.1, 0.5)
    lambda_frontal: tuple[float, ...] = (0.01, 0.001, 0.0001)
    lambda_observed: tuple[float, ...] = (0.1, 0.01, 0.001)
    pose_noise_rot: float = 2.0
    pose_noise_trans: float = 2.0
    grid_frames: int = 4
    raster_every: int = 1

    def __post_init__(self) -> None:
        for name in ("lr", "lambda_frontal", "lambda_observed"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        if not self.lr or min(self.lr) <= 0:
            raise ValueError(f"fit.lr: expected positive learning rates, got {list(self.lr)}")
        for name in ("lambda_frontal", "lambda_observed"):
            values = getattr(self, name)
            if not values or min(values) <= 0:
                raise ValueError(f"fit.{name}: expected positive weights (the 'w/o L_L' cells use 0 themselves), "
                                 f"got {list(values)}")
        if self.frames < 0 or self.search_frames < 0 or self.batch < 1 or self.steps < 1 or self.patience < 1:
            raise ValueError("fit: expected frames, search_frames >= 0 and batch, steps, patience >= 1, got "
                             f"{self.frames}, {self.search_frames}, {self.batch}, {self.steps}, {self.patience}")
        if self.pose_noise_rot < 0 or self.pose_noise_trans < 0 or self.grid_frames < 1 or self.raster_every < 1:
            raise ValueError("fit: expected pose noise >= 0 and grid_frames, raster_every >= 1, got "
                             f"{self.pose_noise_rot}, {self.pose_noise_trans}, {self.grid_frames}, {self.raster_every}")


LAUNCHERS = ("local", "slurm")


@dataclass(frozen=True)
class LaunchSpec:
    """Where the trainings and cells run: each is a submitit job.

    Attributes:
        launcher: ``local`` (processes on this machine, ``jobs`` at a time; DAM-*-Reg
            trainings start after their DAM) or ``slurm`` (every job submitted with
            ``sbatch`` at once; DAM-*-Reg trainings and the cells wait for what they need
            through ``afterok`` dependencies).
        partition, account: SLURM partition and account (empty: the cluster's default).
        gpus_per_job: GPUs of a job that fits across processes (one per process, at most
            this many); trainings and decodings get one. Locally a job then waits for free GPUs
            and sees only its own; 0: every local job sees every GPU of the machine.
        cpus_per_job: CPU cores of each job, shared by its processes (0: one thread per job
            locally when ``jobs`` > 1, the cluster's default on SLURM).
        mem_gb: memory of each job in GB (0: the cluster's default).
        time_min: time limit of each job in minutes (0: 24 h on SLURM, none locally). A job
            that reaches it, or is pre-empted, is requeued and continues from its checkpoint
            (trainings from ``last.pt``, fit cells from their finished batches).
        requeues: how many times a job may be requeued after reaching its time limit
            (pre-emptions do not count; submitit's local executor stops at 6 in any case).
        fit_processes: processes of each fit cell (0: one per GPU of the job); more than one
            fits the cell's frames across them, as ``torchrun`` does for ``avatarfit fit``.
        sbatch: further ``sbatch`` parameters, e.g. ``{qos: high, constraint: a100}``.
    """

    launcher: str = "local"
    partition: str = ""
    account: str = ""
    gpus_per_job: int = 0
    cpus_per_job: int = 0
    mem_gb: float = 0.0
    time_min: int = 0
    requeues: int = 20
    fit_processes: int = 0
    sbatch: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.launcher not in LAUNCHERS:
            raise ValueError(f"launch.launcher: expected one of {list(LAUNCHERS)}, got {self.launcher!r}")
        for name in ("gpus_per_job", "cpus_per_job", "time_min", "requeues", "fit_processes"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"launch.{name}: expected a whole number >= 0, got {value!r}")
        if not isinstance(self.mem_gb, (int, float)) or self.mem_gb < 0:
            raise ValueError(f"launch.mem_gb: expected a number >= 0, got {self.mem_gb!r}")
        if not isinstance(self.sbatch, dict) or not all(isinstance(k, str) and isinstance(v, (str, int, float))
                                                       for k, v in self.sbatch.items()):
            raise ValueError(f"launch.sbatch: expected a mapping of sbatch parameters to single values (qos: high), "
                             f"got {self.sbatch!r}")
        if self.gpus_per_job and self.fit_processes > self.gpus_per_job:
            raise ValueError(f"launch.fit_processes: {self.fit_processes} processes need a GPU each, but gpus_per_job "
                             f"is {self.gpus_per_job}")

    @property
    def processes_per_fit(self) -> int:
        """Processes of each fit cell."""
        return self.fit_processes or max(1, self.gpus_per_job)


@dataclass(frozen=True)
class EvalConfig:
    """Everything ``avatarfit evaluate`` runs (see the module's docstring).

    Attributes:
        models: model names of :data:`avatarfit.eval.plan.MODELS`.
        tables: the paper's tables to fill: 6, 7, 8, 9.
        jobs: jobs side by side with the local launcher (trainings and cells; one thread
            each when > 1 and ``launch.cpus_per_job`` is 0).
        device: ``auto``, ``cpu`` or ``cuda``.
        launch: where the jobs run (:class:`LaunchSpec`).
        source: the file the config was read from (paths in it are relative to its folder).
    """

    subjects: tuple[SubjectSpec, ...] = ()
    capture: CaptureSpec = field(default_factory=CaptureSpec)
    train: TrainSpec = field(default_factory=TrainSpec)
    fit: EvalFitSpec = field(default_factory=EvalFitSpec)
    models: tuple[str, ...] = ()
    tables: tuple[int, ...] = (6, 7, 8, 9)
    jobs: int = 1
    device: str = "auto"
    launch: LaunchSpec = field(default_factory=LaunchSpec)
    source: str = ""

    def __post_init__(self) -> None:
        from .plan import MODELS, TABLES

        object.__setattr__(self, "models", tuple(self.models))
        object.__setattr__(self, "tables", tuple(self.tables))
        if not self.subjects:
            raise ValueError("subjects: expected at least one subject")
        names = [s.name for s in self.subjects]
        if len(set(names)) != len(names):
            raise ValueError(f"subjects: names must differ, got {names}")
        unknown = [m for m in self.models if m not in MODELS]
        if unknown or not self.models:
            raise ValueError(f"models: unknown model(s) {unknown}; expected some of {list(MODELS)}")
        bad = [t for t in self.tables if t not in TABLES]
        if bad or not self.tables:
            raise ValueError(f"tables: unknown table(s) {bad}; expected some of {list(TABLES)} (LiP-Flow, "
                             "supplementary Tables 6-9)")
        for m in self.models:
            need = MODELS[m].pretrained
            if need and need not in self.models:
                raise ValueError(f"models: {m} regresses a trained {need}'s codes; add {need} to models")
        if self.jobs < 1:
            raise ValueError(f"jobs: expected at least 1 process, got {self.jobs}")
        if self.device not in ("auto", "cpu", "cuda"):
            raise ValueError(f"device: expected auto, cpu or cuda, got {self.device!r}")

    @property
    def folder(self) -> Path:
        return Path(self.source).parent if self.source else Path.cwd()

    def base_path(self) -> Path:
        """The training YAML every model extends."""
        return (self.folder / self.train.base).resolve()


def load_eval_config(path: str | os.PathLike, overrides: dict[str, Any] | None = None) -> EvalConfig:
    """Read and check an evaluation config (``overrides`` merged over the file's mapping).

    Raises:
        FormatError: naming the file, for a missing file, bad YAML, unknown keys, unknown
            model or table names and settings out of range.
    """
    path = Path(path)
    data = merge_mappings(read_mapping(path, "evaluation config not found (see configs/eval/small.yaml)"),
                          overrides or {})
    try:
        subjects = data.pop("subjects", None)
        if not isinstance(subjects, list):
            raise ValueError(f"subjects: expected a list of mappings, found {type(subjects).__name__}")
        specs = tuple(from_dict(SubjectSpec, s, f"subjects[{k}]") for k, s in enumerate(subjects))
        if "source" in data:
            raise ValueError("unknown key(s) ['source']")
        config = from_dict(EvalConfig, {**data, "subjects": specs, "source": str(path.resolve())}, where=path.name)
        if not isinstance(config.train.set, dict):
            raise ValueError(f"train.set: expected a mapping of training settings, found {config.train.set!r}")
    except ValueError as exc:
        raise FormatError(path, str(exc)) from None
    return config


def capture_path(config: EvalConfig, subject: SubjectSpec, folder: Path) -> Path:
    """Where a subject's capture is: its own folder (relative to the config's), or
    ``folder/capture`` when the evaluation makes it."""
    if subject.capture is not None:
        path = Path(subject.capture)
        return path if path.is_absolute() else (config.folder / path).resolve()
    return folder / "capture"
