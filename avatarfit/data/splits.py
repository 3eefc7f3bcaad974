"""A capture's frames in train / validation / test splits, and the split a trained avatar
recorded (``info["splits"]``): what training learns from, what chooses settings and
checkpoints, and what results are reported on."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

from ..errors import FormatError
from .capture import Capture, FrameRef

__all__ = ["SPLITS", "SPLIT_WORDS", "check_segment_names", "frames_of_split", "refuse_split_names", "split_frames",
           "spread"]

#: A trained avatar's frame splits (``info["splits"]``), and the words ``--frames`` reserves
#: for them (``heldout`` is ``test``): no segment may be called so.
SPLITS = ("train", "validation", "test")
SPLIT_WORDS = SPLITS + ("heldout",)


def check_segment_names(capture: Capture) -> None:
    """Refuse a capture with a segment named like a split (``--frames test`` would be ambiguous).

    Raises:
        ValueError: naming the frame list and the segment.
    """
    refuse_split_names(capture.segments, str(capture.layout.frame_list), " (its folders and its frame_list.txt rows)")


def refuse_split_names(segments: Sequence[str], where: str, how: str = "") -> None:
    """Raise ``ValueError`` (naming ``where``) when a segment is named like a split."""
    clash = [s for s in segments if s in SPLIT_WORDS]
    if clash:
        raise ValueError(f"{where}: segment name {clash[0]!r} is reserved for the frame splits "
                         f"({', '.join(SPLIT_WORDS)}); rename the segment{how}")


def split_frames(capture: Capture, validation: float, test: float) -> dict[str, list[FrameRef]]:
    """Each segment's frames in three contiguous blocks, in frame order: training, then
    ``validation`` of them, then ``test`` of them at the end (each at least one frame when
    its fraction is positive).

    The validation block lies between the two others, so that no test frame is next to a
    training frame (consecutive frames of a performance are nearly the same expression:
    a test frame beside a training frame would be an interpolation, not a test).

    Returns:
        ``{"train": [...], "validation": [...], "test": [...]}``.

    Raises:
        ValueError: naming the segment and the fractions, when a segment is too short to
            give every split with a positive fraction a frame and keep one for training.
    """
    check_segment_names(capture)
    out: dict[str, list[FrameRef]] = {name: [] for name in SPLITS}
    for seg in capture.segments:
        frames = capture.frames(seg)
        n_val = 0 if validation <= 0 else max(1, round(len(frames) * validation))
        n_test = 0 if test <= 0 else max(1, round(len(frames) * test))
        n_train = len(frames) - n_val - n_test
        if n_train < 1:
            raise ValueError(f"data.validation = {validation}, data.test = {test}: segment {seg!r} of "
                             f"{capture.layout.frame_list} has {len(frames)} frames, too few for a training, "
                             f"{'a validation, ' if n_val else ''}{'a test ' if n_test else ''}block")
        out["train"] += frames[:n_train]
        out["validation"] += frames[n_train:n_train + n_val]
        out["test"] += frames[n_train + n_val:]
    return out


def frames_of_split(info: Mapping[str, Any], run: str | Path, pool, split: str) -> list[FrameRef]:
    """The frames of a trained avatar's ``split`` (``train``, ``validation`` or ``test``;
    ``heldout`` means ``test``), as its training recorded them in ``info["splits"]``.

    Args:
        info: the avatar's ``info`` (:attr:`~avatarfit.avatar.Avatar.info`).
        run: the run folder or avatar file (named in errors).
        pool: the :class:`~avatarfit.data.capture.Capture`, or a recording of HMC views
            (anything with ``frames()`` and ``layout.hmc_dir``), whose frames are looked up.
        split: the split's name.

    Raises:
        FormatError: an avatar from before the three splits (it recorded none), or frames
            the capture (the recording) does not have (another capture than the one trained on).
        ValueError: an unknown split, or one with no frame.
    """
    if isinstance(pool, Capture):
        check_segment_names(pool)
    split = "test" if split == "heldout" else split
    if split not in SPLITS:
        raise ValueError(f"frames: expected one of {', '.join(SPLIT_WORDS)}, got {split!r}")
    splits = info.get("splits")
    if not isinstance(splits, dict) or not all(isinstance(splits.get(k), list) for k in SPLITS):
        raise FormatError(run, f"--frames {split}: this avatar records no train/validation/test split (it was "
                          "trained before they existed, with one held-out block that chose its checkpoint and "
                          "was also reported on); retrain it with this version (avatarfit train), or give "
                          "--frames explicitly (positions or segment names)")
    names = splits[split]
    if not names:
        raise ValueError(f"--frames {split}: the avatar's training put no frame in its {split} split "
                         f"(data.{split} = 0?); give --frames explicitly")
    known = {f"{r.segment}/{r.frame}": r for r in pool.frames()}
    missing = [n for n in names if n not in known]
    if missing:
        where, what = ((pool.layout.frame_list, "capture") if isinstance(pool, Capture)
                       else (pool.layout.hmc_dir, "recording"))
        raise FormatError(where, f"--frames {split}: {len(missing)} of the avatar's {split} frames are not in this "
                          f"{what} (first: {missing[0]}); fit a {what} of the frames the avatar was trained on, or "
                          "give --frames explicitly")
    return [known[n] for n in names]


def spread(refs: Sequence[FrameRef], count: int) -> list[FrameRef]:
    """``count`` of ``refs`` spread evenly (the first and the last included), in order; all
    of them when there are no more than ``count``."""
    if count >= len(refs):
        return list(refs)
    if count == 1:
        return [refs[0]]
    return [refs[round(k * (len(refs) - 1) / (count - 1))] for k in range(count)]
