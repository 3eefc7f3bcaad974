import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from avatarfit.data.obj import read_obj, write_obj
from avatarfit.errors import FormatError


def test_read_positions_uvs_and_separate_indices(tmp_path):
    path = tmp_path / "m.obj"
    path.write_text(
        "# comment\nv 0 0 0\nv 1 0 0\nv 1 1 0 0.5 0.5 0.5\nv 0 1 0\n"
        "vt 0 0\nvt 1 0\nvt 1 1\nvt 0 1\nvt 0.5 0.5\n"
        "vn 0 0 1\nf 1/1/1 2/2/1 3/3/1\nf 1/5 3/3 4/4\n"
    )
    m = read_obj(path)
    assert m.verts.shape == (4, 3) and m.verts_uvs.shape == (5, 2)
    np.testing.assert_array_equal(m.faces, [[0, 1, 2], [0, 2, 3]])
    np.testing.assert_array_equal(m.faces_uvs, [[0, 1, 2], [4, 2, 3]])


def test_quads_are_fan_triangulated_and_negative_indices(tmp_path):
    path = tmp_path / "m.obj"
    path.write_text("v 0 0 0\nv 1 0 0\nv 1 1 0\nv 0 1 0\nf -4 -3 -2 -1\n")
    m = read_obj(path)
    np.testing.assert_array_equal(m.faces, [[0, 1, 2], [0, 2, 3]])
    assert m.verts_uvs is None


def test_index_out_of_range_names_line(tmp_path):
    path = tmp_path / "m.obj"
    path.write_text("v 0 0 0\nv 1 0 0\nv 1 1 0\nf 1 2 3\nf 1 2 9\n")
    with pytest.raises(FormatError, match=r"m.obj, line 5: face: vertex index 9 out of range \(the file defines 3"):
        read_obj(path)


def test_mixed_uv_corners_rejected(tmp_path):
    path = tmp_path / "m.obj"
    path.write_text("v 0 0 0\nv 1 0 0\nv 1 1 0\nvt 0 0\nf 1/1 2 3\n")
    with pytest.raises(FormatError, match="line 5: faces mix"):
        read_obj(path)


def test_round_trip(tmp_path):
    rng = np.random.default_rng(1)
    v = rng.standard_normal((10, 3)).astype(np.float32)
    uv = rng.random((12, 2)).astype(np.float32)
    f = rng.integers(0, 10, (7, 3))
    fuv = rng.integers(0, 12, (7, 3))
    write_obj(tmp_path / "m.obj", v, f, uv, fuv)
    m = read_obj(tmp_path / "m.obj")
    np.testing.assert_allclose(m.verts, v, atol=1e-6)
    np.testing.assert_allclose(m.verts_uvs, uv, atol=1e-6)
    np.testing.assert_array_equal(m.faces, f)
    np.testing.assert_array_equal(m.faces_uvs, fuv)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.sampled_from(["v 0 0 0", "v 1 2", "vt 0.5 0.5", "f 1 2 3", "f 1/1 2/1 3/1", "f 0 1 2",
                                 "f -1 -2 -3", "v a b c", "f 1/x 2 3", "", "# c", "vt 1", "f 1 2"]), max_size=20))
def test_fuzz_only_format_errors(tmp_path_factory, lines):
    path = tmp_path_factory.mktemp("obj") / "m.obj"
    path.write_text("\n".join(lines))
    try:
        m = read_obj(path)
    except FormatError as exc:
        assert str(path) in str(exc)
    else:
        assert m.faces.min() >= 0 and m.faces.max() < len(m.verts)
