"""Checks of tensor arguments shared by every room: shapes with named dimensions and finite
values, with messages that name the argument, what was expected and what was found."""

from __future__ import annotations

from typing import Any

import torch

from .errors import InvalidValueError, ShapeError

__all__ = ["check_finite", "check_shape"]


def check_shape(name: str, x: Any, expected: tuple) -> None:
    """Raise :class:`~avatarfit.errors.ShapeError` unless ``x`` is a tensor whose shape
    matches ``expected`` (ints; ``None``: any size)."""
    want = "(" + ", ".join("*" if e is None else str(e) for e in expected) + ")"
    if not isinstance(x, torch.Tensor):
        raise ShapeError(f"{name}: expected a tensor of shape {want}, got {type(x).__name__}")
    if x.ndim != len(expected) or not all(e is None or e == s for e, s in zip(expected, x.shape)):
        raise ShapeError(f"{name}: expected shape {want}, got {tuple(x.shape)}")


def check_finite(name: str, x: torch.Tensor) -> None:
    """Raise :class:`~avatarfit.errors.InvalidValueError` when a floating tensor holds NaN or Inf."""
    if x.is_floating_point() and not bool(torch.isfinite(x).all()):
        bad = int((~torch.isfinite(x)).sum())
        raise InvalidValueError(f"{name}: expected finite values, found {bad} NaN or Inf")
