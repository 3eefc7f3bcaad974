"""Antialiased outlines: the image and the mask are continuous in the vertices at
silhouette and occlusion edges, and their gradients are the edges' true rates."""

import pytest
import torch
from pytorch3d.utils import ico_sphere

from avatarfit.render import look_at, render_textured
from avatarfit.render.antialias import face_neighbours

D = torch.float64
# A camera 100 mm in front of the plane z = 100 with f = 100 px and the principal point at
# the origin: world (x, y, 100) lands on pixel coordinates (x, y).
K = torch.tensor([[[100.0, 0, 0], [0, 100.0, 0], [0, 0, 1]]], dtype=D)
R, T = torch.eye(3, dtype=D)[None], torch.zeros(1, 3, dtype=D)
QUAD = torch.tensor([[0, 1, 2], [0, 2, 3]])
UVS = torch.tensor([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]])
SIZE = (24, 24)


def _rect(x0, x1, y0, y1, z=100.0):
    return torch.tensor([[x0, y0, z], [x1, y0, z], [x1, y1, z], [x0, y1, z]], dtype=D)


def _render(verts, faces, tex, backend, uv_faces=None, **kw):
    uvs = UVS.repeat(verts.shape[1] // 4, 1)
    fuv = faces if uv_faces is None else uv_faces
    return render_textured(verts, faces, uvs, fuv, tex, K, R, T, SIZE, backend=backend, background=0.1, **kw)


@pytest.mark.parametrize("backend", ["bbox", "pytorch3d"])
def test_a_moving_outline_has_the_analytic_rate_and_matches_finite_differences(backend):
    """Stretching a flat-coloured square to the right: the image sum grows at edge length x
    colour step, the mask sum at edge length, and autograd equals central differences."""
    tex = torch.full((1, 3, 4, 4), 0.8, dtype=D)
    x1 = 13.3  # the right edge, 0.2 px from the nearest pixel centre (steps stay below that)

    def out(dx, **kw):
        return _render(_rect(4.3, x1 + dx, 5.2, 13.2)[None], QUAD, tex, backend, **kw)

    v = _rect(4.3, x1, 5.2, 13.2)[None].requires_grad_(True)
    o = _render(v, QUAD, tex, backend)
    (g_img,) = torch.autograd.grad(o.image[:, 0].sum(), v, retain_graph=True)
    (g_mask,) = torch.autograd.grad(o.mask.sum(), v)
    rate_img = float(g_img[0, 1, 0] + g_img[0, 2, 0])  # the right edge's two vertices, along x
    rate_mask = float(g_mask[0, 1, 0] + g_mask[0, 2, 0])
    h = 0.05
    fd_img = float(out(h).image[:, 0].sum() - out(-h).image[:, 0].sum()) / (2 * h)
    fd_mask = float(out(h).mask.sum() - out(-h).mask.sum()) / (2 * h)
    assert rate_img == pytest.approx(8 * (0.8 - 0.1), rel=1e-6)  # 8 px of edge, colour step 0.7
    assert fd_img == pytest.approx(rate_img, rel=1e-6)
    assert rate_mask == pytest.approx(8.0, rel=1e-6) and fd_mask == pytest.approx(8.0, rel=1e-6)
    assert float(o.mask.sum().detach()) == pytest.approx(9.0 * 8.0, rel=1e-6)  # the area, not the pixel count
    # Without antialiasing the outline has no gradient: only texture sliding moves a fit.
    hard = _render(v, QUAD, tex, backend, antialias=False)
    (g_hard,) = torch.autograd.grad(hard.image.sum(), v)
    assert float(g_hard.abs().max()) == 0.0
    assert torch.equal(hard.mask, hard.pixels.mask)


@pytest.mark.parametrize("backend", ["bbox", "pytorch3d"])
def test_a_textured_square_moving_by_sub_pixel_steps_matches_finite_differences(backend):
    torch.manual_seed(0)
    tex = torch.rand(1, 3, 8, 8, dtype=D)
    w = torch.randn(1, 3, *SIZE, dtype=D)
    base = _rect(4.3, 14.35, 5.2, 15.15)
    direction = torch.tensor([0.6, -0.8, 0.0], dtype=D)  # an oblique motion: all four edges move

    def f(s):
        return float((_render((base + s * direction)[None], QUAD, tex, backend).image * w).sum())

    v = base[None].clone().requires_grad_(True)
    (g,) = torch.autograd.grad((_render(v, QUAD, tex, backend).image * w).sum(), v)
    autograd = float((g[0] * direction).sum())
    h = 0.02
    fd = (f(h) - f(-h)) / (2 * h)
    assert abs(fd) > 0.1
    assert autograd == pytest.approx(fd, rel=1e-3)


@pytest.mark.parametrize("backend", ["bbox", "pytorch3d"])
def test_an_occlusion_edge_moves_at_its_analytic_rate(backend):
    """A small square 10 mm in front of a large one (separate meshes in one): moving its
    right edge changes the image at edge length x (front colour - back colour)."""
    near = _rect(6.3 * 0.9, 12.3 * 0.9, 6.2 * 0.9, 14.2 * 0.9, z=90.0)  # lands on (6.3..12.3, 6.2..14.2)
    far = _rect(2.0, 20.3, 2.1, 20.0, z=100.0)  # its diagonal passes through no pixel centre
    faces = torch.cat([QUAD, QUAD + 4])
    uv_faces = faces
    uvs = torch.tensor([[0.0, 0.0]] * 4 + [[1.0, 1.0]] * 4)  # one texel per square
    tex = torch.zeros(1, 3, 4, 4, dtype=D)
    tex[:, :, 3, 0] = 0.9  # uv (0, 0): the bottom-left texel, the front square
    tex[:, :, 0, 3] = 0.3  # uv (1, 1): the top-right texel, the back square

    def render(v, **kw):
        return render_textured(v, faces, uvs, uv_faces, tex, K, R, T, SIZE, backend=backend, background=0.0, **kw)

    v = torch.cat([near, far])[None].requires_grad_(True)
    o = render(v)
    image = o.image.detach()
    assert float(image[0, 0, 10, 9]) == pytest.approx(0.9, abs=0.02) and float(image[0, 0, 3, 3]) == pytest.approx(
        0.3, abs=0.02)
    (g,) = torch.autograd.grad(o.image[:, 0].sum(), v, retain_graph=True)
    rate = float(g[0, 1, 0] + g[0, 2, 0]) * 90.0 / 100.0  # per pixel of screen motion (x_screen = x * 100 / 90)
    assert rate == pytest.approx(8 * (0.9 - 0.3), rel=1e-3)
    # The mask does not change at an occlusion edge: both sides are covered.
    (gm,) = torch.autograd.grad(o.mask.sum(), v)
    assert float(gm[0, :4].abs().max()) < 1e-9
    h = 0.05 * 100.0 / 90.0 * 0.9  # 0.05 px on screen

    def total(dx):
        w = torch.cat([near, far]).clone()
        w[1:3, 0] += dx
        return float(render(w[None]).image[:, 0].sum())

    fd = (total(h) - total(-h)) / (2 * h) * 90.0 / 100.0
    assert fd == pytest.approx(rate, rel=1e-6)


def _sphere_scene(backend, dtype=torch.float32):
    m = ico_sphere(3)
    verts = (m.verts_packed() * 40.0).to(dtype)[None]
    faces = m.faces_packed()
    R_, t_ = look_at(torch.tensor([[0.0, 0.0, 300.0]]), torch.zeros(1, 3), torch.tensor([0.0, 1.0, 0.0]))
    K_ = torch.tensor([[[120.0, 0, 32.2], [0, 120.0, 31.7], [0, 0, 1]]])
    uvs = torch.tensor([[0.5, 0.5]])
    fuv = torch.zeros_like(faces)
    tex = torch.full((1, 3, 4, 4), 0.9)

    def render(v, **kw):
        return render_textured(v, faces, uvs, fuv, tex, K_.to(dtype), R_.to(dtype), t_.to(dtype), (64, 64),
                               backend=backend, background=0.1, **kw)

    return verts, render


@pytest.mark.parametrize("backend", ["bbox", "pytorch3d"])
def test_a_curved_outline_is_continuous_under_small_motions(backend):
    """A flat-coloured sphere sliding by 0.01 px per step across 3 px: no pixel may jump
    (the hard renderer's pixels jump by the whole colour step when a centre changes side)."""
    verts, render = _sphere_scene(backend)
    shift = torch.tensor([0.25, 0.1, 0.0])  # world mm per step: 0.1 px on screen at 300 mm
    prev_aa = prev_hard = None
    jump_aa = jump_hard = 0.0
    for k in range(31):
        v = verts + k * 0.1 * shift
        aa, hard = render(v).image, render(v, antialias=False).image
        if prev_aa is not None:
            jump_aa = max(jump_aa, float((aa - prev_aa).abs().max()))
            jump_hard = max(jump_hard, float((hard - prev_hard).abs().max()))
        prev_aa, prev_hard = aa, hard
    assert jump_hard > 0.5  # 0.8 when a pixel centre changes side
    # Pixel pairs cannot see a face that covers no pixel centre: where such a sliver of the
    # sphere forms the outline, a pixel still steps by up to a fifth of the colour step
    # (measured 0.15) when the sliver reaches its centre.
    assert jump_aa < 0.25


def test_face_neighbours_pairs_shared_edges_and_marks_borders():
    faces = torch.tensor([[0, 1, 2], [0, 2, 3], [2, 1, 4], [4, 1, 2]])  # edge 1-2 has three faces
    nb, opposite = face_neighbours(faces)
    # Edge k joins vertices k + 1 and k + 2: face 0's edge 0 is 1-2 (non-manifold: -1),
    # its edge 1 is 2-0, shared with face 1 (run 0-2 there: opposite directions).
    assert nb[0].tolist() == [-1, 1, -1]
    assert nb[1].tolist() == [-1, -1, 0] and bool(opposite[1, 2])
    sq = face_neighbours(QUAD)
    assert sq[0].tolist() == [[-1, 1, -1], [-1, -1, 0]]
