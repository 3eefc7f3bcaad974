import numpy as np
import pytest
import torch
from PIL import Image

from avatarfit.data import Capture
from avatarfit.errors import FormatError
from avatarfit.eval.reproject import render_capture_view
from tests.conftest import CAM_K, HEAD_R, HEAD_T, IMAGE_HW, QUAD_V, TEX, COLORS


def test_handmade_capture_loads(handmade_capture):
    cap = Capture(handmade_capture)
    assert cap.segments == ["E001_Neutral"]
    assert [f.frame for f in cap.frames()] == ["000007"]
    assert cap.camera_names == ["400029"]
    assert cap.image_size("400029") == IMAGE_HW
    assert cap.texture_size == TEX
    v = cap.vertices("E001_Neutral", "000007")
    assert v.shape == (4, 3) and v.dtype == torch.float32
    R, t = cap.head_pose("E001_Neutral", "000007")
    np.testing.assert_allclose(R.numpy(), HEAD_R, atol=1e-6)
    np.testing.assert_allclose(t.numpy(), HEAD_T, atol=1e-6)
    np.testing.assert_allclose(cap.world_vertices("E001_Neutral", "000007").numpy(), QUAD_V, atol=1e-4)
    top = cap.topology
    assert top.faces.tolist() == [[0, 1, 2], [0, 2, 3]] and top.num_verts == 4
    tex = cap.texture("E001_Neutral", "000007")
    assert tex.shape == (3, TEX, TEX)
    assert tex[:, 0, 0].tolist() == [1.0, 0.0, 0.0]  # row 0 = top of the image = red quadrant
    stats = cap.stats
    assert stats.tex_std == pytest.approx(10.0 / 255.0) and stats.vert_std == pytest.approx(2.0)
    view = cap.view_vector("E001_Neutral", "000007", "400029")
    center = np.array([0.0, 0.0, -500.0])
    expected = HEAD_R.T @ (center - HEAD_T)
    np.testing.assert_allclose(view.numpy(), expected / np.linalg.norm(expected), atol=1e-5)
    cap.validate()


def _project(world):
    p = CAM_K @ (world + np.array([0.0, 0.0, 500.0]))
    return p[:2] / p[2]


@pytest.mark.parametrize("backend", ["bbox", "pytorch3d"])
def test_handmade_capture_renders_where_the_math_says(handmade_capture, backend):
    cap = Capture(handmade_capture)
    out = render_capture_view(cap, "E001_Neutral", "000007", "400029", backend=backend, background=0.5)
    img = out.image[0]
    # uv (0.25, 0.75) is the texture's top-left (red) quadrant: world point (-15, 10, 0).
    for (x, y), name in [((-15, 10), "tl"), ((15, 10), "tr"), ((-15, -10), "bl"), ((15, -10), "br")]:
        u, v = _project(np.array([x, y, 0.0]))
        color = img[:, int(v), int(u)]
        assert color.tolist() == pytest.approx([c / 255 for c in COLORS[name]], abs=1e-3), name
    # Outside the quad: background.
    u, v = _project(np.array([40.0, 0.0, 0.0]))
    assert img[:, int(v), int(u)].tolist() == pytest.approx([0.5] * 3)
    assert out.mask.sum() > 0


def _seg(cap_dir):
    return cap_dir / "tracked_mesh" / "E001_Neutral"


def test_bin_of_wrong_length(handmade_capture):
    (_seg(handmade_capture) / "000007.bin").write_bytes(b"\0" * 40)
    cap = Capture(handmade_capture)
    with pytest.raises(FormatError, match=r"000007.bin: expected 48 bytes \(4 vertices x 3 float32\), found 40 bytes"):
        cap.vertices("E001_Neutral", "000007")


def test_frame_listed_but_missing(handmade_capture):
    with open(handmade_capture / "frame_list.txt", "a") as f:
        f.write("E001_Neutral 000008\n")
    cap = Capture(handmade_capture)
    with pytest.raises(FormatError, match=r"000008.bin: missing, though frame E001_Neutral 000008 is listed in .*line 2"):
        cap.vertices("E001_Neutral", "000008")
    with pytest.raises(FormatError, match="missing"):
        cap.validate()


def test_texture_of_wrong_size(handmade_capture):
    path = handmade_capture / "unwrapped_uv_1024" / "E001_Neutral" / "average" / "000007.png"
    Image.fromarray(np.zeros((16, 16, 3), dtype=np.uint8)).save(path)
    with pytest.raises(FormatError, match=r"expected a 32x32 texture \(as tex_mean.png\), found 16x16"):
        Capture(handmade_capture).texture("E001_Neutral", "000007")


def test_obj_face_out_of_range(handmade_capture):
    path = _seg(handmade_capture) / "000007.obj"
    path.write_text(path.read_text() + "f 1/1 2/2 7/3\n")
    with pytest.raises(FormatError, match=r"000007.obj, line \d+: face: vertex index 7 out of range"):
        Capture(handmade_capture).topology


def test_bad_frame_list_and_unknown_names(handmade_capture):
    cap = Capture(handmade_capture)
    with pytest.raises(ValueError, match="camera: '999' is not in"):
        cap.photo("E001_Neutral", "000007", "999")
    with pytest.raises(ValueError, match="frame: E001_Neutral 000001 is not listed"):
        cap.vertices("E001_Neutral", "000001")
    (handmade_capture / "frame_list.txt").write_text("E001_Neutral 000007\nonly_one_token\n")
    with pytest.raises(FormatError, match=r"frame_list.txt, line 2: expected 'SEGMENT FRAME'"):
        Capture(handmade_capture)


def test_missing_folder(tmp_path):
    with pytest.raises(FormatError, match="capture folder not found"):
        Capture(tmp_path / "nope")


def test_scaled_head_pose_is_refused(handmade_capture):
    path = _seg(handmade_capture) / "000007_transform.txt"
    rows = [line.split() for line in path.read_text().splitlines() if line.strip()]
    scaled = [[str(2 * float(v)) if j < 3 else v for j, v in enumerate(row)] for row in rows]
    path.write_text("\n".join(" ".join(r) for r in scaled) + "\n")
    cap = Capture(handmade_capture)
    with pytest.raises(FormatError, match=r"000007_transform.txt, line 1: head pose rotation: expected a rotation.*"
                                          r"row norms 2, 2, 2"):
        cap.head_pose("E001_Neutral", "000007")
