import pytest
import torch
from pytorch3d.utils import ico_sphere

from avatarfit.render import look_at, rasterize
from avatarfit.render.raster_bbox import rasterize_screen


def _sphere(level=4):
    m = ico_sphere(level)
    return m.verts_packed()[None] * 100, m.faces_packed()


def _cams(n, W, H):
    eyes = torch.tensor([[30.0, 20.0, 400.0], [-250.0, 60.0, 300.0], [0.0, -200, 350]])[:n]
    R, t = look_at(eyes, torch.zeros(n, 3), torch.tensor([0.0, 1.0, 0.0]))
    f = 1.8 * min(H, W)
    K = torch.tensor([[f, 0, W / 2 + 3.3], [0, f, H / 2 - 2.1], [0, 0, 1]]).expand(n, 3, 3)
    return K, R, t


@pytest.mark.parametrize("H,W", [(64, 64), (48, 72), (96, 64)])
def test_agrees_with_pytorch3d(H, W):
    v, f = _sphere(4)
    K, R, t = _cams(3, W, H)
    v = v.expand(3, -1, -1)
    a = rasterize(v, f, K, R, t, (H, W), backend="bbox")
    b = rasterize(v, f, K, R, t, (H, W), backend="pytorch3d")
    agree = (a.pix_to_face == b.pix_to_face).float().mean()
    assert agree >= 0.995
    both = (a.pix_to_face >= 0) & (b.pix_to_face == a.pix_to_face)
    assert both.sum() > 0.2 * H * W
    assert torch.allclose(a.zbuf[both], b.zbuf[both], rtol=1e-4, atol=1e-2)
    assert torch.allclose(a.bary_coords[both], b.bary_coords[both], atol=2e-3)
    assert torch.allclose(a.dists[both], b.dists[both], atol=1e-5)
    empty = a.pix_to_face < 0
    assert (a.zbuf[empty] == -1).all() and (a.bary_coords[empty] == -1).all()


def test_gradients_match_finite_differences():
    torch.manual_seed(0)
    screen = torch.tensor([[[3.2, 2.1, 10.0], [13.7, 4.4, 12.0], [6.1, 14.2, 11.0], [15.0, 15.0, 14.0]]],
                          dtype=torch.float64, requires_grad=True)
    faces = torch.tensor([[0, 1, 2], [1, 3, 2]])
    frags = rasterize_screen(screen, faces, (16, 16))
    w_b = torch.randn_like(frags.bary_coords)
    w_z = torch.randn_like(frags.zbuf)
    covered = frags.pix_to_face.clone()

    def f(s):
        fr = rasterize_screen(s, faces, (16, 16))
        assert torch.equal(fr.pix_to_face, covered)  # small steps must not change coverage
        m = (fr.pix_to_face >= 0).to(s.dtype)
        return (fr.bary_coords * w_b * m.unsqueeze(-1)).sum() + (fr.zbuf * w_z * m).sum() + (fr.dists * m).sum()

    assert torch.autograd.gradcheck(f, (screen,), eps=1e-6, atol=1e-5)


def test_gradient_reaches_vertices_and_camera_through_projection():
    """Through the projection, the depth buffer's gradients in the world vertices and the
    camera translation equal central differences (float64; steps that change no pixel's face)."""
    D = torch.float64
    v, f = _sphere(2)
    K, R, t = (x.to(D) for x in _cams(1, 32, 32))
    v = v.to(D)
    covered = rasterize(v, f, K, R, t, (32, 32), backend="bbox").pix_to_face
    w = torch.randn(covered.shape, generator=torch.Generator().manual_seed(0), dtype=D)

    def loss(vv, tt):
        frags = rasterize(vv, f, K, R, tt, (32, 32), backend="bbox")
        assert torch.equal(frags.pix_to_face, covered)  # small steps must not change coverage
        return (frags.zbuf * w * (frags.pix_to_face >= 0)).sum()

    vg, tg = v.clone().requires_grad_(True), t.clone().requires_grad_(True)
    g_v, g_t = torch.autograd.grad(loss(vg, tg), (vg, tg))
    gen = torch.Generator().manual_seed(1)
    h = 1e-5
    for _ in range(2):
        dv, dt = torch.randn(v.shape, generator=gen, dtype=D), torch.randn(t.shape, generator=gen, dtype=D)
        fd_v = float(loss(v + h * dv, t) - loss(v - h * dv, t)) / (2 * h)
        fd_t = float(loss(v, t + h * dt) - loss(v, t - h * dt)) / (2 * h)
        assert abs(fd_v) > 1.0 and abs(fd_t) > 1.0  # both directions move the depth buffer
        assert float((g_v * dv).sum()) == pytest.approx(fd_v, rel=1e-6)
        assert float((g_t * dt).sum()) == pytest.approx(fd_t, rel=1e-6)


