"""Pictures of fits a person can look at: one strip per frame.

Columns, each scaled to the frontal image's height: the target (HMC views stacked, the
masked photo, the photo with its keypoints) | the fit in the target's view (rendered HMC
views, the fitted keypoints over the fitted frontal rendering) | the frontal rendering
before fitting (the prior's mean) | after fitting | the ground-truth photo | the absolute
error of the frontal fit x 4.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .optimize import FitResult
from ..observe.targets import HMCTarget, KeypointTarget, MaskedFrontalTarget

__all__ = ["fit_strip", "STRIP_COLUMNS"]

#: Column titles of :func:`fit_strip`, left to right.
STRIP_COLUMNS = ("target", "fit (target view)", "frontal before", "frontal fit", "ground truth", "error x4")

_GREEN = (0.1, 1.0, 0.2)
_RED = (1.0, 0.15, 0.1)


def _rgb(image: torch.Tensor) -> torch.Tensor:
    return image.expand(3, -1, -1) if image.shape[0] == 1 else image


def _to_height(image: torch.Tensor, height: int) -> torch.Tensor:
    """``(ch, h, w)`` -> ``(3, height, w * height / h)``, aspect kept."""
    image = _rgb(image.float().clamp(0, 1))
    h, w = image.shape[-2:]
    if h == height:
        return image
    width = max(1, round(w * height / h))
    return F.interpolate(image[None], size=(height, width), mode="bilinear", align_corners=False,
                         antialias=height < h)[0]


def _stack_views(views: torch.Tensor) -> torch.Tensor:
    """``(C, ch, h, w)`` -> ``(3, C h, w)``: views one above the other."""
    return torch.cat([_rgb(v) for v in views], dim=-2)


def draw_points(image: torch.Tensor, points: torch.Tensor, colour: tuple[float, float, float],
                visible: torch.Tensor | None = None, radius: int = 1) -> torch.Tensor:
    """A copy of ``image (3, H, W)`` with square dots of ``colour`` at ``points (N, 2)`` pixels."""
    out = _rgb(image).clone()
    H, W = out.shape[-2:]
    pts = points if visible is None else points[visible.bool()]
    c = torch.tensor(colour, dtype=out.dtype)[:, None]
    for dy in range(-radius, radius + 1):
        for dx in range(-radius, radius + 1):
            x = (pts[:, 0] - 0.5).round().long() + dx
            y = (pts[:, 1] - 0.5).round().long() + dy
            ok = (x >= 0) & (x < W) & (y >= 0) & (y < H)
            out[:, y[ok], x[ok]] = c
    return out


@torch.no_grad()
def fit_strip(target, result: FitResult, i: int, error_gain: float = 4.0) -> torch.Tensor:
    """The strip of frame ``i`` of a fitted batch: ``(3, H, W_total)`` in [0, 1] on the CPU
    (columns :data:`STRIP_COLUMNS`; without ground truth only the first two)."""
    truth = target.truth
    render = result.render[i].detach().cpu()
    if isinstance(target, HMCTarget):
        shown = _stack_views(target.views[i].cpu())
        fitted = _stack_views(render)
    elif isinstance(target, KeypointTarget):
        base = truth.photo[i].cpu() if truth is not None else torch.zeros(3, *target.image_size)
        pts, vis = target.points[i].cpu(), target.visible[i].cpu()
        shown = draw_points(base * 0.7, pts, _GREEN, vis)
        under = result.frontal[i].cpu() if result.frontal is not None else base * 0.3
        fitted = draw_points(draw_points(under * 0.7, pts, _GREEN, vis), render, _RED, vis)
    else:
        shown = target.image[i].cpu()
        fitted = render[0]
        if isinstance(target, MaskedFrontalTarget):
            m = (target.mask[i].cpu() > 0).float()
            shown = shown * m + 0.25 * shown * (1 - m)  # the hidden part dimmed, so the mask reads
    height = int(truth.photo.shape[-2]) if truth is not None else int(fitted.shape[-2])
    columns = [shown, fitted]
    if truth is not None and result.frontal is not None:
        photo = truth.photo[i].cpu()
        after = result.frontal[i].cpu()
        error = ((after - photo).abs() * error_gain).clamp(0, 1)
        columns += [result.frontal_init[i].cpu(), after, photo, error]
    gap = torch.ones(3, height, 2)
    parts = []
    for c in columns:
        parts += [_to_height(c, height), gap]
    return torch.cat(parts[:-1], dim=-1)
