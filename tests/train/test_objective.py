"""The training objective term by term, against hand computations and torch.distributions."""

import dataclasses

import pytest
import torch
from torch.distributions import Normal, kl_divergence

from avatarfit.data import Capture
from avatarfit.models import VARIANTS, build_model
from avatarfit.render import render_textured
from avatarfit.train.data import TrainingData
from avatarfit.train.objective import Objective, gaussian_entropy, kl_gaussians, kl_normal
from tests.train.conftest import tiny_config

CASES = [(v, c) for v in VARIANTS for c in ("hmc", "kpt") if c == "hmc" or VARIANTS[v].conditional]


def _objective(tiny_capture, variant, condition="hmc", reduction="sum", beta=0.5):
    config = tiny_config(variant, condition, pretrained="unused" if VARIANTS[variant].pretrained else None)
    config = dataclasses.replace(config, loss=dataclasses.replace(config.loss, latent_reduction=reduction,
                                                                  latent_beta=beta))
    torch.manual_seed(0)
    cap = Capture(tiny_capture)
    model = build_model(config.model, cap.topology.num_verts)
    if model.variant.pretrained:
        model.freeze_dam()
    data = TrainingData(cap, config, model.conditional)
    objective = Objective(model, data, config)
    batch = data.training_batch(0)
    objective.train()
    with torch.no_grad():
        objective(batch)  # ActNorm's initialisation
    objective.eval()  # no dropout: the terms below see the same outputs
    return objective, batch, config


def test_kl_functions_match_torch_distributions():
    g = torch.Generator().manual_seed(0)
    mu_q, ls_q, mu_p, ls_p = (torch.randn(5, 7, generator=g) for _ in range(4))
    q, p = Normal(mu_q, ls_q.exp()), Normal(mu_p, ls_p.exp())
    torch.testing.assert_close(kl_normal(mu_q, ls_q), kl_divergence(q, Normal(0.0, 1.0)).sum(-1))
    torch.testing.assert_close(kl_gaussians(mu_q, ls_q, mu_p, ls_p), kl_divergence(q, p).sum(-1))
    torch.testing.assert_close(gaussian_entropy(ls_q), q.entropy().sum(-1))


def _expected_latent(objective, c, beta: float = 0.0) -> torch.Tensor:
    """L_L per frame, written out with torch.distributions; under a predicted prior each
    dimension weighted by sigma_p^(2 beta) (beta-NLL)."""
    kind, params, prior = objective.variant.latent_loss, c["params"], objective.model.prior
    std = Normal(0.0, 1.0)
    w = params.sigma.detach() ** (2 * beta)
    if kind == "kl_normal":
        return kl_divergence(Normal(c["mu_q"], c["log_sigma_q"].exp()), std).sum(-1)
    if kind == "kl_p_normal":
        return kl_divergence(Normal(params.mu, params.sigma), std).sum(-1)
    if kind == "regress":
        return -(w * Normal(params.mu, params.sigma).log_prob(c["mu_q"])).sum(-1)
    if kind == "kl_q_p":
        return (w * kl_divergence(Normal(c["mu_q"], c["log_sigma_q"].exp()), Normal(params.mu, params.sigma))).sum(-1)
    zp, logdet = prior.flow(c["z"], params.h)  # nll: change of variables, never weighted
    base = std if params.h is None else Normal(params.mu, params.sigma)
    return -(base.log_prob(zp).sum(-1) + logdet)


@pytest.mark.parametrize("beta", [0.0, 0.5])
@pytest.mark.parametrize("reduction", ["sum", "mean"])
@pytest.mark.parametrize("variant, condition", CASES)
def test_latent_term_matches_a_hand_computation(tiny_capture, variant, condition, reduction, beta):
    objective, batch, config = _objective(tiny_capture, variant, condition, reduction, beta)
    c = objective.codes(batch)
    L = config.model.dam.latent
    expected = _expected_latent(objective, c, beta).mean() / (L if reduction == "mean" else 1)
    got = objective.latent_term(c)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    assert float(got.detach().abs()) > 1e-3  # not a vanishing term


def _grads(objective, loss):
    named = [(n, p) for n, p in objective.model.named_parameters() if p.requires_grad]
    grads = torch.autograd.grad(loss, [p for _, p in named], allow_unused=True)
    parts = {}
    for (n, _), g in zip(named, grads):
        part = n.split(".")[0] if not n.startswith("prior.") else ".".join(n.split(".")[:2])
        parts[part] = parts.get(part, False) or (g is not None and bool(g.abs().sum() > 0))
    return parts


@pytest.mark.parametrize("variant, reached, not_reached", [
    ("dam", {"encoder"}, {"decoder"}),
    ("dam_flow", {"encoder", "prior.flow"}, {"decoder"}),
    ("dam_hmc_enc", {"prior.encoder"}, {"decoder"}),
    ("dam_hmc_reg", {"prior.encoder"}, set()),  # Q and D are frozen (no trainable parameters)
    ("lip_kl", {"encoder", "prior.encoder"}, {"decoder"}),
    ("lip_flow", {"encoder", "prior.encoder", "prior.flow"}, {"decoder"}),
])
def test_latent_term_gradient_paths(tiny_capture, variant, reached, not_reached):
    objective, batch, _ = _objective(tiny_capture, variant)
    parts = _grads(objective, objective.latent_term(objective.codes(batch)))
    assert {k for k, v in parts.items() if v} == reached, parts
    assert not any(parts.get(k, False) for k in not_reached)
    if variant == "dam_hmc_reg":
        frozen = [p.requires_grad for m in (objective.model.encoder, objective.model.decoder) for p in m.parameters()]
        assert frozen and not any(frozen)


