import dataclasses
import shutil

import pytest
import torch

from avatarfit._io import read_png
from avatarfit.data import HMC_VIEWS, Capture, Layout, read_keypoints, read_krt, read_surface_points
from avatarfit.data.capture import read_transform
from avatarfit.errors import FormatError
from avatarfit.render.cameras import project_points
from avatarfit.render.mesh_ops import surface_points
from avatarfit.render.renderer import render_textured
from avatarfit.synth.hmc import HmcConfig, SyntheticHmc
from avatarfit.synth.hmc_rig import compose_cameras, read_rig
from avatarfit.synth.hmc_write import write_hmc
from avatarfit.data.ibug import EYES, MOUTH

CLEAN = HmcConfig(augment=False)


def _files(root):
    return {p.relative_to(root): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _inside(uv, size):
    H, W = size
    return (uv[:, 0] >= 0) & (uv[:, 0] < W) & (uv[:, 1] >= 0) & (uv[:, 1] < H) & (uv[:, 2] > 0)


def test_views_show_their_features(tiny_capture):
    hmc = SyntheticHmc(tiny_capture, HmcConfig(seed=5))
    cap = hmc.capture
    lm_def = cap.landmarks
    for ref in cap.frames():
        s = hmc.sample(ref.segment, ref.frame)
        assert s.views.shape == (3, 1, 240, 320) and s.masks.shape == (3, 1, 240, 320)
        verts = cap.vertices(ref.segment, ref.frame)[None]
        lm = surface_points(verts, cap.topology.faces, lm_def.faces, lm_def.bary)[0]
        # The subject's left eye is the one at +x (head-local).
        left, right = (EYES[1], EYES[0]) if lm[EYES[1], 0].mean() > lm[EYES[0], 0].mean() else EYES
        groups = {"left_eye": left, "right_eye": right, "mouth": MOUTH}
        for i, view in enumerate(HMC_VIEWS):
            uvz = project_points(lm[None], s.K[i:i + 1], s.R[i:i + 1], s.t[i:i + 1], (240, 320))[0]
            inside = _inside(uvz, (240, 320))
            own = groups[view]
            assert inside[own].all(), (view, ref)
            # ... drawn on the face, not on background.
            px = uvz[own, :2].long()
            assert s.masks[i, 0, px[:, 1], px[:, 0]].all(), (view, ref)
            if view != "mouth":
                assert not inside[MOUTH].any(), (view, ref)
                other = groups["right_eye" if view == "left_eye" else "left_eye"]
                assert not inside[other].any(), (view, ref)


def test_in_memory_samples_equal_the_files(tiny_capture, tiny_hmc):
    hmc = SyntheticHmc(tiny_capture)
    lay = Layout(tiny_hmc)
    for ref in hmc.frames:
        s = hmc.sample(ref.segment, ref.frame)
        for i, view in enumerate(HMC_VIEWS):
            torch.testing.assert_close(read_png(lay.hmc_view(ref.segment, view, ref.frame), 1), s.views[i], atol=0, rtol=0)
        xy, vis = read_keypoints(lay.keypoints(ref.segment, ref.frame), count=274)
        torch.testing.assert_close(xy, s.keypoints, atol=1e-3, rtol=0)
        assert torch.equal(vis, s.visible)
        R, t = read_transform(lay.hmc_headset(ref.segment, ref.frame))
        torch.testing.assert_close(torch.from_numpy(R).float(), s.headset_R)
        torch.testing.assert_close(torch.from_numpy(t).float(), s.headset_t)


def test_written_cameras_are_rig_times_headset(tiny_capture, tiny_hmc):
    lay = Layout(tiny_hmc)
    rig = read_rig(lay.hmc_rig, (240, 320))
    for ref in Capture(tiny_capture).frames():
        R, t = (torch.from_numpy(a).float() for a in read_transform(lay.hmc_headset(ref.segment, ref.frame)))
        Rc, tc = compose_cameras(rig, R, t)
        cams = read_krt(lay.hmc_cameras(ref.segment, ref.frame))
        assert list(cams) == list(HMC_VIEWS)
        for i, cam in enumerate(cams.values()):
            torch.testing.assert_close(torch.from_numpy(cam.R).float(), Rc[i], atol=1e-5, rtol=0)
            torch.testing.assert_close(torch.from_numpy(cam.t).float(), tc[i], atol=1e-4, rtol=0)
            # Intrinsic jitter: small, but there.
            K0, K1 = rig.cameras[i].K, cam.K
            assert abs(K1[0, 0] / K0[0, 0] - 1) < 0.1 and not (K1 == K0).all()


def test_rerender_from_files_reproduces_clean_views(tiny_capture, tmp_path):
    out = tmp_path / "clean"
    write_hmc(tiny_capture, out, CLEAN, progress=False)
    cap, lay = Capture(tiny_capture), Layout(out)
    rig = read_rig(lay.hmc_rig, CLEAN.views_size)
    topo = cap.topology
    for ref in cap.frames():
        R, t = (torch.from_numpy(a).float() for a in read_transform(lay.hmc_headset(ref.segment, ref.frame)))
        nominal = torch.from_numpy(rig.headset_t).float()
        assert 0 < (t - nominal).norm() < 30  # the pose was perturbed, and it is the one written
        Rc, tc = compose_cameras(rig, R, t)
        verts = cap.vertices(ref.segment, ref.frame)[None].expand(3, -1, -1)
        tex = cap.texture(ref.segment, ref.frame)[None].expand(3, -1, -1, -1)
        img = render_textured(verts, topo.faces, topo.verts_uvs, topo.faces_uvs, tex, rig.intrinsics(), Rc, tc,
                              CLEAN.views_size, antialias=False).image  # as the tool renders them
        grey = (img * torch.tensor([0.6, 0.3, 0.1]).view(1, 3, 1, 1)).sum(1)
        for i, view in enumerate(HMC_VIEWS):
            written = read_png(lay.hmc_view(ref.segment, view, ref.frame), 1)[0]
            assert (written - grey[i]).abs().max() <= 1.01 / 255, (view, ref)


def test_keypoints_land_on_the_rendered_surface_points(tiny_capture, tiny_hmc):
    """Paint a spot in the texture at a keypoint's UV and render it (at 4x the photo's
    resolution, so every spot covers pixels): the spot's centre is the keypoint."""
    cap, lay = Capture(tiny_capture), Layout(tiny_hmc)
    topo = cap.topology
    points = read_surface_points(lay.keypoint_points, count=274)
    ref = cap.frames()[1]
    xy, vis = read_keypoints(lay.keypoints(ref.segment, ref.frame))
    # Lip-line landmarks are left out: half of a spot there falls inside the mouth.
    usable = vis.clone()
    usable[MOUTH] = False
    pick = torch.nonzero(usable).squeeze(1)[::5]
    assert len(pick) >= 40
    uv = (topo.verts_uvs[topo.faces_uvs[points.faces[pick]]] * points.bary[pick, :, None]).sum(1)  # (P, 2)
    T = 512
    grid = (torch.arange(T) + 0.5) / T
    u, v = grid.view(1, 1, T), (1 - grid).view(1, T, 1)  # row 0 is v = 1
    spot = ((u - uv[:, 0, None, None]) ** 2 + (v - uv[:, 1, None, None]) ** 2 < 0.01 ** 2).float()  # (P, T, T)
    n, s = len(pick), 4
    K, R, t = (a[None].expand(n, *a.shape).clone() for a in cap.camera_tensors("400000"))
    K[:, :2] *= s
    H, W = (s * x for x in cap.image_size("400000"))
    verts = cap.world_vertices(ref.segment, ref.frame)[None].expand(n, -1, -1)
    img = render_textured(verts, topo.faces, topo.verts_uvs, topo.faces_uvs, spot[:, None], K, R, t, (H, W)).image[:, 0]
    mass = img.sum((1, 2))
    assert (mass > 0).all()
    cx = (img.sum(1) * (torch.arange(W) + 0.5)).sum(1) / mass / s
    cy = (img.sum(2) * (torch.arange(H) + 0.5)).sum(1) / mass / s
    err = (torch.stack([cx, cy], 1) - xy[pick]).norm(dim=1)
    assert err.median() < 0.1 and err.max() < 0.5, err


def test_same_seed_same_bytes_and_resumable(tiny_capture, tiny_hmc, tmp_path):
    out = tmp_path / "again"
    first = write_hmc(tiny_capture, out, frames=Capture(tiny_capture).frames()[:1], progress=False)
    assert first.written == 1
    second = write_hmc(tiny_capture, out, progress=False, log=lambda *_: None)
    assert (second.written, second.skipped) == (2, 1)
    assert _files(out) == _files(tiny_hmc)
    other = tmp_path / "seed1"
    write_hmc(tiny_capture, other, HmcConfig(seed=1), progress=False)
    ref = Capture(tiny_capture).frames()[0]
    rel = Layout(out).hmc_view(ref.segment, "mouth", ref.frame).relative_to(out)
    assert (other / rel).read_bytes() != (out / rel).read_bytes()


def test_other_settings_in_the_same_folder_are_refused(tiny_capture, tmp_path):
    out = tmp_path / "out"
    write_hmc(tiny_capture, out, frames=Capture(tiny_capture).frames()[:1], progress=False)
    before = _files(out)
    with pytest.raises(FileExistsError, match="other settings"):
        write_hmc(tiny_capture, out, HmcConfig(seed=9), progress=False)
    assert _files(out) == before
    run = write_hmc(tiny_capture, out, HmcConfig(seed=9), overwrite=True, progress=False)
    assert run.written == 3


def test_missing_textures_are_reported_before_writing(tiny_capture, tmp_path):
    cap_dir = tmp_path / "cap"
    shutil.copytree(tiny_capture, cap_dir)
    shutil.rmtree(cap_dir / "unwrapped_uv_1024")
    out = tmp_path / "out"
    with pytest.raises(FormatError, match=r"average.*missing; the HMC tool needs .* \(3 files missing over 3 frames\)"):
        write_hmc(cap_dir, out, progress=False)
    assert not out.exists()


def test_missing_landmarks_are_reported(tiny_capture, tmp_path):
    cap_dir = tmp_path / "cap"
    shutil.copytree(tiny_capture, cap_dir)
    (cap_dir / "landmarks.txt").unlink()
    with pytest.raises(FormatError, match="landmarks.txt: missing"):
        SyntheticHmc(cap_dir)


def test_paper_image_size(tiny_capture):
    hmc = SyntheticHmc(tiny_capture, dataclasses.replace(CLEAN, views_size=(480, 640)))
    s = hmc[0]
    assert s.views.shape == (3, 1, 480, 640)
    small = SyntheticHmc(tiny_capture, CLEAN)[0]
    # Same cameras at twice the resolution: the face covers the same fraction of each view.
    torch.testing.assert_close(s.masks.mean((1, 2, 3)), small.masks.mean((1, 2, 3)), atol=0.01, rtol=0)