def test_faces_behind_camera_and_off_screen_are_empty():
    screen = torch.tensor([[[1.0, 1.0, -5.0], [10.0, 1.0, 5.0], [1.0, 10.0, 5.0]]])
    frags = rasterize_screen(screen, torch.tensor([[0, 1, 2]]), (12, 12))
    assert (frags.pix_to_face == -1).all()
    off = torch.tensor([[[100.0, 100.0, 5.0], [110.0, 100.0, 5.0], [100.0, 110.0, 5.0]]])
    assert (rasterize_screen(off, torch.tensor([[0, 1, 2]]), (12, 12)).pix_to_face == -1).all()


def test_chunking_gives_the_same_result():
    v, f = _sphere(3)
    K, R, t = _cams(2, 40, 40)
    from avatarfit.render import project_points

    screen = project_points(v.expand(2, -1, -1), K, R, t, (40, 40))
    a = rasterize_screen(screen, f, (40, 40))
    b = rasterize_screen(screen, f, (40, 40), max_candidates=50)
    assert torch.equal(a.pix_to_face, b.pix_to_face)


def test_bad_shapes():
    with pytest.raises(ValueError, match=r"verts_screen: expected shape \(B, V, 3\)"):
        rasterize_screen(torch.zeros(4, 3), torch.zeros(1, 3, dtype=torch.long), (4, 4))
    v, f = _sphere(1)
    K, R, t = _cams(2, 8, 8)
    with pytest.raises(ValueError, match=r"wrong number \(2\) of cameras for 1 meshes"):
        rasterize(v, f, K, R, t, (8, 8))
    with pytest.raises(ValueError, match="backend: expected one of"):
        rasterize(v, f, K[:1], R[:1], t[:1], (8, 8), backend="opengl")


def _one_face(v3, z=50.0):
    """A face with two vertices at depth ``z`` in front of a 64 x 48 camera and a third at ``v3``."""
    K = torch.tensor([[[100.0, 0.0, 32.0], [0.0, 100.0, 24.0], [0.0, 0.0, 1.0]]])
    return torch.tensor([[[-5.0, -5.0, z], [5.0, -5.0, z], v3]]), torch.tensor([[0, 1, 2]]), K


@pytest.mark.parametrize("v3", [[0.0, 5.0, 0.5], [0.0, 5.0, 1e-5], [0.0, 5.0, -10.0], [0.0, 50.0, -1.0]])
def test_faces_reaching_the_near_plane_are_culled_alike_by_both_backends(v3):
    """A face with a vertex at or in front of the near plane (1 mm; HMC cameras sit tens of
    mm from the face) is not drawn, by either backend: before, a vertex at 0 < z <= 1e-4 was
    projected with a clamped depth by one backend and not by the other, and faces with a
    vertex between 0 and 1 mm were drawn."""
    from avatarfit.render.cameras import NEAR_PLANE

    verts, faces, K = _one_face(v3)
    R, t = torch.eye(3)[None], torch.zeros(1, 3)
    for backend in ("bbox", "pytorch3d"):
        assert int((rasterize(verts, faces, K, R, t, (48, 64), backend=backend).pix_to_face >= 0).sum()) == 0, backend
    beyond = verts.clone()
    beyond[0, 2, 2] = NEAR_PLANE * 1.5
    counts = [int((rasterize(beyond, faces, K, R, t, (48, 64), backend=b).pix_to_face >= 0).sum())
              for b in ("bbox", "pytorch3d")]
    assert counts[0] == counts[1] > 0


def test_slivers_and_specks_are_not_drawn_by_either_backend():
    """A sliver whose height is a millionth of its length, through a row of pixel centres:
    its barycentric gradients would be ~1e6 per pixel of motion; and a speck smaller than
    PyTorch3D's area floor, which that backend skipped and this one drew."""
    from avatarfit.render.raster_bbox import drawn_faces

    K = torch.tensor([[[100.0, 0, 32], [0, 100.0, 32], [0, 0, 1]]])
    R, t = torch.eye(3)[None], torch.zeros(1, 3)

    def world(u, v, z=100.0):
        return [(u - 32) * z / 100, (v - 32) * z / 100, z]

    sliver = torch.tensor([[world(20.0, 32.5 - 5e-6), world(40.0, 32.5 - 5e-6), world(30.0, 32.5 + 5e-6)]])
    speck = torch.tensor([[world(30.5 - 1e-3, 30.5 - 1e-3), world(30.5 + 1e-3, 30.5 - 1e-3), world(30.5, 30.5 + 1e-3)]])
    healthy = torch.tensor([[world(20.0, 30.0), world(40.0, 30.0), world(30.0, 35.0)]])
    f = torch.tensor([[0, 1, 2]])
    for verts, drawn in ((sliver, False), (speck, False), (healthy, True)):
        for backend in ("bbox", "pytorch3d"):
            covered = int((rasterize(verts, f, K, R, t, (64, 64), backend=backend).pix_to_face >= 0).sum())
            assert (covered > 0) == drawn, (verts, backend)
    from avatarfit.render import project_points

    ok, _ = drawn_faces(project_points(torch.cat([sliver, speck, healthy]), K.expand(3, -1, -1),
                                       R.expand(3, -1, -1), t.expand(3, -1), (64, 64)), f, (64, 64))
    assert ok[:, 0].tolist() == [False, False, True]
