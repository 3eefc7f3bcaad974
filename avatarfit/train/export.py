"""An avatar file from a training checkpoint and its capture (runs from before avatar files)."""

from __future__ import annotations

import os
from pathlib import Path

from ..avatar import AVATAR_FILE, Avatar
from ..data.capture import Capture
from ..models.variants import build_model
from .checkpoint import config_of, load_checkpoint, resolve_checkpoint
from .data import TrainingData

__all__ = ["export_avatar"]


def export_avatar(run: str | os.PathLike, capture: Capture | str | os.PathLike,
                  out: str | os.PathLike | None = None) -> tuple[Avatar, Path]:
    """Build the :class:`~avatarfit.avatar.Avatar` of a run's best checkpoint with the
    statistics, topology and keypoints of the capture it was trained on, and save it.

    Args:
        run: run folder (its ``best.pt``, else ``last.pt``) or a checkpoint file.
        capture: the training capture.
        out: the avatar file (default: ``avatar.pt`` beside the checkpoint).

    Returns:
        The avatar (eval mode) and the file written.
    """
    ckpt = resolve_checkpoint(run)
    payload = load_checkpoint(ckpt)
    config = config_of(payload)
    cap = capture if isinstance(capture, Capture) else Capture(capture)
    if cap.topology.num_verts != payload["num_verts"]:
        raise ValueError(f"capture: {cap.root} has {cap.topology.num_verts} vertices, but {ckpt} was trained on "
                         f"{payload['num_verts']}; pass the capture the run was trained on")
    model = build_model(config.model, payload["num_verts"])
    model.load_state_dict(payload["model"])
    data = TrainingData(cap, config, model.conditional)
    avatar = data.avatar(model)
    avatar.info.update(run=str(ckpt.parent), step=int(payload["step"]))
    path = avatar.save(Path(out) if out is not None else ckpt.parent / AVATAR_FILE)
    return avatar.eval(), path
