import pytest
import torch

from avatarfit.render import look_at, render_textured


def _quad_scene(B=1):
    verts = torch.tensor([[-30.0, -20, 0], [30, -20, 0], [30, 20, 0], [-30, 20, 0]]).expand(B, -1, -1)
    faces = torch.tensor([[0, 1, 2], [0, 2, 3]])
    uvs = torch.tensor([[0.0, 0], [1, 0], [1, 1], [0, 1]])
    R, t = look_at(torch.tensor([[0.0, 0, 500]]).expand(B, -1), torch.zeros(B, 3), torch.tensor([0.0, 1, 0]))
    K = torch.tensor([[400.0, 0, 40], [0, 400, 30], [0, 0, 1]]).expand(B, 3, 3)
    return verts, faces, uvs, K, R, t


def _asymmetric_texture(size=16):
    tex = torch.zeros(1, 3, size, size)
    tex[:, 0, : size // 2, : size // 2] = 1  # image top-left red
    tex[:, 1, : size // 2, size // 2 :] = 1  # image top-right green
    tex[:, 2, size // 2 :, :] = 1  # bottom blue
    return tex


@pytest.mark.parametrize("backend", ["bbox", "pytorch3d"])
def test_texture_orientation(backend):
    verts, faces, uvs, K, R, t = _quad_scene()
    out = render_textured(verts, faces, uvs, faces, _asymmetric_texture(), K, R, t, (60, 80), backend=backend)
    img = out.image[0]
    # Camera in front of the quad: texture top (v = 1) appears at the image top, u = 0 at the left.
    assert img[:, 22, 30].tolist() == [1, 0, 0]
    assert img[:, 22, 50].tolist() == [0, 1, 0]
    assert img[:, 38, 40].tolist() == [0, 0, 1]
    assert out.mask[0, 0, 30, 40] == 1 and out.mask[0, 0, 2, 2] == 0
    assert out.depth[0, 0, 30, 40] == pytest.approx(500.0, rel=1e-4)


def test_backends_agree_and_batch():
    verts, faces, uvs, K, R, t = _quad_scene(2)
    R = R.clone()
    t = t.clone()
    t[1, 0] += 5.0
    tex = _asymmetric_texture().expand(2, -1, -1, -1)
    a = render_textured(verts, faces, uvs, faces, tex, K, R, t, (60, 80), backend="bbox", background=0.3)
    b = render_textured(verts, faces, uvs, faces, tex, K, R, t, (60, 80), backend="pytorch3d", background=0.3)
    assert (a.image - b.image).abs().max() < 1e-4
    assert not torch.equal(a.image[0], a.image[1])


def test_differentiable_in_texture_vertices_and_camera():
    """The default backend's gradients in texture, vertices and camera translation against
    central differences, for a weighted sum over pixels inside the quad (away from its
    outline; a texture linear in uv, so that sampling has no kinks)."""
    verts, faces, uvs, K, R, t = _quad_scene()
    g = torch.Generator().manual_seed(0)
    T = 16
    u = (torch.arange(T) + 0.5) / T
    ramp = torch.stack([0.2 + 0.6 * u[None, :].expand(T, T), 0.9 - 0.7 * u[:, None].expand(T, T),
                        0.3 + 0.3 * u[None, :] + 0.3 * u[:, None]])[None]
    weights = torch.zeros(1, 3, 60, 80)
    weights[..., 20:40, 24:56] = torch.randn(1, 3, 20, 32, generator=g)  # the quad covers rows 14-45, columns 16-63

    def f(v, x, tt):
        out = render_textured(v, faces, uvs, faces, x, K, R, tt, (60, 80))
        assert bool(out.mask[0, 0, 20:40, 24:56].all())
        return (out.image * weights).sum()

    args = [verts.clone().requires_grad_(True), ramp.clone().requires_grad_(True), t.clone().requires_grad_(True)]
    grads = torch.autograd.grad(f(*args), args)
    for k, name in enumerate(("verts", "texture", "t")):
        d = torch.randn(args[k].shape, generator=g)
        h = 0.1  # mm (under 0.1 px on screen), or texture units (the image is linear in the texture)
        plus = [a.detach() + h * d if i == k else a.detach() for i, a in enumerate(args)]
        minus = [a.detach() - h * d if i == k else a.detach() for i, a in enumerate(args)]
        with torch.no_grad():
            fd = float(f(*plus) - f(*minus)) / (2 * h)
        assert abs(fd) > 1e-2, name  # the direction moves the image
        assert float((grads[k] * d).sum()) == pytest.approx(fd, rel=2e-3, abs=1e-4), name


def test_greyscale_and_shape_errors():
    verts, faces, uvs, K, R, t = _quad_scene()
    out = render_textured(verts, faces, uvs, faces, torch.rand(1, 1, 8, 8), K, R, t, (30, 40))
    assert out.image.shape == (1, 1, 30, 40)
    with pytest.raises(ValueError, match=r"texture: expected shape \(1, 1 or 3, T, T\)"):
        render_textured(verts, faces, uvs, faces, torch.rand(2, 3, 8, 8), K, R, t, (30, 40))
    with pytest.raises(ValueError, match=r"faces: indices must lie in \[0, 3\]"):
        render_textured(verts, faces + 2, uvs, faces, torch.rand(1, 3, 8, 8), K, R, t, (30, 40))


def test_gradients_match_finite_differences_in_vertices_and_texture():
    """Directional derivatives of a weighted sum over a window of pixels inside one
    triangle, autograd against central differences (PyTorch3D's cameras are float32, so
    the function is kept smooth: a texture linear in uv for the vertex derivative, where
    bilinear sampling has no kinks; any texture for the texture derivative, which is linear)."""
    verts, faces, uvs, K, R, t = _quad_scene()
    verts = verts + torch.tensor([[[2.0, 1.0, 3.0], [-1.0, 2.0, -2.0], [1.0, -2.0, 1.0], [0.0, 1.0, -1.0]]])
    g = torch.Generator().manual_seed(0)
    T = 16
    u = (torch.arange(T) + 0.5) / T
    ramp = torch.stack([0.2 + 0.6 * u[None, :].expand(T, T), 0.9 - 0.7 * u[:, None].expand(T, T),
                        0.3 + 0.3 * u[None, :] + 0.3 * u[:, None]])[None]
    noise = torch.rand(1, 3, T, T, generator=g)
    weights = torch.zeros(1, 3, 60, 80)
    weights[..., 27:33, 21:27] = torch.randn(1, 3, 6, 6, generator=g)  # around world (-20, 0), far from every edge

    def f(v, x):
        out = render_textured(v, faces, uvs, faces, x, K, R, t, (60, 80), backend="bbox")
        assert bool(out.mask[0, 0, 27:33, 21:27].all())
        return (out.image * weights).sum()

    v = verts.clone().requires_grad_(True)
    x = noise.clone().requires_grad_(True)
    (gx,) = torch.autograd.grad(f(verts, x), (x,))
    (gv,) = torch.autograd.grad(f(v, ramp), (v,))
    for _ in range(3):
        dv = torch.randn(verts.shape, generator=g)
        dx = torch.randn(noise.shape, generator=g)
        with torch.no_grad():
            fd_v = (f(verts + 1e-2 * dv, ramp) - f(verts - 1e-2 * dv, ramp)) / 2e-2
            fd_x = (f(verts, noise + 1e-2 * dx) - f(verts, noise - 1e-2 * dx)) / 2e-2
        assert abs(float(fd_v)) > 1e-2  # the direction moves the image
        assert float((gv * dv).sum()) == pytest.approx(float(fd_v), rel=2e-3, abs=1e-4)
        assert float((gx * dx).sum()) == pytest.approx(float(fd_x), rel=1e-3, abs=1e-4)


def _head_scene(B=2, size=(48, 64)):
    """The procedural head in B cameras around it, with a random texture."""
    from avatarfit.synth.procedural import make_procedural_subject

    subject = make_procedural_subject(seed=0)
    verts = subject.verts[None].expand(B, -1, -1).float()
    centre = verts[0].mean(0)
    eyes = torch.stack([centre + torch.tensor([60.0 * (i - (B - 1) / 2), 10.0, 450.0]) for i in range(B)])
    R, t = look_at(eyes, centre.expand(B, 3), torch.tensor([0.0, -1, 0]))
    H, W = size
    K = torch.tensor([[90.0, 0, W / 2], [0, 90.0, H / 2], [0, 0, 1]]).expand(B, 3, 3)
    tex = torch.rand(B, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    return verts, subject.faces, subject.verts_uvs, subject.faces_uvs, tex, K, R, t, size


@pytest.mark.parametrize("backend", ["bbox", "pytorch3d"])
def test_sampling_equals_pytorch3d_textures_uv(backend):
    """The sparse texture lookup equals PyTorch3D's TexturesUV on PyTorch3D's own
    rasterisation of the same scene (image and gradients). The barycentrics are computed
    in pixels here and in NDC by PyTorch3D: they differ by float32 rounding (~1e-6), which
    a random 32x32 texture turns into ~1e-4."""
    from pytorch3d.renderer import MeshRasterizer, RasterizationSettings, TexturesUV
    from pytorch3d.structures import Meshes

    from avatarfit.render.cameras import to_pytorch3d

    verts, faces, vuv, fuv, tex, K, R, t, size = _head_scene()
    ours_tex = tex.clone().requires_grad_(True)
    ours = render_textured(verts, faces, vuv, fuv, ours_tex, K, R, t, size, backend=backend, background=0.25,
                           antialias=False)
    ref_tex = tex.clone().requires_grad_(True)
    B = verts.shape[0]
    frags = MeshRasterizer(cameras=to_pytorch3d(K, R, t, size), raster_settings=RasterizationSettings(
        image_size=size, blur_radius=0.0, faces_per_pixel=1, bin_size=0))(
        Meshes(verts=verts, faces=faces[None].expand(B, -1, -1)))
    textures = TexturesUV(maps=ref_tex.permute(0, 2, 3, 1), faces_uvs=fuv[None].expand(B, -1, -1),
                          verts_uvs=vuv[None].expand(B, -1, -1).float())
    mask = (frags.pix_to_face[..., 0] >= 0).float()[..., None]
    ref = (textures.sample_textures(frags)[..., 0, :] * mask + 0.25 * (1 - mask)).permute(0, 3, 1, 2)
    assert torch.equal(ours.mask[:, 0] > 0, mask[..., 0] > 0)
    assert (ours.image - ref).abs().max() < 1e-3
    w = torch.rand_like(ref)
    (ours.image * w).sum().backward()
    (ref * w).sum().backward()
    torch.testing.assert_close(ours_tex.grad, ref_tex.grad, atol=1e-3, rtol=1e-3)


def test_a_face_cache_reuses_faces_until_the_vertices_move_or_every_calls():
    from avatarfit.render import FaceCache

    verts, faces, vuv, fuv, tex, K, R, t, size = _head_scene()
    cache = FaceCache(every=3, max_shift=0.5)
    first = render_textured(verts, faces, vuv, fuv, tex, K, R, t, size, cache=cache)
    again = render_textured(verts, faces, vuv, fuv, tex, K, R, t, size, cache=cache)
    assert (cache.rasterised, cache.reused) == (2, 2)  # two images, rasterised once, then kept
    assert torch.equal(first.image, again.image)
    # A sub-pixel move (0.01 px) keeps the faces; the barycentrics follow the vertices: where
    # the kept face is still the winner the image is the fresh one. (Pixel centres that lie
    # on an edge of this regular mesh change face with any motion: about 1 % of them.)
    nudged = verts + torch.tensor([0.05, 0.0, 0.0])
    kept = render_textured(nudged, faces, vuv, fuv, tex, K, R, t, size, cache=cache)
    fresh = render_textured(nudged, faces, vuv, fuv, tex, K, R, t, size)
    assert (cache.rasterised, cache.reused) == (2, 4)
    same = kept.pixels.pix_to_face == fresh.pixels.pix_to_face
    assert same.float().mean() > 0.95
    # Antialiasing blends a pixel with its four neighbours: compare where they agree too.
    pad = torch.nn.functional.pad(same, (1, 1, 1, 1), value=True)
    same = same & pad[:, :-2, 1:-1] & pad[:, 2:, 1:-1] & pad[:, 1:-1, :-2] & pad[:, 1:-1, 2:]
    torch.testing.assert_close(kept.image[same[:, None].expand_as(kept.image)],
                               fresh.image[same[:, None].expand_as(kept.image)])
    render_textured(nudged, faces, vuv, fuv, tex, K, R, t, size, cache=cache)  # the fourth call: `every` is 3
    assert (cache.rasterised, cache.reused) == (4, 4)
    # Several pixels of motion in the second image only: that image is rasterised again.
    moved = nudged.clone()
    moved[1] += torch.tensor([5.0, 0.0, 0.0])
    out = render_textured(moved, faces, vuv, fuv, tex, K, R, t, size, cache=cache)
    assert (cache.rasterised, cache.reused) == (5, 5)
    truth = render_textured(moved, faces, vuv, fuv, tex, K, R, t, size)
    assert torch.equal(out.pixels.pix_to_face[1], truth.pixels.pix_to_face[1])
    assert torch.equal(out.image[1], truth.image[1])
    render_textured(moved[:1], faces, vuv, fuv, tex[:1], K[:1], R[:1], t[:1], size, cache=cache)  # another batch
    assert cache.rasterised == 6
    with pytest.raises(ValueError, match="every >= 1"):
        FaceCache(every=0)


def test_a_nan_vertex_gives_nan_texels_not_an_index_error():
    """Kept faces with a vertex turned NaN (a diverging fit): the lookup returns NaN, which
    fitting detects and reports, instead of indexing out of the texture."""
    from avatarfit.render import project_points
    from avatarfit.render.pixels import pixel_faces, sample_texture

    verts, faces, uvs, K, R, t = _quad_scene()
    screen = project_points(verts, K, R, t, (60, 80)).clone()
    screen[0, 1] = float("nan")
    p2f = torch.full((1, 60, 80), -1)
    p2f[0, 30, 40] = 0
    texels = sample_texture(torch.rand(1, 3, 8, 8), uvs, faces, pixel_faces(screen, faces, p2f))
    assert texels.shape == (1, 3) and bool(torch.isnan(texels).all())
