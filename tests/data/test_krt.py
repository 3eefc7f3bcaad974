import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from avatarfit.data.krt import CameraCalib, format_krt, read_krt, write_krt
from avatarfit.errors import FormatError


def _cams():
    rng = np.random.default_rng(0)
    return [
        CameraCalib(name=f"40000{i}", K=np.array([[800.0 + i, 0, 320], [0, 810, 240], [0, 0, 1]]),
                    R=np.linalg.qr(rng.standard_normal((3, 3)))[0], t=rng.standard_normal(3) * 100,
                    dist=np.zeros(5))
        for i in range(3)
    ]


def test_round_trip(tmp_path):
    path = tmp_path / "KRT"
    cams = _cams()
    write_krt(path, cams)
    back = read_krt(path)
    assert list(back) == [c.name for c in cams]
    for c in cams:
        np.testing.assert_array_equal(back[c.name].K, c.K)
        np.testing.assert_array_equal(back[c.name].R, c.R)
        np.testing.assert_array_equal(back[c.name].t, c.t)
        np.testing.assert_allclose(back[c.name].center, -c.R.T @ c.t)


def test_missing_line_names_file_and_line(tmp_path):
    lines = format_krt(_cams()[:1]).splitlines()
    del lines[5]  # first row of [R|t]... the block now ends early
    path = tmp_path / "KRT"
    path.write_text("\n".join(lines[:-1]) + "\n")
    with pytest.raises(FormatError, match=r"KRT, line \d+: camera '400000': block ends after 6 of 7 lines") as exc:
        read_krt(path)
    assert exc.value.path == str(path)


def test_non_numeric_value_names_line(tmp_path):
    lines = format_krt(_cams()[:1]).splitlines()
    lines[2] = "0 abc 240"
    path = tmp_path / "KRT"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(FormatError, match=r"line 3: expected a number \(row 2 of K\), found 'abc'"):
        read_krt(path)


def test_duplicate_and_empty(tmp_path):
    path = tmp_path / "KRT"
    path.write_text(format_krt(_cams()[:1]) * 2)
    with pytest.raises(FormatError, match="appears twice"):
        read_krt(path)
    path.write_text("\n\n")
    with pytest.raises(FormatError, match="no camera"):
        read_krt(path)


@settings(max_examples=150, deadline=None)
@given(st.text(alphabet="0123456789 .-e\nabc", max_size=300))
def test_fuzz_only_format_errors(tmp_path_factory, text):
    path = tmp_path_factory.mktemp("krt") / "KRT"
    path.write_text(text)
    try:
        cams = read_krt(path)
    except FormatError as exc:
        assert str(path) in str(exc)
    else:
        for cam in cams.values():
            assert cam.K.shape == (3, 3) and cam.R.shape == (3, 3) and cam.t.shape == (3,)


@settings(max_examples=100, deadline=None)
@given(st.data())
def test_fuzz_mutated_valid_file(tmp_path_factory, data):
    lines = format_krt(_cams()).splitlines()
    i = data.draw(st.integers(0, len(lines) - 1))
    lines[i] = data.draw(st.sampled_from(["", "x", "1 2", "nan 0 0", "1 2 3 4 5 6 7 8"]))
    path = tmp_path_factory.mktemp("krt") / "KRT"
    path.write_text("\n".join(lines) + "\n")
    try:
        read_krt(path)
    except FormatError as exc:
        assert exc.line is None or 1 <= exc.line <= len(lines) + 1


@pytest.mark.parametrize("edit, found", [
    (lambda R: 2.0 * R, "row norms 2, 2, 2"),                      # scaled
    (lambda R: R @ np.diag([1.0, 1.0, -1.0]), "det = -1"),         # reflection
    (lambda R: R + np.array([[0, 0.05, 0], [0, 0, 0], [0, 0, 0]]), "max |R R^T - I|"),  # sheared
])
def test_non_rigid_rotation_is_refused_with_file_and_line(tmp_path, edit, found):
    cams = _cams()
    cams[1] = CameraCalib(cams[1].name, cams[1].K, edit(cams[1].R), cams[1].t)
    path = tmp_path / "KRT"
    write_krt(path, cams)
    # The second block starts on line 10 (9 lines a block); its [R|t] rows are lines 15-17.
    with pytest.raises(FormatError, match=rf"KRT, line 15: camera '400001' \[R\|t\]: expected a rotation.*{re.escape(found)}"):
        read_krt(path)


def test_rotation_written_with_six_digits_is_accepted(tmp_path):
    cams = _cams()
    lines = []
    for c in cams:  # real calibrations carry about 6 significant digits
        lines.append(c.name)
        lines += [" ".join(f"{v:.6g}" for v in row) for row in c.K] + ["0 0 0 0 0"]
        lines += [" ".join(f"{v:.6g}" for v in row) for row in np.concatenate([c.R, c.t[:, None]], 1)] + [""]
    path = tmp_path / "KRT"
    path.write_text("\n".join(lines) + "\n")
    back = read_krt(path)
    np.testing.assert_allclose(back["400000"].R, cams[0].R, atol=1e-5)
