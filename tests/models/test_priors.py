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
