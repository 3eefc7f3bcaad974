"""Contact sheet of synthetic HMC data: per row, the frontal photo with its keypoints
(green visible, red hidden) next to the three HMC views, read back from disk."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch

from .._io import read_png, write_png
from ..data.capture import Capture, FrameRef
from ..data.keypoints import read_keypoints
from ..data.layout import HMC_VIEWS, Layout

__all__ = ["write_preview", "draw_points"]


def draw_points(image: torch.Tensor, xy: torch.Tensor, colors: torch.Tensor, radius: int = 1) -> torch.Tensor:
    """Paint square dots.

    Args:
        image: ``(3, H, W)``.
        xy: ``(N, 2)`` continuous pixel coordinates.
        colors: ``(N, 3)``.
        radius: half-size of each dot in pixels.

    Returns:
        A painted copy of ``image``.
    """
    out = image.clone()
    H, W = out.shape[-2:]
    for (x, y), c in zip(xy.tolist(), colors):
        col, row = int(x), int(y)
        if 0 <= col < W and 0 <= row < H:
            out[:, max(0, row - radius): row + radius + 1, max(0, col - radius): col + radius + 1] = c.view(3, 1, 1)
    return out


def _fit_height(image: torch.Tensor, height: int) -> tuple[torch.Tensor, float]:
    scale = height / image.shape[-2]
    width = max(1, round(image.shape[-1] * scale))
    resized = torch.nn.functional.interpolate(image[None], size=(height, width), mode="bilinear",
                                              align_corners=False, antialias=True)[0]
    return resized.clamp(0, 1), scale


def write_preview(capture: Capture, layout: Layout, frames: Sequence[FrameRef], camera: str, rows: int = 4) -> Path:
    """Write ``hmc/preview.png`` for up to ``rows`` frames spread over ``frames``.

    Returns:
        The PNG path.
    """
    n = len(frames)
    k = min(rows, n)
    picks = sorted({round(i * (n - 1) / max(1, k - 1)) for i in range(k)})
    lines = []
    green = torch.tensor([0.1, 1.0, 0.2])
    red = torch.tensor([1.0, 0.15, 0.1])
    for i in picks:
        ref = frames[i]
        views = [read_png(layout.hmc_view(ref.segment, v, ref.frame), channels=1).expand(3, -1, -1) for v in HMC_VIEWS]
        height = views[0].shape[-2]
        photo, scale = _fit_height(capture.photo(ref.segment, ref.frame, camera), height)
        xy, vis = read_keypoints(layout.keypoints(ref.segment, ref.frame))
        colors = torch.where(vis[:, None], green, red)
        photo = draw_points(photo, xy * scale, colors, radius=0 if height < 200 else 1)
        gap = torch.ones(3, height, 4)
        lines.append(torch.cat([photo, gap] + [torch.cat([v, gap], -1) for v in views], -1))
    width = max(line.shape[-1] for line in lines)
    lines = [torch.nn.functional.pad(line, (0, width - line.shape[-1]), value=1.0) for line in lines]
    sep = torch.ones(3, 4, width)
    sheet = torch.cat([x for line in lines for x in (line, sep)][:-1], -2)
    path = layout.hmc_dir / "preview.png"
    write_png(path, sheet)
    return path
