"""Choose frames of a capture from a short text spec (``--frames`` on the command line)."""

from __future__ import annotations

from .capture import Capture, FrameRef
from .splits import SPLIT_WORDS, check_segment_names, refuse_split_names

__all__ = ["select_frames", "select_refs"]


def select_frames(capture: Capture, spec: str | None, argument: str = "--frames") -> list[FrameRef]:
    """Frames picked by ``spec``, in frame-list order, without repeats.

    ``spec`` is a comma-separated list whose items are positions in ``frame_list.txt``
    (0-based): ``N``, or ``A:B`` (B excluded; either end may be left out); or a segment
    name (all its frames). ``None`` or ``""`` selects every frame.

    Raises:
        ValueError: naming ``argument``, the item and the capture's frame count when an
            item is malformed or outside the capture.
    """
    check_segment_names(capture)  # named with the frame list's remedy; select_refs finds nothing more
    return select_refs(capture.frames(), spec, argument, "the capture", str(capture.layout.frame_list))


def select_refs(frames: list[FrameRef], spec: str | None, argument: str = "--frames", source: str = "the list",
                where: str = "the frames") -> list[FrameRef]:
    """:func:`select_frames` over a list of frames (positions in ``frames``); errors call
    them ``source``'s frames, listed in ``where``."""
    n = len(frames)
    segments = list(dict.fromkeys(f.segment for f in frames))
    refuse_split_names(segments, where)
    if not spec:
        return list(frames)
    picked: set[int] = set()
    for item in (s.strip() for s in spec.split(",")):
        if not item:
            continue
        if item in SPLIT_WORDS:
            raise ValueError(f"{argument}: {item!r} names a split of a trained avatar's frames, which needs the run "
                             "(avatarfit fit --frames test); here give positions or segment names")
        if item in segments:
            picked.update(i for i, f in enumerate(frames) if f.segment == item)
            continue
        try:
            if ":" in item:
                a, b = item.split(":", 1)
                start = int(a) if a.strip() else 0
                stop = int(b) if b.strip() else n
            else:
                start = int(item)
                stop = start + 1
        except ValueError:
            raise ValueError(f"{argument}: expected positions N or A:B, or a segment name, found {item!r} "
                             f"(segments: {segments})") from None
        if not (0 <= start < stop <= n):
            raise ValueError(f"{argument}: {item!r} is outside {source}'s {n} frames "
                             f"(positions 0..{n - 1} of {where})")
        picked.update(range(start, stop))
    if not picked:
        raise ValueError(f"{argument}: {spec!r} selects no frame")
    return [frames[i] for i in sorted(picked)]
