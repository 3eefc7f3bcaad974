"""The evaluation's tables (Markdown and CSV, in the layout of LiP-Flow's Tables 6-9), bar
charts and grids of frontal fits."""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Any

from .._io import atomic_path, write_text_atomic
from .config import EvalConfig
from .plan import MODELS, TABLES, TASKS, Cell, Table

__all__ = ["average_results", "markdown_tables", "comparisons_markdown", "csv_table", "bar_chart", "fit_grid",
           "write_reports", "COMPARISONS"]

#: The paper's headline orderings: ``(title, cell a, cell b)``, a expected better than b.
COMPARISONS = (
    ("LiP-Flow-HMC vs DAM, HMC fitting", "lip_flow_hmc/hmc", "dam/hmc"),
    ("LiP-Flow-KPT vs DAM, keypoint fitting", "lip_flow_kpt/keypoints", "dam/keypoints"),
    ("LiP-Flow-HMC vs DAM, masked frontal fitting", "lip_flow_hmc/masked", "dam/masked"),
    ("LiP-Flow-KPT vs DAM, masked frontal fitting", "lip_flow_kpt/masked", "dam/masked"),
    ("LiP-Flow-HMC with vs without L_L, HMC fitting", "lip_flow_hmc/hmc", "lip_flow_hmc/hmc_noLL"),
    ("LiP-Flow-KPT with vs without L_L, keypoint fitting", "lip_flow_kpt/keypoints", "lip_flow_kpt/keypoints_noLL"),
    ("LiP-Flow-HMC vs LiP-KL-HMC, prior mean (before fitting)", "lip_flow_hmc/decode_prior", "lip_kl_hmc/decode_prior"),
    ("LiP-Flow-HMC vs LiP-KL-HMC, HMC fitting", "lip_flow_hmc/hmc", "lip_kl_hmc/hmc"),
    ("LiP-Flow-KPT vs LiP-KL-KPT, prior mean (before fitting)", "lip_flow_kpt/decode_prior", "lip_kl_kpt/decode_prior"),
    ("LiP-Flow-KPT vs LiP-KL-KPT, keypoint fitting", "lip_flow_kpt/keypoints", "lip_kl_kpt/keypoints"),
)

#: Metrics of the comparisons: ``(key, label, higher is better)``.
COMPARED = (("psnr", "PSNR dB", True), ("geom_mm", "Geom mm", False))

#: CSV columns after the cell's identity.
METRICS = ("psnr", "ssim", "geom_mm", "motion_explained", "prior_r2", "geom_mm_mean_mesh", "l1", "psnr_face",
           "ssim_face", "kpt_px", "psnr_init", "ssim_init",
           "psnr_face_init", "geom_mm_init", "headset_deg",
           "headset_mm", "steps_mean", "seconds_per_frame", "frames", "lr", "lambda_latent")


