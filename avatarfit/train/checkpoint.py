"""Checkpoints: written atomically, holding the resolved config, read back with checks."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from .._io import atomic_path
from ..config import from_dict, to_dict
from ..errors import FormatError
from .config import TrainConfig

__all__ = ["save_checkpoint", "load_checkpoint", "config_of", "plain_config", "resolve_checkpoint"]

FORMAT = "avatarfit-checkpoint-1"


def plain_config(config: TrainConfig) -> dict[str, Any]:
    """Nested plain mapping of the config (tuples as lists)."""
    import dataclasses

    def conv(v):
        if dataclasses.is_dataclass(v):
            return {k: conv(x) for k, x in to_dict(v).items()}
        if isinstance(v, dict):
            return {k: conv(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [conv(x) for x in v]
        return v

    return {f.name: conv(getattr(config, f.name)) for f in dataclasses.fields(config)}


def save_checkpoint(path: str | os.PathLike, *, config: TrainConfig, num_verts: int, step: int,
                    model: dict, optimizer: dict | None, state: dict[str, Any]) -> None:
    """Write a checkpoint atomically (temporary name, then rename)."""
    payload = {"format": FORMAT, "config": plain_config(config), "num_verts": num_verts, "step": step,
               "model": model, "optimizer": optimizer, "state": state}
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def resolve_checkpoint(path: str | os.PathLike) -> Path:
    """A checkpoint file, or a run folder's ``best.pt`` (else ``last.pt``)."""
    path = Path(path)
    if path.is_dir():
        for name in ("best.pt", "last.pt"):
            if (path / name).is_file():
                return path / name
        raise FormatError(path, "run folder holds no best.pt or last.pt")
    if not path.is_file():
        raise FormatError(path, "checkpoint not found")
    return path


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint (or a run folder's best one); ``FormatError`` names the file."""
    path = resolve_checkpoint(path)
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises many kinds on a bad file
        raise FormatError(path, f"not a readable checkpoint ({type(exc).__name__}: {exc})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise FormatError(path, f"not an avatarfit checkpoint (expected format {FORMAT!r})")
    return payload


def config_of(payload: dict[str, Any]) -> TrainConfig:
    """The resolved config stored in a checkpoint."""
    return from_dict(TrainConfig, payload["config"], where="checkpoint config")
