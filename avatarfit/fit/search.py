"""The paper's hyper-parameter search (LiP-Flow, supplementary H.2): a grid of learning rates and latent
weights fitted on one batch, the best pair kept for the rest of the evaluation."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import torch

from ..avatar import Avatar
from ..errors import FitFailedError
from ..metrics import psnr
from .optimize import FitConfig, fit
from .score import render_frontal

__all__ = ["PAPER_GRIDS", "SearchResult", "search_hyperparameters"]

#: ``kind -> (learning rates, latent weights)`` of the paper.
PAPER_GRIDS: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "frontal": ((0.01, 0.1, 0.5), (0.01, 0.001, 0.0001)),
    "masked": ((0.01, 0.1, 0.5), (0.01, 0.001, 0.0001)),
    "hmc": ((0.01, 0.1, 0.5), (0.1, 0.01, 0.001)),
    "keypoints": ((0.01, 0.1, 0.5), (0.1, 0.01, 0.001)),
}


@dataclass(frozen=True)
class SearchResult:
    """The best pair, how it was judged, and every cell ``(lr, lambda_latent, score)``.

    ``criterion`` is ``psnr`` (the mean frontal PSNR against the ground truth, higher is
    better: the paper's protocol reports the best-performing setting on the first
    evaluation batch) when the batch carries ground truth, else ``data`` (the mean data
    term at the fitted codes, lower is better). A pair whose objective became NaN or Inf
    on any frame scores NaN and is never chosen.
    """

    lr: float
    lambda_latent: float
    criterion: str
    table: tuple[tuple[float, float, float], ...]

    def config(self, base: FitConfig = FitConfig()) -> FitConfig:
        """``base`` with the chosen pair."""
        return dataclasses.replace(base, lr=self.lr, lambda_latent=self.lambda_latent)


def search_hyperparameters(avatar: Avatar, target, kind: str | None = None, base: FitConfig = FitConfig(),
                           grid: tuple[tuple[float, ...], tuple[float, ...]] | None = None,
                           progress=None, max_batch: int | None = None) -> SearchResult:
    """Fit ``target`` (one batch) with every pair of the grid and return the best.

    With ``max_batch`` above the batch, pairs are fitted together: the batch is repeated
    once per pair and fitted once with a learning rate and a latent weight per frame
    (``fit(frame_lr=..., frame_lambda=...)``). Frames are independent in a fit, so each
    pair's frames follow a fit of that pair alone up to rounding; over 200 steps with kept
    faces and antialiased outlines such rounding can grow (a pixel's kept face flips), so a
    batched search may score a pair differently from a pair-by-pair one (measured:
    ``benchmarks/bench_fit.py``, section 3).

    Args:
        avatar: the trained avatar.
        target: the batch to search on (``B`` frames).
        kind: the target kind whose paper grid is used (default: the target's).
        base: the other settings of every fit.
        grid: ``(learning rates, latent weights)`` instead of the paper's.
        progress: called with ``(lr, lambda_latent, score)`` for each pair, in grid order.
        max_batch: at most this many frames per fit (whole pairs: at least one pair's ``B``);
            ``None``: every pair in one fit; ``B`` or less: one pair at a time, each a plain
            :func:`~avatarfit.fit.fit` with its settings.

    Raises:
        FitFailedError: every pair failed (a NaN or Inf objective on at least one frame).
    """
    kind = kind or target.kind
    if grid is None:
        if kind not in PAPER_GRIDS:
            raise ValueError(f"kind: expected one of {sorted(PAPER_GRIDS)}, got {kind!r}")
        grid = PAPER_GRIDS[kind]
    lrs, lambdas = grid
    if not lrs or not lambdas:
        raise ValueError(f"grid: expected at least one learning rate and one weight, got {grid}")
    if max_batch is not None and (isinstance(max_batch, bool) or not isinstance(max_batch, int) or max_batch < 1):
        raise ValueError(f"max_batch: expected a number of frames >= 1 or None, got {max_batch!r}")
    pairs = [(float(lr), float(lam)) for lr in lrs for lam in lambdas]
    B = target.batch
    per_fit = len(pairs) if max_batch is None else max(1, max_batch // B)
    criterion = "psnr" if target.truth is not None else "data"
    table = []
    for first in range(0, len(pairs), per_fit):
        chunk = pairs[first:first + per_fit]
        if len(chunk) == 1:  # one pair: a plain fit with its settings
            fitted = target
            result = fit(avatar, target, dataclasses.replace(base, lr=chunk[0][0], lambda_latent=chunk[0][1]))
        else:
            device = avatar.vert_mean.device
            frame_lr = torch.tensor([lr for lr, _ in chunk for _ in range(B)], device=device)
            frame_lambda = torch.tensor([lam for _, lam in chunk for _ in range(B)], device=device)
            fitted = target.select(list(range(B)) * len(chunk))
            result = fit(avatar, fitted, base, frame_lr=frame_lr, frame_lambda=frame_lambda)
        if criterion == "psnr":
            frontal = psnr(render_frontal(avatar, fitted.truth, result.z), fitted.truth.photo).cpu()
        for k, (lr, lam) in enumerate(chunk):
            rows = slice(k * B, (k + 1) * B)
            if bool(result.failed[rows].any()):  # a setting that diverges on any frame is not chosen
                score = math.nan
            elif criterion == "psnr":
                v = frontal[rows]
                v = v[torch.isfinite(v)]
                score = float(v.mean()) if v.numel() else math.nan
            else:
                score = float(result.data_term[rows].nanmean())
            table.append((lr, lam, score))
            if progress is not None:
                progress(lr, lam, score)
    sign = -1.0 if criterion == "psnr" else 1.0
    finite = [row for row in table if math.isfinite(row[2])]
    if not finite:
        raise FitFailedError(f"search: every setting of the grid (lr {list(lrs)} x lambda_L {list(lambdas)}) failed: "
                             f"the objective became NaN or Inf on at least one of the {target.batch} search frames; "
                             "search a grid of smaller learning rates, or check the target's pixels")
    lr, lam, _ = min(finite, key=lambda row: sign * row[2])
    return SearchResult(lr, lam, criterion, tuple(table))
