import torch

from avatarfit.render import look_at, rasterize_uv, render_textured, unwrap_texture


def test_unwrap_recovers_the_texture_where_seen():
    verts = torch.tensor([[-30.0, -20, 0], [30, -20, 0], [30, 20, 0], [-30, 20, 0]])
    faces = torch.tensor([[0, 1, 2], [0, 2, 3]])
    uvs = torch.tensor([[0.0, 0], [1, 0], [1, 1], [0, 1]])
    # A smooth texture, so resampling error stays small.
    yy, xx = torch.meshgrid(torch.linspace(0, 1, 32), torch.linspace(0, 1, 32), indexing="ij")
    tex = torch.stack([xx, yy, 0.5 + 0.3 * torch.sin(3 * xx)])[None]
    R, t = look_at(torch.tensor([[0.0, 0, 300], [200.0, 0, 250]]), torch.zeros(2, 3), torch.tensor([0.0, 1, 0]))
    K = torch.tensor([[500.0, 0, 64], [0, 500, 48], [0, 0, 1]]).expand(2, 3, 3)
    out = render_textured(verts.expand(2, -1, -1), faces, uvs, faces, tex.expand(2, -1, -1, -1), K, R, t, (96, 128))
    uvr = rasterize_uv(uvs, faces, 32)
    assert uvr.valid.float().mean() > 0.9
    got, seen = unwrap_texture(uvr, verts, faces, out.image, out.depth, K, R, t)
    assert got.shape == (2, 3, 32, 32) and seen.shape == (2, 1, 32, 32)
    interior = seen.clone()
    interior[..., :2, :] = interior[..., -2:, :] = interior[..., :, :2] = interior[..., :, -2:] = False
    assert interior.float().mean() > 0.5
    err = (got - tex).abs() * interior
    assert err.max() < 0.05
    assert (got * ~seen).abs().max() == 0  # unseen texels are 0


def test_fill_gutter_pads_outward_only():
    from avatarfit.render.unwrap import fill_gutter

    tex = torch.zeros(1, 3, 8, 8)
    inside = torch.zeros(8, 8, dtype=torch.bool)
    inside[2:6, 2:6] = True
    tex[:, :, 2:6, 2:6] = 0.7
    out = fill_gutter(tex, inside, iterations=1)
    assert torch.equal(out[:, :, 2:6, 2:6], tex[:, :, 2:6, 2:6])
    assert torch.allclose(out[:, :, 1, 3], torch.full((1, 3), 0.7))  # one texel out: filled
    assert (out[:, :, 0, 0] == 0).all()  # two texels out diagonally: not reached in one step
