"""Paired comparisons of two cells on the same frames, with bootstrap intervals.

Two models fitted to the same test frames give paired per-frame scores; their difference
is what a reader needs (is LiP-Flow better than DAM here, and by how much), with a 95 %
interval that says whether the frames resolve it. Frames are resampled with replacement
(the percentile bootstrap); pooling several subjects resamples within each subject
(stratified), so a subject with more frames does not count more than its frames do.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = ["Difference", "paired_difference", "verdict"]


@dataclass(frozen=True)
class Difference:
    """``mean(a - b)`` over paired frames and its percentile-bootstrap interval.

    Attributes:
        mean: the mean difference.
        low, high: bounds of the ``level`` interval.
        frames: number of pairs.
        level: the interval's coverage (0.95).
    """

    mean: float
    low: float
    high: float
    frames: int
    level: float = 0.95

    @property
    def resolved(self) -> bool:
        """Whether the interval excludes 0."""
        return self.low > 0 or self.high < 0


def paired_difference(a: list[list[float]] | list[float], b: list[list[float]] | list[float], *,
                      resamples: int = 10000, level: float = 0.95, seed: int = 0) -> Difference:
    """The mean of ``a - b`` over paired frames, with a percentile-bootstrap interval.

    Args:
        a, b: per-frame scores of the two cells, the same frames in the same order: one
            list per subject (stratified resampling within each) or one flat list.
        resamples: bootstrap resamples.
        level: interval coverage.
        seed: seed of the resampling (the interval is reproducible).

    Returns:
        :class:`Difference`; the pooled mean weighs every frame alike.

    Raises:
        ValueError: lists of different lengths, or no frames.
    """
    groups_a = [a] if not a or not isinstance(a[0], (list, tuple)) else a
    groups_b = [b] if not b or not isinstance(b[0], (list, tuple)) else b
    if len(groups_a) != len(groups_b) or any(len(x) != len(y) for x, y in zip(groups_a, groups_b)):
        raise ValueError(f"a, b: expected paired scores of the same frames, got {[len(x) for x in groups_a]} and "
                         f"{[len(y) for y in groups_b]} frames")
    diffs = [torch.tensor(x, dtype=torch.float64) - torch.tensor(y, dtype=torch.float64)
             for x, y in zip(groups_a, groups_b) if len(x)]
    n = sum(len(d) for d in diffs)
    if n == 0:
        raise ValueError("a, b: no frames to compare")
    gen = torch.Generator().manual_seed(seed)
    total = torch.zeros(resamples, dtype=torch.float64)
    for d in diffs:
        idx = torch.randint(len(d), (resamples, len(d)), generator=gen)
        total += d[idx].sum(1)
    means = total / n
    q = torch.tensor([(1 - level) / 2, (1 + level) / 2], dtype=torch.float64)
    low, high = torch.quantile(means, q).tolist()
    return Difference(float(torch.cat(diffs).mean()), low, high, n, level)


def verdict(diff: Difference, higher_is_better: bool, expected_better: bool = True) -> str:
    """``holds``, ``reversed`` or ``not resolved``: whether the paper's ordering (``a``
    better than ``b`` when ``expected_better``) is what the interval shows."""
    if not diff.resolved:
        return "not resolved"
    a_better = (diff.low > 0) == higher_is_better
    return "holds" if a_better == expected_better else "reversed"
