"""Latent priors: one interface for training, fitting and evaluation.

A prior is evaluated in two stages: :meth:`Prior.params` turns an observation (three HMC
views, 274 keypoints, or nothing) into :class:`PriorParams` (mu_p, sigma_p and the
context h); :meth:`Prior.log_prob` scores latent codes z_q of the decoder's space
under them, and :meth:`Prior.mean` / :meth:`Prior.sample` give codes in that space.

=============================  ============================================================
:class:`StandardNormalPrior`   N(0, I) (DAM)
:class:`FlowPrior`             N(F(z_q); 0, I) |det dF/dz_q| (DAM-Flow)
:class:`ConditionalGaussianPrior`  N(z_q; mu_p, sigma_p) from an encoder (LiP-KL, DAM-HMC-Enc/Reg)
:class:`ConditionalFlowPrior`  N(F(z_q; h); mu_p, sigma_p) |det dF/dz_q| (LiP-Flow)
=============================  ============================================================
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from .._checks import check_shape
from .flow import LatentFlow

__all__ = ["PriorParams", "Prior", "StandardNormalPrior", "FlowPrior", "ConditionalGaussianPrior",
           "ConditionalFlowPrior", "gaussian_log_prob"]

_LOG_2PI = math.log(2 * math.pi)


def gaussian_log_prob(z: torch.Tensor, mu: torch.Tensor, log_sigma: torch.Tensor, beta: float = 0.0) -> torch.Tensor:
    """``log N(z; mu, diag(sigma^2))`` summed over the last dimension: ``(B, L)`` -> ``(B,)``.

    ``beta`` > 0 weighs each dimension's term by ``sigma^(2 beta)``, held constant for the
    gradient (beta-NLL, Seitzer et al. 2022): the value at beta = 0 is the log-density; the
    weighting keeps a predicted sigma that grows from slowing the learning of mu by
    ``1 / sigma^2`` (with plain NLL a prior encoder can settle on one mean for every input
    and a large sigma). Training's regression term uses it; densities (a flow's -log p,
    fitting's L_L) use beta = 0.
    """
    per = -0.5 * ((z - mu) * torch.exp(-log_sigma)) ** 2 - log_sigma - 0.5 * _LOG_2PI
    if beta:
        per = per * torch.exp(2 * beta * log_sigma).detach()
    return per.sum(-1)


@dataclass(frozen=True)
class PriorParams:
    """Parameters of the prior for a batch.

    Attributes:
        mu: ``(B, L)`` mean of the Gaussian in the prior's space.
        log_sigma: ``(B, L)`` log standard deviation.
        h: ``(B, D)`` context of a conditional flow, else ``None``.
    """

    mu: torch.Tensor
    log_sigma: torch.Tensor
    h: torch.Tensor | None = None

    @property
    def sigma(self) -> torch.Tensor:
        return self.log_sigma.exp()

    @property
    def batch(self) -> int:
        return int(self.mu.shape[0])


class Prior(nn.Module):
    """Base class: a Gaussian N(mu, sigma) in the decoder's latent space, or, with a
    ``flow``, in the flow's output space (then ``log p`` adds the flow's log-det and
    :meth:`mean` / :meth:`sample` map back through its inverse). Subclasses implement
    :meth:`params`.

    Args:
        latent: L.
        flow: the latent flow F, or ``None``.
    """

    conditional: bool = False

    def __init__(self, latent: int, flow: LatentFlow | None = None) -> None:
        super().__init__()
        self.latent_size = latent
        self.flow = flow

    def params(self, observation: torch.Tensor | None = None, batch: int | None = None) -> PriorParams:
        """Prior parameters for ``observation`` (conditional priors) or for ``batch`` codes."""
        raise NotImplementedError

    def log_prob(self, z: torch.Tensor, params: PriorParams,
                 flowed: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        """``log p(z_q)``: ``(B, L)`` -> ``(B,)``. ``flowed``: ``(F(z), log |det dF/dz|)``,
        ``(B, L)`` and ``(B,)``, when the caller already ran the flow on ``z``."""
        check_shape("z", z, (params.batch, self.latent_size))
        if self.flow is None:
            return gaussian_log_prob(z, params.mu, params.log_sigma)
        zp, logdet = flowed if flowed is not None else self.flow(z, params.h)
        return gaussian_log_prob(zp, params.mu, params.log_sigma) + logdet

    def mean(self, params: PriorParams) -> torch.Tensor:
        """The prior's mean mapped into the decoder's latent space: ``(B, L)``."""
        return params.mu if self.flow is None else self.flow.inverse(params.mu, params.h)[0]

    def sample(self, params: PriorParams, generator: torch.Generator | None = None) -> torch.Tensor:
        """Samples in the decoder's latent space: ``(B, L)``."""
        eps = torch.randn(params.mu.shape, generator=generator, dtype=params.mu.dtype)
        zp = params.mu + params.sigma * eps.to(params.mu.device)
        return zp if self.flow is None else self.flow.inverse(zp, params.h)[0]


