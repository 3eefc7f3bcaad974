"""Device names (``--device``): checked before any work, resolved against what PyTorch sees."""

from __future__ import annotations

import torch

__all__ = ["check_device_name", "resolve_device"]


def check_device_name(name: str) -> None:
    """Raise ``ValueError`` unless ``name`` is ``auto``, ``cpu``, ``cuda`` or ``cuda:N``."""
    kind, colon, index = name.partition(":")
    if not (name in ("auto", "cpu", "cuda") or (kind == "cuda" and colon and index.isdigit())):
        raise ValueError(f"device: expected auto, cpu, cuda or cuda:N (N a GPU number), got {name!r}")


def resolve_device(name: str) -> torch.device:
    """``auto`` (CUDA when PyTorch sees it, else CPU), ``cpu``, ``cuda`` or ``cuda:N``;
    asking for CUDA without a CUDA device raises ``ValueError``."""
    check_device_name(name)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    kind, _, index = name.partition(":")
    if kind == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device: {name} asked for, but PyTorch sees no CUDA device")
        count = torch.cuda.device_count()
        if index and int(index) >= count:
            raise ValueError(f"device: {name} asked for, but PyTorch sees {count} CUDA device(s): "
                             f"cuda:0 to cuda:{count - 1}")
    return torch.device(name)
