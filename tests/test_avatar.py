"""The Avatar: decoding, rendering in any cameras, keypoints, the avatar file."""

import pytest
import torch

from avatarfit.avatar import AVATAR_FILE, Avatar
from avatarfit.data import Capture
from avatarfit.errors import FormatError
from avatarfit.models import build_model
from avatarfit.render import render_textured
from avatarfit.synth.hmc import SyntheticHmc
from avatarfit.train.data import TrainingData
from avatarfit.train.export import export_avatar
from tests.train.conftest import tiny_config


def _pinned_avatar(cap: Capture, ref):
    """An untrained avatar whose decoder outputs exactly ``ref``'s tracked mesh and texture."""
    config = tiny_config("lip_flow", "kpt")
    torch.manual_seed(0)
    model = build_model(config.model, cap.topology.num_verts)
    data = TrainingData(cap, config, True)
    avatar = data.avatar(model).eval()
    frame = data.frame(ref)
    with torch.no_grad():
        geo = model.decoder.geometry[-1]
        geo.weight.zero_()
        geo.bias.copy_(frame.verts.flatten())
        last = model.decoder.texture[-1]
        last.weight.zero_()
        last.bias.zero_()
    return avatar, data, frame


def test_decoded_mesh_renders_and_projects_where_the_capture_says(tiny_capture):
    cap = Capture(tiny_capture)
    ref = cap.frames()[1]
    avatar, data, frame = _pinned_avatar(cap, ref)
    z = torch.randn(1, avatar.latent_size)
    verts, tex = avatar.decode(z, torch.tensor([[0.0, 0.0, 1.0]]))
    torch.testing.assert_close(verts[0], cap.vertices(ref.segment, ref.frame), atol=1e-3, rtol=0)
    # In a capture camera, with the head pose: the tracked mesh's mask.
    cam = cap.frontal_camera()
    K, R, t = (x[None] for x in cap.camera_tensors(cam))
    hR, ht = (x[None] for x in cap.head_pose(ref.segment, ref.frame))
    size = cap.image_size(cam)
    out = avatar.render(z, K, R, t, size, hR, ht)
    top = cap.topology
    truth = render_textured(cap.world_vertices(ref.segment, ref.frame)[None], top.faces, top.verts_uvs, top.faces_uvs,
                            tex, K, R, t, size, backend="bbox")
    assert out.image.shape == (1, 1, 3, *size)
    assert float((out.mask[:, 0] != truth.mask).float().mean()) < 1e-3
    # The mask of the tracked mesh is the face mask training scores.
    cover = avatar.mesh_mask(cap.vertices(ref.segment, ref.frame)[None], K, R, t, size, hR, ht)
    assert cover.shape == (1, 1, *size) and 0 < float(cover.mean()) < 1
    assert torch.equal(cover[0], data.view(ref, cam)[1])
    with pytest.raises(ValueError, match="verts: expected shape"):
        avatar.mesh_mask(cap.vertices(ref.segment, ref.frame)[None, :10], K, R, t, size, hR, ht)
    # The view vector it derives is the capture's.
    torch.testing.assert_close(avatar.view_vectors(R[:, None], t[:, None], hR, ht)[0, 0],
                               cap.view_vector(ref.segment, ref.frame, cam), atol=1e-5, rtol=0)
    # Keypoints: where the HMC tool put them for this frame.
    hmc = SyntheticHmc(cap, data.config.data.hmc)
    assert torch.equal(hmc.keypoint_points.faces, avatar.kp_faces)
    xy, vis = hmc.keypoints(ref.segment, ref.frame)
    kp = avatar.keypoints(z, K, R, t, size, hR, ht)[0]
    assert float((kp.detach() - xy)[vis].norm(dim=-1).max()) < 0.05


