"""How a fit job cuts its frames into batches (fitted together, one part file each)."""

from __future__ import annotations

from typing import Any, Callable

from ..data.capture import FrameRef

__all__ = ["units"]


def units(refs: list[FrameRef], batch: int, sequence: bool,
          group: Callable[[FrameRef], Any] | None = None) -> list[list[FrameRef]]:
    """Batches of frames. ``group``: a batch holds frames of one value of it only (recorded
    frames with and without ground truth, which is attached to a whole batch or not at all).

    In sequence mode a track is a run of one segment's consecutive frames of one group
    value; a batch holds the next ``batch`` frames of up to ``batch`` tracks, which are
    fitted in lockstep (:func:`~avatarfit.fit.sequence.fit_sequence`), track-major. A
    segment's later tracks (where its group value changes) come in later waves, so every
    segment is fitted in order."""
    if not sequence:
        runs: list[tuple[Any, list[FrameRef]]] = []
        for r in refs:
            key = group(r) if group is not None else None
            if runs and runs[-1][0] == key:
                runs[-1][1].append(r)
            else:
                runs.append((key, [r]))
        return [frames[i:i + batch] for _, frames in runs for i in range(0, len(frames), batch)]
    waves: list[list[tuple[Any, list[FrameRef]]]] = []  # wave w: the w-th track of every segment
    for seg in dict.fromkeys(r.segment for r in refs):
        tracks: list[tuple[Any, list[FrameRef]]] = []
        for r in (r for r in refs if r.segment == seg):
            key = group(r) if group is not None else None
            if tracks and tracks[-1][0] == key:
                tracks[-1][1].append(r)
            else:
                tracks.append((key, [r]))
        for w, track in enumerate(tracks):
            if w == len(waves):
                waves.append([])
            waves[w].append(track)
    units = []
    for wave in waves:
        for key in dict.fromkeys(k for k, _ in wave):
            same = [frames for k, frames in wave if k == key]
            for first in range(0, len(same), batch):
                sets = same[first:first + batch]
                for i in range(0, max(len(f) for f in sets), batch):
                    units.append([r for frames in sets for r in frames[i:i + batch]])
    return units
