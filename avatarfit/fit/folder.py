"""A fit job's output folder: created empty, or recognised as this job's partial results
(resume), with its ``config.yaml`` and ``search.json``. See :mod:`avatarfit.fit.job` for
what the folder holds."""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import yaml

from .._io import write_text_atomic
from ..avatar import Avatar
from ..config import to_dict
from ..data.capture import FrameRef
from ..errors import FormatError
from .jobspec import FitJob, job_dict, job_differences
from .optimize import FitConfig

__all__ = ["prepare_out", "read_search", "saved_job", "write_config"]


def saved_job(out: Path) -> dict[str, Any] | None:
    """The job saved in ``out/config.yaml`` (as :func:`job_dict` writes it), or ``None``."""
    saved = out / "config.yaml"
    if not saved.is_file():
        return None
    try:
        doc = yaml.safe_load(saved.read_text(encoding="utf-8")) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise FormatError(saved, f"not readable YAML ({type(exc).__name__}); the fit folder is damaged: use another "
                          "--out, or --overwrite to start again") from None
    job = doc.get("job", {}) if isinstance(doc, dict) else None
    if not isinstance(job, dict):
        raise FormatError(saved, "expected a mapping with a 'job' mapping (as avatarfit fit writes it); use another "
                          "--out, or --overwrite to start again")
    return job


def prepare_out(out: Path, job: FitJob, overwrite: bool) -> None:
    """Create ``out``, or check that it holds this job's partial results (resume)."""
    saved = out / "config.yaml"
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"--out {out}: exists and is not a folder")
    try:  # a folder that cannot be written is named before any work
        out.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=out, prefix=".avatarfit-write-test-")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise PermissionError(f"--out {out}: cannot write there ({exc.strerror or exc}); choose another folder") from None
    if overwrite and out.is_dir():
        for name in ("parts", "strips", "tb"):
            shutil.rmtree(out / name, ignore_errors=True)
        for name in ("config.yaml", "search.json", "fits.npz", "metrics.json"):
            (out / name).unlink(missing_ok=True)
    old = saved_job(out)
    if old is not None:
        differ = job_differences(old, job)
        if differ:
            raise FileExistsError(f"--out {out}: holds a fit with other settings (differs in {', '.join(differ)}; "
                                  f"see {saved}); use another --out, or --overwrite to start again")
    elif out.is_dir() and any(out.iterdir()):
        raise FileExistsError(f"--out {out}: not empty and not a fit's folder (no config.yaml); "
                              "use another --out, or --overwrite")
    out.mkdir(parents=True, exist_ok=True)


def read_search(path: Path) -> dict[str, Any]:
    """A saved ``search.json``, checked: a finite ``lr`` > 0 and ``lambda_latent`` >= 0."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise FormatError(path, f"not readable JSON ({type(exc).__name__}); delete it to search again") from None
    ok = isinstance(doc, dict) and all(
        isinstance(doc.get(k), (int, float)) and not isinstance(doc.get(k), bool) and math.isfinite(doc[k])
        for k in ("lr", "lambda_latent"))
    if not ok or doc["lr"] <= 0 or doc["lambda_latent"] < 0:
        found = {k: doc.get(k) for k in ("lr", "lambda_latent")} if isinstance(doc, dict) else type(doc).__name__
        raise FormatError(path, f"expected the chosen 'lr' (> 0) and 'lambda_latent' (>= 0) numbers, found {found}; "
                          "delete it to search again")
    return doc


def write_config(out: Path, job: FitJob, config: FitConfig, avatar: Avatar, frames: list[FrameRef]) -> None:
    """Write ``out/config.yaml``: the job, the resolved fit settings, the avatar and the frames."""
    doc = {"job": job_dict(job), "resolved_fit": to_dict(config),
           "avatar": {"variant": avatar.variant, "condition": avatar.condition, "latent": avatar.latent_size,
                      **{k: v for k, v in avatar.info.items() if isinstance(v, (str, int, float))}},
           "frames": [f"{r.segment}/{r.frame}" for r in frames]}
    write_text_atomic(out / "config.yaml", yaml.safe_dump(doc, sort_keys=False))