def test_render_views_is_frames_by_cameras_and_head_frame_cameras_need_no_pose(tiny_capture):
    cap = Capture(tiny_capture)
    avatar, _, _ = _pinned_avatar(cap, cap.frames()[0])
    hmc = SyntheticHmc(cap, tiny_config("lip_flow").data.hmc)
    s0, s1 = hmc[0], hmc[1]
    z = torch.randn(2, avatar.latent_size)
    size = tuple(s0.views.shape[-2:])
    K, R, t = (torch.stack([a, b]) for a, b in ((s0.K, s1.K), (s0.R, s1.R), (s0.t, s1.t)))
    both = avatar.render_views(z, K, R, t, size)
    assert both.image.shape == (2, 3, 3, *size) and both.mask.shape == (2, 3, 1, *size)
    one = avatar.render_views(z[1:], K[1:, 2:], R[1:, 2:], t[1:, 2:], size)
    torch.testing.assert_close(both.image[1, 2], one.image[0, 0], atol=1e-6, rtol=0)
    # One grey channel rendered directly equals the colour rendering converted (both linear).
    w = torch.tensor([0.6, 0.3, 0.1])
    grey = avatar.render_views(z, K, R, t, size, channel_weights=w)
    assert grey.image.shape == (2, 3, 1, *size)
    converted = (both.image * w.view(3, 1, 1)).sum(2, keepdim=True) / w.sum()
    torch.testing.assert_close(grey.image * grey.mask, converted * both.mask, atol=1e-5, rtol=0)
    # The pinned mesh covers what the HMC tool's mask says it covers (the antialiased
    # the mask is above one half exactly where a pixel's centre is covered, at straight edges).
    agree = ((both.mask[0] > 0.5).float() == s0.masks).float().mean()
    assert float(agree) > 0.995
    with pytest.raises(ValueError, match=r"K: expected shape \(2, C, 3, 3\)"):
        avatar.render_views(z, K[0], R, t, size)


def test_training_writes_a_self_contained_avatar(dam_run, tiny_capture, tmp_path):
    avatar = Avatar.load(dam_run)
    assert avatar.variant == "dam" and not avatar.training and avatar.keypoint_points is not None
    assert avatar.info["step"] >= 1 and "capture" in avatar.info
    # The same decoding as the run's best checkpoint (export_avatar rebuilds it from best.pt + capture).
    rebuilt, path = export_avatar(dam_run, tiny_capture, tmp_path / "again.pt")
    z, view = torch.randn(2, avatar.latent_size), torch.nn.functional.normalize(torch.randn(2, 3), dim=-1)
    with torch.no_grad():
        for a, b in zip(avatar.decode(z, view), rebuilt.decode(z, view)):
            torch.testing.assert_close(a, b)
    # Round trip of the file.
    again = Avatar.load(path)
    with torch.no_grad():
        torch.testing.assert_close(again.decode(z, view)[1], avatar.decode(z, view)[1])


def test_load_errors_name_what_is_missing(dam_run, tmp_path):
    old = tmp_path / "old_run"
    old.mkdir()
    (old / "best.pt").write_bytes((dam_run / "best.pt").read_bytes())
    with pytest.raises(FormatError, match=rf"old_run: no {AVATAR_FILE} in this folder \(a run from before avatar files: "
                                          r"write one with `avatarfit export-avatar"):
        Avatar.load(old)
    with pytest.raises(FormatError, match=r"best.pt: not an avatar file \(expected format 'avatarfit-avatar-1', "
                                          r"found 'avatarfit-checkpoint-1'\)"):
        Avatar.load(old / "best.pt")
    with pytest.raises(FormatError, match=r"empty: no avatar.pt in this folder \(not a run folder"):
        (tmp_path / "empty").mkdir()
        Avatar.load(tmp_path / "empty")
    (tmp_path / "junk.pt").write_bytes(b"not a pickle")
    with pytest.raises(FormatError, match=r"junk.pt: not a readable avatar file"):
        Avatar.load(tmp_path / "junk.pt")


@pytest.mark.parametrize("field,value,message", [
    ("info", ["a", "list"], r"field 'info': expected a mapping, found list"),
    ("stats", 3.0, r"field 'stats': expected a mapping, found float"),
    ("model_config", "dam", r"field 'model_config': expected a mapping, found str"),
    ("num_verts", "many", r"incomplete or inconsistent \(ValueError"),
    ("background", [0.1], r"incomplete or inconsistent \(TypeError"),
])
def test_an_avatar_file_with_fields_of_the_wrong_type_is_named(dam_run, tmp_path, field, value, message):
    payload = torch.load(dam_run / AVATAR_FILE, weights_only=True)
    payload[field] = value
    path = tmp_path / "bad.pt"
    torch.save(payload, path)
    with pytest.raises(FormatError, match=rf"bad.pt: .*{message}"):
        Avatar.load(path)
