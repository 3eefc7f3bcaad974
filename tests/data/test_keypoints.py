import pytest
import torch

from avatarfit.data import read_keypoints, write_keypoints
from avatarfit.errors import FormatError


def test_round_trip(tmp_path):
    xy = torch.tensor([[1.25, 2.5], [-3.0, 400.125]])
    vis = torch.tensor([True, False])
    path = tmp_path / "000000.txt"
    write_keypoints(path, xy, vis)
    back_xy, back_vis = read_keypoints(path, count=2)
    torch.testing.assert_close(back_xy, xy)
    assert torch.equal(back_vis, vis)


@pytest.mark.parametrize(
    "text, message",
    [("1 2\n", "line 1: expected 3 values"), ("1 2 yes\n", "line 1: expected visibility 0 or 1"),
     ("1 nan 1\n", "line 1: expected a finite number"), ("1 2 1\n", "expected 2 keypoints, found 1")],
)
def test_errors(tmp_path, text, message):
    path = tmp_path / "k.txt"
    path.write_text(text)
    with pytest.raises(FormatError, match=message):
        read_keypoints(path, count=2)
