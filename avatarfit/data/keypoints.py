"""2D keypoint files: ``keypoints/{seg}/{frame}.txt``, one ``x y visible`` row per point.

``x`` and ``y`` are continuous pixel coordinates in the recorded camera (pixel centres at
``i + 0.5``, x right, y down); ``visible`` is 1 when the point is in the image and not
hidden by the face itself, else 0.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from .._io import write_text_atomic
from ..errors import FormatError, ShapeError
from ._text import parse_floats, table_rows

__all__ = ["read_keypoints", "format_keypoints", "write_keypoints", "normalise_keypoints"]


def read_keypoints(path: str | os.PathLike, count: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Read a keypoint file.

    Returns:
        ``xy (K, 2)`` float32 pixels and ``visible (K,)`` bool.
    """
    path = Path(path)
    xy, vis = [], []
    for lineno, tokens in table_rows(path, "keypoint file", "x y visible"):
        x, y = parse_floats(path, lineno, tokens[:2], "pixel coordinate")
        if tokens[2] not in ("0", "1"):
            raise FormatError(path, f"expected visibility 0 or 1, found {tokens[2]!r}", lineno)
        xy.append((x, y))
        vis.append(tokens[2] == "1")
    if count is not None and len(xy) != count:
        raise FormatError(path, f"expected {count} keypoints, found {len(xy)}")
    if not xy:
        raise FormatError(path, "no keypoints found")
    return torch.tensor(xy, dtype=torch.float32), torch.tensor(vis, dtype=torch.bool)


def format_keypoints(xy: torch.Tensor, visible: torch.Tensor) -> str:
    """Text of ``xy (K, 2)`` and ``visible (K,)``."""
    if xy.ndim != 2 or xy.shape[1] != 2 or visible.shape != xy.shape[:1]:
        raise ShapeError(f"xy, visible: expected shapes (K, 2) and (K,), got {tuple(xy.shape)} and {tuple(visible.shape)}")
    rows = [f"{x:.3f} {y:.3f} {int(v)}" for (x, y), v in zip(xy.tolist(), visible.tolist())]
    return "\n".join(rows) + "\n"


def write_keypoints(path: str | os.PathLike, xy: torch.Tensor, visible: torch.Tensor) -> None:
    """Write a keypoint file atomically."""
    write_text_atomic(path, format_keypoints(xy, visible))


def normalise_keypoints(xy: torch.Tensor, visible: torch.Tensor, image_size: tuple[int, int]) -> torch.Tensor:
    """The keypoint encoder's input: pixels ``(..., K, 2)`` -> [-1, 1] by the image size
    ``(H, W)``; hidden keypoints (``visible (..., K)`` false) -> 0."""
    H, W = image_size
    scale = torch.tensor([W, H], dtype=xy.dtype, device=xy.device)
    return (xy / scale * 2 - 1) * visible[..., None].to(xy.dtype)
