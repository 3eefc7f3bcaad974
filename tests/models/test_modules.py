import pytest
import torch

from avatarfit.errors import ShapeError
from avatarfit.models import (DamConfig, DamDecoder, DamEncoder, FlowConfig, HmcEncoder, HmcEncoderConfig, KptEncoder,
                              KptEncoderConfig)

DAM = DamConfig(latent=8, texture_size=32, channels=(4, 8), geometry_hidden=16, view_features=4)


def test_dam_shapes_and_gradients():
    enc, dec = DamEncoder(DAM, 50), DamDecoder(DAM, 50)
    tex = torch.randn(3, 3, 32, 32, requires_grad=True)
    verts = torch.randn(3, 50, 3)
    mu, log_sigma = enc(tex, verts)
    assert mu.shape == log_sigma.shape == (3, 8)
    v, t = dec(mu, torch.nn.functional.normalize(torch.randn(3, 3), dim=1))
    assert v.shape == (3, 50, 3) and t.shape == (3, 3, 32, 32)
    (v.sum() + t.sum()).backward()
    assert bool(torch.isfinite(tex.grad).all())
    # The gradient through encoder and decoder is right: a central difference along one
    # direction, in float64.
    enc, dec = enc.double(), dec.double()
    view = torch.nn.functional.normalize(torch.randn(3, 3, dtype=torch.float64), dim=1)
    x, verts = tex.detach().double(), verts.double()

    def loss(x):
        v, t = dec(enc(x, verts)[0], view)
        return (v ** 2).sum() + (t * torch.linspace(-1, 1, t.numel(), dtype=torch.float64).view_as(t)).sum()

    xg = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(loss(xg), xg)
    d = torch.randn(x.shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    h = 1e-6
    with torch.no_grad():
        fd = float(loss(x + h * d) - loss(x - h * d)) / (2 * h)
    assert abs(fd) > 1e-3
    assert float((g * d).sum()) == pytest.approx(fd, rel=1e-5)


def test_view_changes_only_the_texture():
    dec = DamDecoder(DAM, 50)
    z = torch.randn(2, 8)
    a, b = torch.eye(3)[:2], torch.eye(3)[1:]
    assert torch.equal(dec.decode_geometry(z), dec.decode_geometry(z))
    assert not torch.allclose(dec.decode_texture(z, a), dec.decode_texture(z, b))


def test_bad_shapes_name_the_argument():
    enc = DamEncoder(DAM, 50)
    with pytest.raises(ShapeError, match=r"texture: expected shape \(\*, 3, 32, 32\), got \(2, 3, 64, 64\)"):
        enc(torch.zeros(2, 3, 64, 64), torch.zeros(2, 50, 3))
    with pytest.raises(ShapeError, match="verts"):
        enc(torch.zeros(2, 3, 32, 32), torch.zeros(2, 49, 3))
    with pytest.raises(ValueError, match="texture_size"):
        DamConfig(texture_size=48)


def test_hmc_encoder():
    cfg = HmcEncoderConfig(input_size=(24, 32), channels=(4, 8), features=16)
    enc = HmcEncoder(cfg, latent=8)
    views = torch.rand(2, 3, 1, 48, 64)  # resized to 24x32 inside
    mu, log_sigma, h = enc(views)
    assert mu.shape == log_sigma.shape == (2, 8) and h.shape == (2, 16)
    assert enc.attention.shape == (16, 3)
    # Attention: h is a convex combination of the per-view features.
    with pytest.raises(ShapeError, match="views"):
        enc(torch.rand(2, 2, 1, 24, 32))


def test_hmc_encoder_options_normalise_and_pool():
    torch.manual_seed(0)
    views = torch.rand(2, 3, 1, 24, 32)
    # "image" normalisation: blind to a view's gain and offset.
    enc = HmcEncoder(HmcEncoderConfig(input_size=(24, 32), channels=(4, 8), features=16, normalise="image"), latent=8)
    assert torch.allclose(enc(views)[0], enc(views * 0.5 + 0.2)[0], atol=1e-4)
    # "pool": the last feature map is averaged, so the head's size does not depend on the input size.
    enc = HmcEncoder(HmcEncoderConfig(input_size=(24, 32), channels=(4, 8), features=16, head="pool"), latent=8)
    assert enc.towers[0][-2].in_features == 8 and enc(views)[0].shape == (2, 8)
    with pytest.raises(ValueError, match="head"):
        HmcEncoderConfig(head="max")
    with pytest.raises(ValueError, match="normalise"):
        HmcEncoderConfig(normalise="batch")


def test_kpt_encoder():
    enc = KptEncoder(KptEncoderConfig(hidden=32, blocks=4, features=16, dropout=0.0), latent=8)
    mu, log_sigma, h = enc(torch.rand(5, 274, 2) * 2 - 1)
    assert mu.shape == log_sigma.shape == (5, 8) and h.shape == (5, 16)
    assert len(enc.blocks) == 4
    with pytest.raises(ShapeError, match=r"keypoints: expected shape \(\*, 274, 2\)"):
        enc(torch.rand(5, 68, 2))


def _similar(kp: torch.Tensor, angle: float, scale: float, shift: tuple[float, float]) -> torch.Tensor:
    c, s = torch.cos(torch.tensor(angle)), torch.sin(torch.tensor(angle))
    rot = torch.stack([torch.stack([c, -s]), torch.stack([s, c])])
    return kp @ rot.T * scale + torch.tensor(shift)


def test_aligned_keypoints_ignore_the_head_s_translation_roll_and_scale_but_not_the_expression():
    from avatarfit.models.kpt_encoder import align_keypoints

    g = torch.Generator().manual_seed(0)
    face = torch.rand(1, 274, 2, generator=g) * 0.6 - 0.3
    face[:, 36:42] += torch.tensor([-0.2, 0.0])  # two eyes apart
    face[:, 42:48] += torch.tensor([0.2, 0.0])
    moved = _similar(face, 0.15, 1.3, (0.1, -0.05))
    torch.testing.assert_close(align_keypoints(moved), align_keypoints(face), atol=1e-5, rtol=1e-5)
    mouth = face.clone()
    mouth[:, 48:68, 1] += 0.05  # the jaw opens: the aligned mouth moves, the eyes do not
    diff = (align_keypoints(mouth) - align_keypoints(face)).abs()
    assert float(diff[:, 48:68].min()) > 0.01 and float(diff[:, :48].max()) < 1e-6
    a = align_keypoints(face)[0]
    left, right = a[36:42].mean(0), a[42:48].mean(0)
    torch.testing.assert_close(torch.stack([left, right]), torch.tensor([[-0.5, 0.0], [0.5, 0.0]]),
                               atol=1e-5, rtol=0)
    hidden = face.clone()
    hidden[:, 100] = 0  # hidden keypoints stay 0 and do not move the frame
    hidden_moved = _similar(hidden, 0.15, 1.3, (0.1, -0.05))
    hidden_moved[:, 100] = 0
    out = align_keypoints(hidden_moved)
    assert float(out[0, 100].abs().max()) == 0
    torch.testing.assert_close(out, align_keypoints(hidden), atol=1e-5, rtol=1e-5)
    blind = face.clone()
    blind[:, 38] = 0  # an eye landmark hidden: no reliable frame to align to, the input unchanged
    torch.testing.assert_close(align_keypoints(blind), blind)


def test_kpt_encoder_normalise_option():
    enc = KptEncoder(KptEncoderConfig(hidden=32, blocks=2, features=16, dropout=0.0, normalise="eyes"), latent=8)
    enc.eval()
    face = torch.rand(3, 274, 2) * 0.6 - 0.3
    face[:, 36:42, 0] -= 0.2
    face[:, 42:48, 0] += 0.2
    torch.testing.assert_close(enc(_similar(face, -0.1, 0.8, (0.05, 0.02)))[0], enc(face)[0], atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="KptEncoderConfig.normalise"):
        KptEncoderConfig(normalise="procrustes")


def test_flow_config_validation():
    with pytest.raises(ValueError, match="layers"):
        FlowConfig(layers=0)


def test_log_sigma_bound_is_smooth_and_a_sigma_at_the_bound_comes_back():
    from avatarfit.models._checks import LOG_SIGMA_MAX, LOG_SIGMA_MIN, log_sigma

    x = torch.linspace(-30, 30, 601, requires_grad=True)
    y = log_sigma(x)
    yd = y.detach()
    assert float(yd.min()) >= LOG_SIGMA_MIN - 1e-5 and float(yd.max()) <= LOG_SIGMA_MAX + 1e-5  # float32 rounding
    inside = (x > -5) & (x < 3)
    assert float((yd - x.detach())[inside].abs().max()) < 0.01  # about the identity inside
    (g,) = torch.autograd.grad(y.sum(), x)
    assert bool((g[x.abs() < 12] > 0).all())  # a hard clamp has 0 here
    # ... and it is the bound's true slope: central differences in float64 (off the grid's
    # points 3 and 15, where softplus switches to its linear branch: a 1e-9 step there)
    x64 = (x.detach().double() + 0.037).requires_grad_(True)
    (g64,) = torch.autograd.grad(log_sigma(x64).sum(), x64)
    with torch.no_grad():
        fd = (log_sigma(x64 + 1e-6) - log_sigma(x64 - 1e-6)) / 2e-6
    torch.testing.assert_close(g64, fd, rtol=1e-6, atol=1e-8)
    # A raw value driven past the lower bound, then a loss that wants sigma = 1 again.
    raw = torch.tensor([-12.0], requires_grad=True)
    opt = torch.optim.Adam([raw], lr=0.1)
    for _ in range(300):
        opt.zero_grad()
        (log_sigma(raw) ** 2).sum().backward()
        opt.step()
    assert abs(float(log_sigma(raw).detach())) < 0.1, float(raw.detach())


def test_textures_of_several_views_equal_one_view_at_a_time():
    from avatarfit.models.config import DamConfig
    from avatarfit.models.dam import DamDecoder

    dec = DamDecoder(DamConfig(latent=6, texture_size=16, channels=(4, 4), geometry_hidden=8, view_features=3), 10)
    z = torch.randn(2, 6)
    views = torch.nn.functional.normalize(torch.randn(2, 3, 3), dim=-1)
    many = dec.decode_texture_views(z, views)
    one = dec.decode_texture(z.repeat_interleave(3, 0), views.flatten(0, 1))
    torch.testing.assert_close(many, one, atol=1e-6, rtol=1e-5)
    w = torch.tensor([0.6, 0.3, 0.1])
    grey = dec.decode_texture_views(z, views, w)
    assert grey.shape == (6, 1, 16, 16)
    torch.testing.assert_close(grey, (one * w.view(1, 3, 1, 1)).sum(1, keepdim=True), atol=1e-6, rtol=1e-5)


def test_the_default_hmc_encoder_learns_sixteen_frames_from_their_views():
    """A prior encoder that cannot even fit the frames it is shown is broken (this caught
    nothing less than a prior that predicts one code for every frame): regress the
    expression controls of 16 frames from their clean HMC views, with the regression term
    training uses (beta-NLL, beta 0.5), and ask for R^2 > 0.9 on those frames."""
    from avatarfit.metrics import r_squared
    from avatarfit.models.priors import gaussian_log_prob
    from avatarfit.synth.generate import load_subject
    from avatarfit.synth.hmc import HmcConfig, render_hmc_views
    from avatarfit.synth.hmc_rig import compose_cameras, default_rig

    torch.manual_seed(0)
    subject = load_subject("procedural", 0)
    g = torch.Generator().manual_seed(0)
    controls = torch.rand(16, subject.num_controls, generator=g)
    verts, textures = subject.pose(controls)
    cfg = HmcConfig(views_size=(60, 80), augment=False, backend="bbox")
    rig = default_rig(subject.landmarks(subject.verts[None])[0], cfg.views_size)
    R, t = compose_cameras(rig, torch.as_tensor(rig.headset_R).float(), torch.as_tensor(rig.headset_t).float())
    views = torch.stack([render_hmc_views(v, subject.faces, subject.verts_uvs, subject.faces_uvs, tex, rig.intrinsics(),
                                          R, t, cfg)[0] for v, tex in zip(verts, textures)])
    enc = HmcEncoder(HmcEncoderConfig(), latent=subject.num_controls)
    opt = torch.optim.Adam(enc.parameters(), lr=1e-3)
    target = (controls - 0.5) * 2
    for _ in range(300):
        mu, log_sigma, _ = enc(views)
        loss = -gaussian_log_prob(target, mu, log_sigma, beta=0.5).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        assert float(r_squared(enc(views)[0], target)) > 0.9
