import math

import pytest
import torch

from avatarfit.models import (ConditionalFlowPrior, ConditionalGaussianPrior, FlowConfig, FlowPrior, KptEncoder,
                              KptEncoderConfig, LatentFlow, StandardNormalPrior)

L = 6


def _kpt():
    return KptEncoder(KptEncoderConfig(hidden=16, blocks=1, features=8, dropout=0.0), L)


def _init(prior, obs=None):
    prior.train()
    with torch.no_grad():
        params = prior.params(obs) if obs is not None else prior.params(batch=32)
        prior.log_prob(torch.randn(params.batch, L), params)
    return prior.eval()


def test_standard_normal_matches_torch():
    prior = StandardNormalPrior(L)
    params = prior.params(batch=4)
    z = torch.randn(4, L)
    expected = torch.distributions.Normal(0.0, 1.0).log_prob(z).sum(-1)
    torch.testing.assert_close(prior.log_prob(z, params), expected)
    assert prior.sample(params, torch.Generator().manual_seed(0)).shape == (4, L)
    with pytest.raises(ValueError, match="unconditional"):
        prior.params(torch.zeros(4, 274, 2))


def test_conditional_gaussian_matches_torch():
    prior = _init(ConditionalGaussianPrior(L, _kpt()), torch.rand(32, 274, 2))
    obs = torch.rand(4, 274, 2)
    params = prior.params(obs)
    z = torch.randn(4, L)
    expected = torch.distributions.Normal(params.mu, params.sigma).log_prob(z).sum(-1)
    torch.testing.assert_close(prior.log_prob(z, params), expected)
    torch.testing.assert_close(prior.mean(params), params.mu)
    with pytest.raises(ValueError, match="conditional"):
        prior.params(None)


@pytest.mark.parametrize("conditional", [False, True])
def test_flow_priors_map_the_mean_and_use_change_of_variables(conditional):
    cfg = FlowConfig(layers=2, hidden=8)
    if conditional:
        prior = _init(ConditionalFlowPrior(L, _kpt(), LatentFlow(L, cfg, context=8)), torch.rand(32, 274, 2))
        params = prior.params(torch.rand(4, 274, 2))
    else:
        prior = _init(FlowPrior(L, LatentFlow(L, cfg)))
        params = prior.params(batch=4)
    mean = prior.mean(params)  # in Q's space: F(mean) is the Gaussian's mean
    zp, logdet = prior.flow(mean, params.h)
    torch.testing.assert_close(zp, params.mu, atol=1e-4, rtol=1e-4)
    z = torch.randn(4, L)
    zp, logdet = prior.flow(z, params.h)
    gauss = torch.distributions.Normal(params.mu, params.sigma).log_prob(zp).sum(-1)
    torch.testing.assert_close(prior.log_prob(z, params), gauss + logdet)
    # log|det| does not depend on z (ActNorm and LULinear are linear, couplings additive): the
    # density peaks at the mapped mean.
    assert (prior.log_prob(mean, params) >= prior.log_prob(mean + 0.5, params)).all()
    assert math.isfinite(float(prior.sample(params).detach().sum()))


def test_standard_normal_follows_the_device_and_dtype_of_the_module():
    prior = StandardNormalPrior(L)
    assert prior.state_dict() == {}  # nothing new in checkpoints
    params = prior.double().params(batch=3)
    assert params.mu.dtype == torch.float64 and params.log_sigma.dtype == torch.float64
    meta = StandardNormalPrior(L).to("meta")  # a device other than the CPU, without a GPU
    params = meta.params(batch=3)
    assert params.mu.device.type == "meta"
    assert meta.log_prob(torch.empty(3, L, device="meta"), params).shape == (3,)


def test_beta_nll_scales_each_dimensions_gradient_by_sigma_to_the_2_beta():
    from avatarfit.models.priors import gaussian_log_prob
    from avatarfit.train.objective import kl_gaussians

    z = torch.tensor([[1.0, -2.0]])
    mu = torch.zeros(1, 2, requires_grad=True)
    log_sigma = torch.log(torch.tensor([[2.0, 0.5]]))
    plain = gaussian_log_prob(z, mu, log_sigma)
    (g_plain,) = torch.autograd.grad(plain.sum(), mu)
    weighted = gaussian_log_prob(z, mu, log_sigma, beta=0.5)
    (g_beta,) = torch.autograd.grad(weighted.sum(), mu)
    torch.testing.assert_close(g_beta, g_plain * torch.tensor([[2.0, 0.5]]))  # sigma^(2 * 0.5)
    # A large sigma no longer shrinks its mean's gradient by 1 / sigma^2, only by 1 / sigma.
    torch.testing.assert_close(g_plain, torch.tensor([[1.0 / 4, -2.0 / 0.25]]))
    mu_q, ls_q = torch.zeros(1, 2), torch.zeros(1, 2)
    kl = kl_gaussians(mu_q, ls_q, mu.detach(), log_sigma, beta=0.5)
    per = kl_gaussians(mu_q[:, :1], ls_q[:, :1], mu[:, :1].detach(), log_sigma[:, :1]) * 2.0 + \
        kl_gaussians(mu_q[:, 1:], ls_q[:, 1:], mu[:, 1:].detach(), log_sigma[:, 1:]) * 0.5
    torch.testing.assert_close(kl, per)
