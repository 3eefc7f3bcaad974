import json

import numpy as np
import pytest
import torch

from avatarfit.synth import CONTROLS
from avatarfit.synth.james import read_ljson_landmarks
from avatarfit.synth.procedural import make_procedural_subject
from avatarfit.synth.rig import landmark_groups


@pytest.fixture(scope="module")
def subject():
    return make_procedural_subject(seed=1, texture_size=128)


def test_shapes_and_landmarks(subject):
    V = subject.verts.shape[0]
    assert subject.faces.max() < V and subject.faces_uvs.max() < subject.verts_uvs.shape[0]
    assert subject.texture.shape == (3, 128, 128)
    assert subject.landmark_faces.shape == (68,) and subject.landmark_bary.shape == (68, 3)
    assert torch.allclose(subject.landmark_bary.sum(-1), torch.ones(68), atol=1e-5)
    g = landmark_groups(subject.landmarks(subject.verts[None])[0])
    assert g["eye_left"][0] > 0 > g["eye_right"][0]  # +x is the subject's left
    assert g["eye_left"][1] > g["nose_tip"][1] > g["mouth"][1] > g["chin"][1]  # +y up
    assert g["nose_tip"][2] > g["eye_left"][2]  # +z out of the face


def test_identity_is_seeded():
    a = make_procedural_subject(seed=2, texture_size=64)
    b = make_procedural_subject(seed=2, texture_size=64)
    c = make_procedural_subject(seed=3, texture_size=64)
    assert torch.equal(a.verts, b.verts) and torch.equal(a.texture, b.texture)
    assert not torch.allclose(a.verts, c.verts)


@pytest.mark.parametrize("k,name", list(enumerate(CONTROLS)))
def test_every_control_moves_geometry_and_texture(subject, k, name):
    c = torch.zeros(2, len(CONTROLS))
    c[1, k] = 1.0
    verts, tex = subject.pose(c)
    moved = (verts[1] - verts[0]).norm(dim=-1)
    assert moved.max() > 2.0, name  # mm
    assert (tex[1] - tex[0]).abs().max() > 0.05, name


def test_sided_controls_act_on_their_side(subject):
    c = torch.zeros(3, len(CONTROLS))
    c[1, CONTROLS.index("smile_left")] = 1
    c[2, CONTROLS.index("blink_right")] = 1
    verts, _ = subject.pose(c)
    moved_left = (verts[1] - verts[0]).norm(dim=-1)
    assert subject.verts[moved_left.argmax(), 0] > 0
    moved_right = (verts[2] - verts[0]).norm(dim=-1)
    assert subject.verts[moved_right.argmax(), 0] < 0


def test_jaw_open_opens_a_mouth_interior(subject):
    c = torch.zeros(2, len(CONTROLS))
    c[1, CONTROLS.index("jaw_open")] = 1
    verts, _ = subject.pose(c)
    lm = subject.landmarks(verts)
    gap = lm[:, 62, 1] - lm[:, 66, 1]  # inner upper lip minus inner lower lip (y up)
    assert gap[0] < 5 and gap[1] > 15


def test_pose_rejects_wrong_control_count(subject):
    with pytest.raises(ValueError, match=r"controls: expected shape \(B, 8\)"):
        subject.pose(torch.zeros(1, 3))


def test_menpo_landmarks_are_put_in_ibug_order(tmp_path):
    rng = np.random.default_rng(0)
    pts = rng.standard_normal((68, 3))
    groups = {"chin": range(0, 17), "leye": range(17, 23), "reye": range(23, 29), "leyebrow": range(29, 34),
              "nose": range(34, 43), "reyebrow": range(43, 48), "mouth": range(48, 68)}
    pts[list(groups["leye"]), 0] = 30  # the file's 'leye' is on +x: the subject's left
    pts[list(groups["reye"]), 0] = -30
    pts[list(groups["leyebrow"]), 0] = 25
    pts[list(groups["reyebrow"]), 0] = -25
    data = {"groups": {"LJSON": {"landmarks": {"points": pts.tolist(), "connectivity": []},
                                  "labels": [{"label": k, "mask": list(v)} for k, v in groups.items()]}}}
    path = tmp_path / "x.ljson"
    path.write_text(json.dumps(data))
    out = read_ljson_landmarks(path)
    assert (out[17:22, 0] == -25).all() and (out[22:27, 0] == 25).all()
    assert (out[36:42, 0] == -30).all() and (out[42:48, 0] == 30).all()
    np.testing.assert_array_equal(out[48:], pts[48:])
    path.write_text("{}")
    from avatarfit.errors import FormatError

    with pytest.raises(FormatError, match="not a menpo LJSON"):
        read_ljson_landmarks(path)