@pytest.mark.parametrize("variant, condition, weight", [
    ("lip_flow", "kpt", "lambda_L"), ("lip_kl", "kpt", "lambda_L"), ("dam_hmc_reg", "kpt", "lambda_L"),
    ("dam_hmc_enc", "kpt", 0.0), ("lip_flow", "hmc", 0.0),
])
def test_entropy_term_is_in_the_total_where_the_paper_puts_it(tiny_capture, variant, condition, weight):
    objective, batch, config = _objective(tiny_capture, variant, condition)
    w_e = config.lambda_latent if weight == "lambda_L" else weight
    assert config.lambda_entropy == w_e
    with torch.no_grad():
        torch.manual_seed(3)
        out = objective(batch)
    expected = config.lambda_latent * out["latent"] + w_e * out["entropy"]
    if variant != "dam_hmc_reg":
        expected = expected + config.loss.image * out["image"] + config.loss.geometry * out["geometry"]
    torch.testing.assert_close(out["loss"], expected)
    if variant != "lip_flow":  # a flow's entropy is checked below
        params = objective.model.prior.params(batch["condition"])
        torch.testing.assert_close(out["entropy"], gaussian_entropy(params.log_sigma).mean())


def test_a_flow_prior_s_entropy_is_taken_in_the_decoder_s_space(tiny_capture):
    """``H(p(z_q))`` of LiP-Flow's prior, not of ``N(mu_p, sigma_p)`` in the flow's space:
    at codes drawn from the prior itself it is the Monte-Carlo mean of ``-log p(z_q)``."""
    objective, batch, _ = _objective(tiny_capture, "lip_flow", "kpt")
    prior = objective.model.prior
    objective.eval()
    with torch.no_grad():
        one = prior.params(batch["condition"][:1])
        before = prior.flow(torch.zeros(1, prior.latent_size), one.h)[1]
        prior.flow.transform._transforms[0].log_scale += 1.0  # F scales by e: log-det + L per code
        assert float(prior.flow(torch.zeros(1, prior.latent_size), one.h)[1] - before) == pytest.approx(prior.latent_size)
        n = 4000
        params = type(one)(one.mu.expand(n, -1), one.log_sigma.expand(n, -1), one.h.expand(n, -1))
        z = prior.sample(params, generator=torch.Generator().manual_seed(0))
        entropy = objective.prior_entropy({"params": params, "z": z})
        monte_carlo = -prior.log_prob(z, params)
    torch.testing.assert_close(entropy.mean(), monte_carlo.mean(), atol=0.05 * float(monte_carlo.std()), rtol=0)
    # The Gaussian's entropy alone would be off by the log-determinant (at least the scaling's L).
    torch.testing.assert_close(gaussian_entropy(params.log_sigma) - entropy,
                               prior.flow(z, params.h)[1], atol=1e-4, rtol=1e-5)
    assert float((gaussian_entropy(params.log_sigma) - entropy).abs().mean()) > 0.5 * prior.latent_size


def test_render_order_is_frames_by_views_with_the_head_pose_applied(tiny_capture):
    objective, _, _ = _objective(tiny_capture, "dam")
    data = TrainingData(Capture(tiny_capture), tiny_config("dam"), False)
    cap = Capture(tiny_capture)
    refs = cap.frames()[:2]
    cams = [[cap.camera_names[0], cap.camera_names[1]], [cap.camera_names[2], cap.camera_names[0]]]
    batch = data.collate(refs, cams)
    z = torch.randn(2, objective.model.config.dam.latent)
    with torch.no_grad():
        out = objective.render(z, batch)
        dec = objective.model.decoder
        for b, ref in enumerate(refs):
            local = dec.decode_geometry(z[b:b + 1]) * objective.avatar.vert_std + objective.avatar.vert_mean
            R, t = cap.head_pose(ref.segment, ref.frame)  # head-local -> world, from the file
            world = local @ R.T + t
            for v, cam in enumerate(cams[b]):
                K, Rc, tc = cap.camera_tensors(cam)
                view = cap.view_vector(ref.segment, ref.frame, cam)
                tex = dec.decode_texture(z[b:b + 1], view[None]) * objective.avatar.tex_std + objective.avatar.tex_mean
                one = render_textured(world, objective.avatar.faces, objective.avatar.verts_uvs, objective.avatar.faces_uvs, tex, K[None],
                                      Rc[None], tc[None], objective.image_size, backend="bbox",
                                      background=objective.avatar.background,
                                      antialias=objective.antialias)  # training's default: off
                torch.testing.assert_close(out["image"][b, v], one.image[0], atol=1e-5, rtol=1e-5)
    assert not torch.allclose(out["image"][0, 0], out["image"][1, 1])  # different frames and cameras


def test_image_loss_counts_the_masked_pixels_only(tiny_capture):
    objective, batch, config = _objective(tiny_capture, "dam")
    batch = dict(batch, noise=torch.zeros_like(batch["noise"]))
    with torch.no_grad():
        base = objective(batch)
        r = objective.render(objective.codes(batch)["z"], batch)["image"]
        mask = batch["mask"]
        err = ((r - batch["photo"]) / objective.avatar.tex_std) ** 2 * mask
        expected = (err.sum((2, 3, 4)) / (3 * mask.sum((2, 3, 4)))).sum(1).mean()
        torch.testing.assert_close(base["image"], expected)
        outside = dict(batch, photo=torch.where(mask > 0, batch["photo"], 1 - batch["photo"]))
        torch.testing.assert_close(objective(outside)["image"], base["image"])
        inside = dict(batch, photo=torch.where(mask > 0, 1 - batch["photo"], batch["photo"]))
        assert float(objective(inside)["image"]) > 1.5 * float(base["image"])
