import numpy as np
import pytest
import torch

from avatarfit.data import Capture, HMC_VIEWS
from avatarfit.data.krt import CameraCalib, write_krt
from avatarfit.errors import FormatError
from avatarfit.render.mesh_ops import surface_points
from avatarfit.synth.hmc_rig import compose_cameras, default_rig, format_rig, read_rig


def _landmarks(capture_dir):
    cap = Capture(capture_dir)
    lm = cap.landmarks
    return surface_points(cap.stats.vert_mean[None], cap.topology.faces, lm.faces, lm.bary)[0]


def test_rig_file_round_trip(tiny_capture, tmp_path):
    rig = default_rig(_landmarks(tiny_capture))
    path = tmp_path / "rig.txt"
    path.write_text(format_rig(rig))
    back = read_rig(path, rig.image_size)
    assert [c.name for c in back.cameras] == list(HMC_VIEWS)
    for a, b in zip(rig.cameras, back.cameras):
        np.testing.assert_array_equal(a.K, b.K)
        np.testing.assert_array_equal(a.R, b.R)
        np.testing.assert_array_equal(a.t, b.t)
    np.testing.assert_array_equal(rig.headset_t, back.headset_t)


def test_paper_size_scales_intrinsics(tiny_capture):
    lm = _landmarks(tiny_capture)
    small, big = default_rig(lm, (240, 320)), default_rig(lm, (480, 640))
    torch.testing.assert_close(big.intrinsics(), small.intrinsics() * torch.tensor([2.0, 2.0, 1.0]).view(1, 3, 1))


def test_compose_cameras_maps_head_to_camera(tiny_capture):
    rig = default_rig(_landmarks(tiny_capture))
    hR, ht = rig.nominal()
    R, t = compose_cameras(rig, hR, ht)
    p = torch.tensor([3.0, -5.0, 10.0])
    for i, cam in enumerate(rig.cameras):
        via_headset = torch.from_numpy(cam.R).float() @ (hR @ p + ht) + torch.from_numpy(cam.t).float()
        torch.testing.assert_close(R[i] @ p + t[i], via_headset)


def test_rig_with_too_few_cameras_is_refused(tiny_capture, tmp_path):
    rig = default_rig(_landmarks(tiny_capture))
    path = tmp_path / "rig.txt"
    write_krt(path, list(rig.cameras[:2]))
    with pytest.raises(FormatError, match=r"rig.txt.*expected 3 HMC cameras.*found 2"):
        read_rig(path, (240, 320))
    cams = list(rig.cameras[:2]) + [CameraCalib("nose", rig.cameras[2].K, rig.cameras[2].R, rig.cameras[2].t)]
    write_krt(path, cams)
    with pytest.raises(FormatError, match=r"missing \['mouth'\]"):
        read_rig(path, (240, 320))


def test_rig_with_a_scaled_camera_rotation_is_refused(tiny_capture, tmp_path):
    rig = default_rig(_landmarks(tiny_capture))
    cams = list(rig.cameras)
    cams[2] = CameraCalib(cams[2].name, cams[2].K, cams[2].R * 1.5, cams[2].t)
    path = tmp_path / "rig.txt"
    write_krt(path, cams)
    with pytest.raises(FormatError, match=r"rig.txt, line 24: camera 'mouth' \[R\|t\]: expected a rotation"):
        read_rig(path, (240, 320))
