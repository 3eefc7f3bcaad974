"""Choose frames of a capture from a short text spec (``--frames`` on the command line)."""

from __future__ import annotations

from .capture import Capture, FrameRef

__all__ = ["select_frames"]


def select_frames(capture: Capture, spec: str | None, argument: str = "--frames") -> list[FrameRef]:
    """Frames picked by ``spec``, in frame-list order, without repeats.

    ``spec`` is a comma-separated list whose items are positions in ``frame_list.txt``
    (0-based): ``N``, or ``A:B`` (B excluded; either end may be left out); or a segment
    name (all its frames). ``None`` or ``""`` selects every frame.

    Raises:
        ValueError: naming ``argument``, the item and the capture's frame count when an
            item is malformed or outside the capture.
    """
    frames = capture.frames()
    n = len(frames)
    if not spec:
        return frames
    picked: set[int] = set()
    for item in (s.strip() for s in spec.split(",")):
        if not item:
            continue
        if item in capture.segments:
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
                             f"(segments: {capture.segments})") from None
        if not (0 <= start < stop <= n):
            raise ValueError(f"{argument}: {item!r} is outside the capture's {n} frames "
                             f"(positions 0..{n - 1} of {capture.layout.frame_list})")
        picked.update(range(start, stop))
    if not picked:
        raise ValueError(f"{argument}: {spec!r} selects no frame")
    return [frames[i] for i in sorted(picked)]