def average_results(results: dict[str, dict[str, dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    """``cell key -> summary``: each number the mean over the subjects that have it, with
    ``subjects`` the count."""
    out: dict[str, dict[str, Any]] = {}
    for per_subject in results.values():
        for key, summary in per_subject.items():
            for k, v in summary.items():
                if isinstance(v, (int, float)) and v is not None and math.isfinite(v):
                    out.setdefault(key, {}).setdefault(k, []).append(float(v))
    return {key: {**{k: sum(v) / len(v) for k, v in d.items()}, "subjects": max(len(v) for v in d.values())}
            for key, d in out.items()}


def _value(summary: dict[str, Any] | None, key: str, digits: int) -> str:
    if summary is None:
        return "n/a"
    v = summary.get(key)
    if not isinstance(v, (int, float)) or not math.isfinite(v):
        return "n/a"
    return f"{v:.{digits}f}"


def _cell_for(model: str, task: str, latent: bool) -> Cell:
    return Cell(model, task, latent).canonical()


def _columns(task: str) -> list[tuple[str, str, int]]:
    cols = [("PSNR", "psnr", 2), ("SSIM", "ssim", 3), ("PSNR face", "psnr_face", 2), ("SSIM face", "ssim_face", 3),
            ("Geom mm", "geom_mm", 3), ("motion", "motion_explained", 2), ("L1", "l1", 4)]
    if task == "decode_prior":
        cols.append(("R2", "prior_r2", 2))
    if task == "keypoints":
        cols.append(("KPT px", "kpt_px", 2))
    if task == "hmc_pose":
        cols += [("pose deg", "headset_deg", 2), ("pose mm", "headset_mm", 2)]
    if TASKS[task].is_fit:
        cols += [("steps", "steps_mean", 0), ("s/frame", "seconds_per_frame", 2)]
    return cols


def _table_markdown(table: Table, summaries: dict[str, dict[str, Any]], models: tuple[str, ...]) -> str:
    rows = [m for m in table.rows if m in models]
    lines = [f"### {table.title}", ""]
    groups = list(table.columns)
    for a in range(0, len(groups), 2):
        pair = groups[a:a + 2]
        header, rule = ["Models"], ["---"]
        for task, _, title in pair:
            for name, _, _ in _columns(task):
                header.append(f"{name}")
                rule.append("---:")
        lines.append(" | ".join(f"**{title}**" for _, _, title in pair) + (" (left | right)" if len(pair) > 1 else ""))
        lines.append("")
        lines.append("| " + " | ".join(header) + " |")
        lines.append("| " + " | ".join(rule) + " |")
        for m in rows:
            cells = [MODELS[m].title]
            for task, latent, _ in pair:
                cell = _cell_for(m, task, latent)
                summary = summaries.get(cell.key) if cell.applies() else None
                cells += [_value(summary, key, d) for _, key, d in _columns(task)]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def markdown_tables(config: EvalConfig, summaries: dict[str, dict[str, Any]], heading: str,
                    mean_mesh: dict[str, float] | None = None) -> str:
    """The configured tables as Markdown (``summaries``: cell key -> summary;
    ``mean_mesh``: subject -> Geom of its mean mesh on the test frames)."""
    parts = [f"# {heading}", "",
             "PSNR (dB), SSIM and L1 of frontal renderings against the whole photos; PSNR face, SSIM face: the "
             "same over the face pixels only (the tracked mesh's mask, the pixels training scores; rendered "
             "pixels outside it count in the whole-image figures only); Geom: mean vertex distance to the "
             "tracked mesh (mm); motion: the fraction of the frames' motion explained, 1 - Geom / Geom of the "
             "subject's mean mesh on the same frames (0: no better than the mean face); R2: prior responsiveness, "
             "the R^2 of the prior's mean code against the DAM encoder's codes of the same frames (decoder space; "
             "0: the prior ignores its observation); KPT px: mean keypoint distance, steps: mean Adam steps, s/frame: fitting seconds per "
             "frame (search excluded). Fits start from the prior encoder's mean; w/o L_L: lambda_L = 0. "
             "lr and lambda_L are searched per cell on the paper's grid on validation frames (frontal PSNR against "
             "the ground truth), early stopping chose each model's checkpoint on the same validation frames, and "
             f"every figure is on test frames only ({config.fit.frames or 'all'} per subject), which chose nothing.",
             ""]
    if mean_mesh:
        parts += ["Geom of the mean mesh on the test frames (what the motion column divides by): "
                  + ", ".join(f"{k} {v:.3f} mm" for k, v in mean_mesh.items()) + ".", ""]
    for n in config.tables:
        parts.append(_table_markdown(TABLES[n], summaries, config.models))
    return "\n".join(parts)


def _paired(results: dict[str, dict[str, dict[str, Any]]], a: str, b: str, metric: str
            ) -> dict[str, tuple[list[float], list[float]]]:
    """Per subject, the scores of cells ``a`` and ``b`` on the test frames both have."""
    out = {}
    for subject, cells in results.items():
        if a not in cells or b not in cells:
            continue
        fa = {r["name"]: r.get(metric) for r in cells[a].get("per_frame", [])}
        fb = {r["name"]: r.get(metric) for r in cells[b].get("per_frame", [])}
        names = [n for n in fa if n in fb and isinstance(fa[n], (int, float)) and isinstance(fb[n], (int, float))]
        if names:
            out[subject] = ([float(fa[n]) for n in names], [float(fb[n]) for n in names])
    return out


def comparisons_markdown(results: dict[str, dict[str, dict[str, Any]]], resamples: int = 10000) -> str:
    """The paper's headline orderings (:data:`COMPARISONS`) as paired differences over
    test frames with 95 % bootstrap intervals, per subject and pooled, and whether each
    ordering holds, is reversed or is not resolved (the interval contains 0)."""
    from .compare import paired_difference, verdict

    subjects = list(results)
    pooled = len(subjects) > 1
    head = ["Comparison (a vs b)", "metric", *subjects, *(["pooled"] if pooled else []), "paper's ordering (a better)"]
    lines = ["## Paired differences a - b on test frames (95 % bootstrap intervals)", "",
             "Each figure is the mean over a subject's test frames of a's score minus b's on the same frame, with a "
             f"percentile-bootstrap interval ({resamples} resamples of the frames; pooled: resampled within each "
             "subject). The last column judges the pooled interval (one subject: its own): *holds* (excludes 0 on "
             "the paper's side), *reversed* (excludes 0 on the other), *not resolved* (contains 0).", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for title, a, b in COMPARISONS:
        for metric, label, higher in COMPARED:
            pairs = _paired(results, a, b, metric)
            if not pairs:
                continue
            row = [title, label]
            for s in subjects:  # with one subject, its d is also the one judged
                if s in pairs:
                    d = paired_difference(*pairs[s], resamples=resamples)
                    row.append(f"{d.mean:+.3f} [{d.low:+.3f}, {d.high:+.3f}] (n={d.frames})")
                else:
                    row.append("n/a")
            if pooled:
                d = paired_difference([p[0] for p in pairs.values()], [p[1] for p in pairs.values()],
                                      resamples=resamples)
                row.append(f"{d.mean:+.3f} [{d.low:+.3f}, {d.high:+.3f}] (n={d.frames})")
            row.append(verdict(d, higher))
            lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def csv_table(config: EvalConfig, results: dict[str, dict[str, dict[str, Any]]]) -> str:
    """One row per subject (and ``mean``), table, model and column group."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["subject", "table", "model", "model_title", "task", "column", "latent", *METRICS])
    everything = {**results, "mean": average_results(results)} if len(results) > 1 else results
    for subject, summaries in everything.items():
        for n in config.tables:
            table = TABLES[n]
            for m in (r for r in table.rows if r in config.models):
                for task, latent, title in table.columns:
                    cell = _cell_for(m, task, latent)
                    s = summaries.get(cell.key) if cell.applies() else None
                    vals = ["" if s is None or not isinstance(s.get(k), (int, float)) else s[k] for k in METRICS]
                    w.writerow([subject, n, m, MODELS[m].title, task, title, int(latent), *vals])
    return buf.getvalue()


def bar_chart(config: EvalConfig, number: int, summaries: dict[str, dict[str, Any]], path: Path, title: str) -> Path:
    """PSNR (whole image and face pixels) and geometry error per model (bars) and column
    group (x) of one table, as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    table = TABLES[number]
    rows = [m for m in table.rows if m in config.models]
    groups = list(table.columns)
    panels = (("psnr", "PSNR (dB), whole image"), ("psnr_face", "PSNR (dB), face pixels"),
              ("geom_mm", "geometry error (mm), lower is better"))
    fig, axes = plt.subplots(len(panels), 1, figsize=(max(6.0, 1.3 * len(groups) + 2), 9.0), constrained_layout=True)
    width = 0.8 / max(len(rows), 1)
    x = np.arange(len(groups))
    for ax, (key, label) in zip(axes, panels):
        for k, m in enumerate(rows):
            vals = []
            for task, latent, _ in groups:
                cell = _cell_for(m, task, latent)
                s = summaries.get(cell.key) if cell.applies() else None
                v = s.get(key) if s else None
                vals.append(v if isinstance(v, (int, float)) and math.isfinite(v) else np.nan)
            ax.bar(x + (k - (len(rows) - 1) / 2) * width, vals, width, label=MODELS[m].title)
        ax.set_ylabel(label)
        ax.set_xticks(x, [t.replace(" Fitting", "\nfitting").replace(" Decoding", "\ndecoding") for _, _, t in groups],
                      fontsize=7)
        finite = [p.get_height() for p in ax.patches if math.isfinite(p.get_height())]
        if key.startswith("psnr") and finite:
            ax.set_ylim(min(finite) - 1.0, max(finite) + 0.5)
    handles, names = axes[0].get_legend_handles_labels()
    fig.legend(handles, names, fontsize=7, ncols=min(len(rows), 5), loc="outside lower center")
    fig.suptitle(title, fontsize=9)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    return path


def fit_grid(config: EvalConfig, number: int, cells_dir: Path, runs: dict[str, Path], capture: Path,
             path: Path) -> Path | None:
    """Frontal renderings of the fitted codes of one table's observation fit (HMC or
    keypoints, with L_L; Table 6: frontal) for the same frames, as LiP-Flow, supplementary Figs. 13-14.
    Rows: frames; columns: photo, then per model its fit and its error (x4). ``None``
    when no model has finished that fit."""
    import numpy as np
    import torch

    from ..avatar import Avatar
    from ..data.capture import Capture
    from ..fit.score import render_frontal
    from ..observe.sources import TargetSource

    task = {6: "frontal", 7: "hmc", 8: "keypoints", 9: "hmc_pose"}[number]
    rows = [m for m in TABLES[number].rows if m in config.models and (cells_dir / Cell(m, task, True).key /
                                                                       "fits.npz").is_file()]
    if not rows:
        return None
    cap = Capture(capture)
    first = np.load(cells_dir / Cell(rows[0], task, True).key / "fits.npz")
    names = [str(n) for n in first["names"][:config.fit.grid_frames]]
    refs = [r for r in cap.frames() if f"{r.segment}/{r.frame}" in names]
    truth = TargetSource(cap).truth(refs)
    columns = [truth.photo]
    for m in rows:
        data = np.load(cells_dir / Cell(m, task, True).key / "fits.npz")
        index = {str(n): k for k, n in enumerate(data["names"])}
        z = torch.from_numpy(data["z"][[index[f"{r.segment}/{r.frame}"] for r in refs]]).float()
        avatar = Avatar.load(runs[m]).eval()
        img = render_frontal(avatar, truth, z)
        columns += [img, ((img - truth.photo).abs() * 4).clamp(0, 1)]
    gap = torch.ones(len(refs), 3, truth.photo.shape[-2], 2)
    row = torch.cat([c if k == 0 else torch.cat([gap, c], dim=-1) for k, c in enumerate(columns)], dim=-1)
    hgap = torch.ones(3, 2, row.shape[-1])
    sheet = torch.cat([torch.cat([r, hgap], dim=1) for r in row], dim=1)[:, :-2]
    labels = ["photo"] + [t for m in rows for t in (MODELS[m].title, "error x4")]
    _labelled_png(sheet, labels, [f"{r.segment}/{r.frame}" for r in refs], path,
                  f"{TABLES[number].title}: frontal renderings after {task.replace('_', ' ')} fitting with L_L")
    return path


def _labelled_png(sheet, columns: list[str], rows: list[str], path: Path, title: str) -> None:
    """``sheet`` ``(3, H, W)`` (equal columns and rows, 2-pixel gaps) with column and row labels."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    _, H, W = sheet.shape
    scale = 2.0 / 100  # inches per pixel at dpi 100, images drawn at 2x
    fig = plt.figure(figsize=(W * scale + 1.6, H * scale + 1.2), dpi=100)
    ax = fig.add_axes((1.4 / (W * scale + 1.6), 0.2 / (H * scale + 1.2), W * scale / (W * scale + 1.6),
                       H * scale / (H * scale + 1.2)))
    ax.imshow(sheet.permute(1, 2, 0).numpy(), interpolation="nearest")
    cw, rh = (W + 2) / len(columns), (H + 2) / len(rows)
    ax.set_xticks([cw * (k + 0.5) - 1 for k in range(len(columns))], columns, fontsize=7, rotation=30, ha="left")
    ax.xaxis.tick_top()
    ax.set_yticks([rh * (k + 0.5) - 1 for k in range(len(rows))], rows, fontsize=7)
    ax.tick_params(length=0)
    for side in ax.spines.values():
        side.set_visible(False)
    fig.text(0.01, 0.005, title, fontsize=7)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)


def write_reports(config: EvalConfig, folder: Path, results: dict[str, dict[str, dict[str, Any]]], *,
                  runs: dict[str, Path] | None = None, capture: Path | None = None) -> list[Path]:
    """``tables.md``, ``tables.csv`` and ``table{N}.png`` in ``folder`` (the mean over the
    subjects of ``results``), and with ``runs`` and ``capture`` (one subject) the grids of
    fits ``fits_table{N}.png``. Returns the files written."""
    summaries = average_results(results) if len(results) > 1 else next(iter(results.values()))
    who = ", ".join(results)
    heading = (f"Mean over {len(results)} subjects ({who})" if len(results) > 1 else f"Subject {who}")
    files = [folder / "tables.md", folder / "tables.csv"]
    mean_mesh = {}
    for subject, cells in results.items():
        values = [c["geom_mm_mean_mesh"] for k, c in sorted(cells.items()) if k.endswith("/decode_encoder")
                  and isinstance(c.get("geom_mm_mean_mesh"), (int, float))]
        if values:
            mean_mesh[subject] = values[0]
    text = markdown_tables(config, summaries, heading, mean_mesh) + "\n\n" + comparisons_markdown(results) + "\n"
    write_text_atomic(files[0], text)
    write_text_atomic(files[1], csv_table(config, results))
    for n in config.tables:
        files.append(bar_chart(config, n, summaries, folder / f"table{n}.png", f"{TABLES[n].title} ({heading})"))
        if runs is not None and capture is not None:
            grid = fit_grid(config, n, folder / "cells", runs, capture, folder / f"fits_table{n}.png")
            if grid is not None:
                files.append(grid)
    return files
