import torch

from avatarfit.data import Capture
from avatarfit.data.surface import SurfacePoints
from avatarfit.synth.keypoints import NUM_KEYPOINTS, face_surface_points, keypoint_definition, project_keypoints


def test_definition_is_fixed_and_spread(tiny_capture):
    cap = Capture(tiny_capture)
    mean, faces = cap.stats.vert_mean, cap.topology.faces
    a = keypoint_definition(mean, faces, cap.landmarks)
    b = keypoint_definition(mean, faces, cap.landmarks)
    assert len(a) == NUM_KEYPOINTS
    assert torch.equal(a.faces, b.faces) and torch.equal(a.faces[:68], cap.landmarks.faces)
    surface = a.faces[68:]
    assert surface.unique().numel() == 206
    centroids = mean[faces[surface]].mean(1)
    d = torch.cdist(centroids, centroids) + torch.eye(206) * 1e9
    nearest = d.min(1).values
    # Farthest-point sampling: no two points much closer than the typical spacing.
    assert nearest.min() > 0.5 * nearest.median()
    # Spread over the whole face: from the chin to the brows, and across both cheeks.
    lm = mean[faces[a.faces[:68]]].mean(1)
    assert centroids[:, 1].min() < lm[48:68, 1].min() and centroids[:, 1].max() > lm[17:27, 1].max()
    assert centroids[:, 0].min() < lm[36:48, 0].min() and centroids[:, 0].max() > lm[36:48, 0].max()


def test_face_surface_points_need_enough_faces():
    verts = torch.tensor([[0.0, 0, 0], [1, 0, 0], [0, 1, 0]])
    faces = torch.tensor([[0, 1, 2]])
    try:
        face_surface_points(verts, faces, torch.zeros(68, 3))
    except ValueError as exc:
        assert "fewer than the 206" in str(exc)
    else:
        raise AssertionError("expected a ValueError")


def test_visibility_uses_the_depth_buffer():
    # Two parallel squares facing a camera on -z: the front one (z = 0, 20 mm wide) hides the
    # centre of the back one (z = 50, 100 mm wide).
    def square(half, z):
        return [[-half, -half, z], [half, -half, z], [half, half, z], [-half, half, z]]

    verts = torch.tensor(square(10.0, 0.0) + square(50.0, 50.0))[None]
    faces = torch.tensor([[0, 2, 1], [0, 3, 2], [4, 6, 5], [4, 7, 6]])
    # Points on the back square: one behind the front square, two beside it.
    points = SurfacePoints(torch.tensor([2, 2, 3]), torch.tensor([[0.45, 0.45, 0.1], [0.1, 0.1, 0.8], [0.1, 0.8, 0.1]]))
    K = torch.tensor([[[200.0, 0, 64], [0, 200.0, 64], [0, 0, 1]]])
    R = torch.eye(3)[None]
    t = torch.tensor([[0.0, 0.0, 300.0]])
    xy, vis = project_keypoints(verts, faces, points, K, R, t, (128, 128), backend="bbox")
    back = verts[0, faces[points.faces]]
    p3 = (back * points.bary[:, :, None]).sum(1)
    hidden = (p3[:, 0].abs() < 10) & (p3[:, 1].abs() < 10)
    assert hidden.any() and (~hidden).any()
    assert torch.equal(vis[0], ~hidden)
    expected = p3[:, :2] * 200.0 / (p3[:, 2:] + 300.0) + 64
    torch.testing.assert_close(xy[0], expected, atol=1e-3, rtol=0)
