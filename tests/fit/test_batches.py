"""How a fit job cuts frames into batches, and how a sequence job's outputs come back in
the frames' order."""

import numpy as np

from avatarfit.data.capture import FrameRef
from avatarfit.fit.batches import units
from avatarfit.fit.parts import in_sequence_order


def test_sequence_batches_hold_several_segments_and_keep_each_in_order():
    refs = [FrameRef("A", f"{i:06d}") for i in range(5)] + [FrameRef("B", f"{i:06d}") for i in range(3)] + \
        [FrameRef("C", f"{i:06d}") for i in range(2)]
    names = [[f"{r.segment}{int(r.frame)}" for r in unit] for unit in units(refs, 2, True)]
    # up to 2 segments per batch, their next 2 frames each, track-major
    assert names == [["A0", "A1", "B0", "B1"], ["A2", "A3", "B2"], ["A4"], ["C0", "C1"]]
    # a segment whose frames change group (ground truth or not) continues in a later wave
    group = {"A": lambda r: int(r.frame) >= 3, "B": lambda r: False, "C": lambda r: False}
    grouped = units(refs, 2, True, group=lambda r: group[r.segment](r))
    names = [[f"{r.segment}{int(r.frame)}" for r in unit] for unit in grouped]
    assert names == [["A0", "A1", "B0", "B1"], ["A2", "B2"], ["C0", "C1"], ["A3", "A4"]]
    assert [f"{r.segment}{int(r.frame)}" for unit in units(refs, 3, False) for r in unit] == \
        [f"{r.segment}{int(r.frame)}" for r in refs]
    # fits.npz lists a sequence job's frames segment by segment, whatever the batches
    merged = {"names": np.array(["A/000000", "B/000000", "A/000001"]), "z": np.arange(3.0)[:, None],
              "objective": np.array([[0.0, 1.0, 2.0]]), "seed": np.array(7)}
    ordered = in_sequence_order(merged, [FrameRef("A", "000000"), FrameRef("A", "000001"), FrameRef("B", "000000")])
    assert ordered["names"].tolist() == ["A/000000", "A/000001", "B/000000"]
    assert ordered["z"][:, 0].tolist() == [0.0, 2.0, 1.0] and ordered["objective"].tolist() == [[0.0, 2.0, 1.0]]
