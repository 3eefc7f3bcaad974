"""What a trained prior has learned: samples of the predicted priors N(mu_p, sigma_p) for a
set of observations, in the prior's space P and mapped into the decoder's space Q with the
flow's inverse (LiP-Flow, supplementary Fig. 11), their per-input variance and a 2-D PCA of both spaces.

Per-input variance is the mean over the L dimensions of the per-dimension variance of an
input's samples (``trace(Cov) / L``); in P its analytical value is ``mean(sigma_p^2)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..avatar import Avatar

__all__ = ["LatentSamples", "sample_latents", "pca_2d"]


@dataclass(frozen=True)
class LatentSamples:
    """Samples of the prior of N inputs.

    Attributes:
        names: N input labels (``segment/frame``).
        p: ``(N, S, L)`` samples in the prior's space (for priors without a flow, P = Q).
        q: ``(N, S, L)`` the same samples in the decoder's space (``F^-1`` of ``p``).
        var_p, var_q: ``(N,)`` per-input sample variance in each space.
        var_p_analytic: ``(N,)`` ``mean(sigma_p^2)`` of each input's predicted prior.
        conditional: whether the prior depends on the inputs (else every input samples the
            same unconditional prior).
    """

    names: tuple[str, ...]
    p: torch.Tensor
    q: torch.Tensor
    var_p: torch.Tensor
    var_q: torch.Tensor
    var_p_analytic: torch.Tensor
    conditional: bool

    @property
    def inputs(self) -> int:
        return len(self.names)

    @property
    def samples(self) -> int:
        return int(self.p.shape[1])


def _variance(x: torch.Tensor) -> torch.Tensor:
    """``(N, S, L)`` -> ``(N,)``: mean over dimensions of the unbiased per-dimension variance."""
    return x.var(dim=1, unbiased=True).mean(-1)


@torch.no_grad()
def sample_latents(avatar: Avatar, observation: torch.Tensor | None, names: tuple[str, ...] | list[str],
                   samples: int = 100, seed: int = 0) -> LatentSamples:
    """Draw ``samples`` codes from the avatar's prior for each input.

    Args:
        avatar: the trained avatar.
        observation: the prior encoder's inputs, ``(N, 3, 1, h, w)`` HMC views or ``(N, 274, 2)``
            normalised keypoints; ``None`` for unconditional avatars (DAM, DAM-Flow).
        names: N labels.
        samples: S >= 2 per input.
        seed: seed of the Gaussian noise.

    Returns:
        :class:`LatentSamples`.
    """
    names = tuple(names)
    N = len(names)
    if samples < 2:
        raise ValueError(f"samples: expected at least 2 per input (a variance needs two), got {samples}")
    if N < 1:
        raise ValueError("names: no inputs to sample")
    prior = avatar.model.prior
    if avatar.conditional and (observation is None or observation.shape[0] != N):
        found = None if observation is None else tuple(observation.shape)
        raise ValueError(f"observation: the {avatar.variant} prior needs one observation per input ({N}), "
                         f"got {found}")
    _, params = avatar.prior_mean(observation if avatar.conditional else None, batch=N)
    gen = torch.Generator().manual_seed(seed)
    eps = torch.randn((N, samples, avatar.latent_size), generator=gen).to(params.mu)
    p = params.mu[:, None] + params.sigma[:, None] * eps
    if prior.flow is None:
        q = p
    else:
        h = None if params.h is None else params.h.repeat_interleave(samples, 0)
        q = prior.flow.inverse(p.flatten(0, 1), h)[0].view(N, samples, -1)
    return LatentSamples(names=names, p=p.cpu(), q=q.cpu(), var_p=_variance(p).cpu(), var_q=_variance(q).cpu(),
                         var_p_analytic=(params.sigma ** 2).mean(-1).cpu(), conditional=avatar.conditional)


def pca_2d(x: torch.Tensor) -> torch.Tensor:
    """The first two principal components of points ``(M, L)``: ``(M, 2)``."""
    if x.ndim != 2 or x.shape[0] < 2:
        raise ValueError(f"x: expected at least two points (M, L), got {tuple(x.shape)}")
    centred = x - x.mean(0, keepdim=True)
    _, _, v = torch.linalg.svd(centred.double(), full_matrices=False)
    return (centred.double() @ v[:2].T).to(x.dtype)
