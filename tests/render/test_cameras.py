import numpy as np
import pytest
import torch

from avatarfit.render import look_at, project_points, rasterize


def _camera():
    K = torch.tensor([[[300.0, 0.0, 41.0], [0.0, 320.0, 29.0], [0.0, 0.0, 1.0]]])
    R, t = look_at(torch.tensor([[100.0, 50.0, 600.0]]), torch.zeros(1, 3), torch.tensor([0.0, 1.0, 0.0]))
    return K, R, t


def test_projection_matches_opencv_formula():
    K, R, t = _camera()
    pts = torch.tensor([[[0.0, 0.0, 0.0], [20.0, -10.0, 5.0], [-30.0, 40.0, -20.0]]])
    got = project_points(pts, K, R, t, (60, 80))
    cam = pts[0] @ R[0].T + t[0]
    expected_uv = (cam @ K[0].T)[:, :2] / cam[:, 2:]
    np.testing.assert_allclose(got[0, :, :2].numpy(), expected_uv.numpy(), atol=1e-3)
    np.testing.assert_allclose(got[0, :, 2].numpy(), cam[:, 2].numpy(), atol=1e-3)


def test_look_at_axes():
    R, t = look_at(torch.tensor([[0.0, 0.0, 500.0]]), torch.zeros(1, 3), torch.tensor([0.0, 1.0, 0.0]))
    K = torch.tensor([[[100.0, 0, 50], [0, 100, 50], [0, 0, 1]]])
    p = project_points(torch.tensor([[[0.0, 0, 0], [10.0, 0, 0], [0, 10.0, 0]]]), K, R, t, (100, 100))[0]
    assert p[1, 0] > p[0, 0]  # world +x to the image right (camera in front of a +z-facing face)
    assert p[2, 1] < p[0, 1]  # world up is image up
    assert torch.allclose(torch.det(R), torch.ones(1))


def test_marked_triangle_is_found_where_projection_says():
    K, R, t = _camera()
    H, W = 60, 80
    target = torch.tensor([5.0, -4.0, 3.0])
    uv = project_points(target.view(1, 1, 3), K, R, t, (H, W))[0, 0]
    # A small triangle (about 2 pixels) around the target point, facing the camera.
    right, down = R[0, 0], R[0, 1]
    s = 2.0
    tri = torch.stack([target - s * right - s * down, target + s * right - s * down, target + s * down])
    for backend in ("bbox", "pytorch3d"):
        frags = rasterize(tri[None], torch.tensor([[0, 1, 2]]), K, R, t, (H, W), backend=backend)
        hit = (frags.pix_to_face[0, ..., 0] >= 0).nonzero().float()
        assert len(hit) > 0, backend
        centre = hit.mean(0)  # (row, col)
        assert abs(centre[1] + 0.5 - uv[0]) < 1.5 and abs(centre[0] + 0.5 - uv[1]) < 1.5, backend


def test_points_on_or_behind_the_camera_plane_give_finite_values_and_gradients():
    """A fitted mesh can reach a head-mounted camera's plane: its faces are skipped by the
    rasteriser, and nothing may turn the fit's gradients into NaN (seen in HMC fits)."""
    from avatarfit.render.renderer import render_textured

    K = torch.tensor([[[100.0, 0.0, 32.0], [0.0, 100.0, 24.0], [0.0, 0.0, 1.0]]])
    R, t = torch.eye(3)[None], torch.zeros(1, 3)
    verts = torch.tensor([[[-5.0, -5.0, 50.0], [5.0, -5.0, 50.0], [0.0, 5.0, 50.0],
                           [1.0, 1.0, 0.0], [2.0, 1.0, -3.0], [1.0, 2.0, 40.0]]], requires_grad=True)
    screen = project_points(verts, K, R, t, (48, 64))
    assert bool(torch.isfinite(screen).all())
    faces = torch.tensor([[0, 1, 2], [3, 4, 5]])
    uvs = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.5, 1.0]])
    out = render_textured(verts, faces, uvs, torch.tensor([[0, 1, 2], [0, 1, 2]]), torch.rand(1, 3, 8, 8), K, R, t,
                          (48, 64), backend="bbox")
    out.image.sum().backward()
    assert bool(torch.isfinite(verts.grad).all())
    assert float(out.mask.sum().detach()) > 0
    # The visible face's gradients are right: autograd against central differences, in
    # float64 (steps far below any pixel, so no pixel changes face or crosses a texel).
    D = torch.float64
    tex = torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(0), dtype=D)
    w = torch.randn(1, 3, 48, 64, generator=torch.Generator().manual_seed(1), dtype=D)

    def f(v):
        o = render_textured(v, faces, uvs.to(D), torch.tensor([[0, 1, 2], [0, 1, 2]]), tex, K.to(D), R.to(D),
                            t.to(D), (48, 64), backend="bbox")
        return (o.image * w).sum()

    # Off whole pixels: the visible face's vertices project to whole pixel coordinates, so its
    # slanted edges cross vertical pixel pairs exactly halfway, where the antialiasing's box
    # filter has a kink (autograd takes one side, central differences the mean).
    off = torch.zeros(1, 6, 3, dtype=D)
    off[0, :3, :2] = torch.tensor([[0.03, -0.07], [0.01, 0.02], [0.04, 0.06]], dtype=D)
    v = (verts.detach().to(D) + off).requires_grad_(True)
    (g,) = torch.autograd.grad(f(v), v)
    assert bool(torch.isfinite(g).all())
    g_dir = torch.Generator().manual_seed(2)
    for _ in range(3):
        d = torch.randn(v.shape, generator=g_dir, dtype=D)
        d[0, 3:] = 0  # along the visible face's vertices
        h = 1e-5
        with torch.no_grad():
            fd = float(f(v.detach() + h * d) - f(v.detach() - h * d)) / (2 * h)
        assert abs(fd) > 1e-3  # the direction moves the image
        assert float((g * d).sum()) == pytest.approx(fd, rel=1e-5, abs=1e-8)
    # The skipped face (a vertex behind the camera) gets no gradient and moving it changes nothing.
    assert float(g[0, 3:].abs().max()) == 0.0
    d = torch.zeros_like(v)
    d[0, 3:] = torch.randn(3, 3, generator=g_dir, dtype=D)
    with torch.no_grad():
        assert float(f(v.detach() + 1e-3 * d)) == float(f(v.detach()))