class _Unconditional(Prior):
    def __init__(self, latent: int, flow: LatentFlow | None = None) -> None:
        super().__init__(latent, flow)
        # Follows the module's device and dtype (``.to(...)``), so the parameters of an
        # unconditional prior live where the latents do; not saved in checkpoints.
        self.register_buffer("_anchor", torch.zeros(()), persistent=False)

    def params(self, observation: torch.Tensor | None = None, batch: int | None = None) -> PriorParams:
        if observation is not None:
            raise ValueError("observation: this prior is unconditional; pass batch=B instead")
        if batch is None or batch < 1:
            raise ValueError(f"batch: an unconditional prior needs the batch size, got {batch}")
        zeros = self._anchor.new_zeros(batch, self.latent_size)
        return PriorParams(zeros, zeros.clone())


class StandardNormalPrior(_Unconditional):
    """N(0, I) over the decoder's latent space (DAM)."""

    def __init__(self, latent: int) -> None:
        super().__init__(latent)


class FlowPrior(_Unconditional):
    """``log p(z_q) = log N(F(z_q); 0, I) + log |det dF/dz_q|``: an unconditional flow (DAM-Flow)."""

    def __init__(self, latent: int, flow: LatentFlow) -> None:
        super().__init__(latent, flow)


class ConditionalGaussianPrior(Prior):
    """N(mu_p, sigma_p) predicted by an encoder from the observation; the prior's space is
    the decoder's (LiP-KL, DAM-HMC-Enc, DAM-HMC-Reg).

    Args:
        latent: L.
        encoder: a module mapping the observation to ``(mu, log_sigma, h)``.
        flow: for :class:`ConditionalFlowPrior`.
    """

    conditional = True

    def __init__(self, latent: int, encoder: nn.Module, flow: LatentFlow | None = None) -> None:
        super().__init__(latent, flow)
        self.encoder = encoder

    def params(self, observation: torch.Tensor | None = None, batch: int | None = None) -> PriorParams:
        if observation is None:
            raise ValueError("observation: this prior is conditional; pass the HMC views or keypoints")
        mu, log_sigma, h = self.encoder(observation)
        return PriorParams(mu, log_sigma, h)


class ConditionalFlowPrior(ConditionalGaussianPrior):
    """LiP-Flow: ``log p(z_q) = log N(F(z_q; h); mu_p, sigma_p) + log |det dF/dz_q|``.

    Args:
        latent: L.
        encoder: observation -> ``(mu_p, log_sigma_p, h)``.
        flow: conditional :class:`LatentFlow` with context size ``h.shape[1]``.
    """

    def __init__(self, latent: int, encoder: nn.Module, flow: LatentFlow) -> None:
        super().__init__(latent, encoder, flow)
