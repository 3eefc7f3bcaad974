import pytest
import torch

from avatarfit.data import SurfacePoints, read_surface_points, write_surface_points
from avatarfit.errors import FormatError


def test_round_trip(tmp_path):
    pts = SurfacePoints(torch.tensor([3, 0, 7]), torch.tensor([[1.0, 0, 0], [0.2, 0.3, 0.5], [1 / 3, 1 / 3, 1 / 3]]))
    path = tmp_path / "p.txt"
    write_surface_points(path, pts)
    back = read_surface_points(path, count=3, num_faces=8)
    assert torch.equal(back.faces, pts.faces)
    torch.testing.assert_close(back.bary, pts.bary)


@pytest.mark.parametrize(
    "text, message",
    [
        ("1 0.5 0.5\n", r"line 1: expected 4 values"),
        ("x 0.5 0.5 0\n", r"line 1: expected an integer face index"),
        ("0 1 0 0\n9 1 0 0\n", r"line 2: face index 9 is outside the mesh's faces \(0..7\)"),
        ("0 0.5 0.6 0\n", r"line 1: expected non-negative barycentric weights summing to 1"),
        ("0 1 0 0\n", r"expected 2 points, found 1"),
    ],
)
def test_errors_name_file_and_line(tmp_path, text, message):
    path = tmp_path / "landmarks.txt"
    path.write_text(text)
    with pytest.raises(FormatError, match=message):
        read_surface_points(path, count=2, num_faces=8)
