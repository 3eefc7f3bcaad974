import dataclasses

import pytest
import torch

from avatarfit.data import Capture
from avatarfit.eval.reproject import compare_view
from avatarfit.synth.dome import FRONTAL_CAMERA, make_dome
from avatarfit.synth.generate import SynthConfig, generate_capture
from tests.conftest import TINY


def test_tiny_capture_is_valid(tiny_capture):
    cap = Capture(tiny_capture)
    cap.validate()
    assert len(cap.frames()) == 3 and len(cap.cameras) == 4
    assert cap.image_size(FRONTAL_CAMERA) == TINY.image_size
    assert cap.texture_size == TINY.texture_size
    ref = cap.frames()[0]
    tex = cap.texture(ref.segment, ref.frame, FRONTAL_CAMERA)
    assert 0.05 < (tex.sum(0) == 0).float().mean() < 0.95  # unseen texels are 0, seen ones are not


def test_rendering_reproduces_the_photos(tiny_capture):
    cap = Capture(tiny_capture)
    for ref in cap.frames():
        cmp = compare_view(cap, ref.segment, ref.frame, FRONTAL_CAMERA, background=TINY.background)
        assert cmp.psnr >= 35.0
        assert cmp.psnr_face >= 30.0


def test_same_seed_same_bytes(tmp_path, tiny_capture):
    out = generate_capture(tmp_path / "again", TINY, progress=False)
    for rel in ["KRT", "frame_list.txt", "tex_var.txt", "vert_mean.bin"]:
        assert (out / rel).read_bytes() == (tiny_capture / rel).read_bytes(), rel
    cap = Capture(out)
    ref = cap.frames()[-1]
    for path in [cap.layout.image(ref.segment, FRONTAL_CAMERA, ref.frame), cap.layout.mesh_bin(ref.segment, ref.frame),
                 cap.layout.texture(ref.segment, "average", ref.frame)]:
        assert path.read_bytes() == (tiny_capture / path.relative_to(out)).read_bytes()


def test_other_seed_differs(tmp_path, tiny_capture):
    out = generate_capture(tmp_path / "other", dataclasses.replace(TINY, seed=4, frames=1), progress=False)
    a = Capture(out)
    b = Capture(tiny_capture)
    assert not torch.equal(a.vertices(*_first(a)), b.vertices(*_first(b)))


def _first(cap):
    ref = cap.frames()[0]
    return ref.segment, ref.frame


def test_refuses_non_empty_output_unless_overwrite(tmp_path):
    out = tmp_path / "cap"
    out.mkdir()
    keep = out / "notes.txt"
    keep.write_text("mine")
    cfg = dataclasses.replace(TINY, frames=1, cameras=1)
    with pytest.raises(FileExistsError, match="not empty; pass --overwrite"):
        generate_capture(out, cfg, progress=False)
    generate_capture(out, cfg, overwrite=True, progress=False)
    assert keep.read_text() == "mine"
    Capture(out).validate()


def test_dome_cameras_look_at_the_head():
    cams = make_dome(9, (120, 80))
    assert cams[0].name == FRONTAL_CAMERA and len({c.name for c in cams}) == 9
    for cam in cams:
        p = cam.K @ (cam.R @ torch.zeros(3).numpy() + cam.t)
        assert abs(p[0] / p[2] - 40) < 1e-6 and abs(p[1] / p[2] - 60) < 1e-6
    assert abs(cams[0].center[0]) < 1e-9 and cams[0].center[2] > 0


def test_config_validation():
    with pytest.raises(ValueError, match="subject: expected one of"):
        SynthConfig(subject="bob")
    with pytest.raises(ValueError, match="frames: expected at least 1"):
        SynthConfig(frames=0)
