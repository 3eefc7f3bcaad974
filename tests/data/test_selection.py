import pytest

from avatarfit.data import Capture
from avatarfit.data.selection import select_frames


def test_specs(tiny_capture):
    cap = Capture(tiny_capture)
    frames = cap.frames()
    assert select_frames(cap, None) == frames
    assert select_frames(cap, "1") == frames[1:2]
    assert select_frames(cap, "1:") == frames[1:]
    assert select_frames(cap, ":2,2") == frames
    assert select_frames(cap, cap.segments[0]) == frames


@pytest.mark.parametrize("spec, message", [("3", "outside the capture's 3 frames"), ("a:b", "expected positions"),
                                           ("2:1", "outside"), (",", "selects no frame")])
def test_bad_specs(tiny_capture, spec, message):
    with pytest.raises(ValueError, match=message):
        select_frames(Capture(tiny_capture), spec)
