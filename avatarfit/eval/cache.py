"""Finished cells: a cell's JSON is reused when it was computed with the same spec (the
cache of cells is the single source of truth for the tables)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .cells import cell_spec
from .config import EvalConfig, SubjectSpec, capture_path
from .plan import plan_cells, table_models

__all__ = ["finished_cells", "read_cell", "summary_of"]


def read_cell(path: Path, spec: dict[str, Any], ignore: tuple[str, ...] = ()) -> dict[str, Any] | None:
    """The cell's JSON when it was computed with ``spec`` (keys in ``ignore`` aside)."""
    if not path.is_file():
        return None
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError:
        return None
    saved = {k: v for k, v in (doc.get("spec") or {}).items() if k not in ignore}
    return doc if saved == {k: v for k, v in spec.items() if k not in ignore} else None


def finished_cells(config: EvalConfig, out: Path, subject: SubjectSpec) -> dict[str, dict[str, Any]]:
    """``cell key -> summary`` of the subject's cells finished in ``out`` with the current
    settings and models (what ``--tables-only`` tabulates). Where the capture and the run
    folders were is not compared, so a folder moved or committed elsewhere (cell files and
    the runs' ``config.yaml``) still tabulates; the training config and fit settings are."""
    folder = out / subject.name
    capture = capture_path(config, subject, folder)
    found: dict[str, dict[str, Any]] = {}
    for cell in plan_cells(config.tables, tuple(table_models(config.tables, config.models))):
        spec = cell_spec(config, cell, folder / "runs" / cell.model, capture)
        path = folder / "cells" / f"{cell.key}.json"
        doc = read_cell(path, spec, ignore=("from", "capture", "run")) \
            if (folder / "runs" / cell.model / "config.yaml").is_file() \
            else None
        if doc is not None:
            found[cell.key] = summary_of(doc)
    return found


def summary_of(doc: dict[str, Any]) -> dict[str, Any]:
    """A cell's summary with its searched settings, ``motion_explained`` (1 - Geom / Geom
    of the mean mesh on the same frames) and its per-frame records (``per_frame``)."""
    s = {**doc["summary"], **({"lr": doc["lr"], "lambda_latent": doc["lambda_latent"]} if "lr" in doc else {})}
    mean_mesh = s.get("geom_mm_mean_mesh")
    if isinstance(mean_mesh, (int, float)) and mean_mesh > 0 and isinstance(s.get("geom_mm"), (int, float)):
        s["motion_explained"] = 1.0 - s["geom_mm"] / mean_mesh
    s["per_frame"] = doc.get("frames") or []
    return s
