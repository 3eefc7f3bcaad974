"""The training objective of every variant, as one module (so DDP sees one forward).

``L = sum_v lambda_I L_I + lambda_G L_G + lambda_L L_L [+ lambda_E H(p(z_q | observation))]``

- L_I: squared error between the rendering of the decoded avatar and the photo, over
  the face pixels (the tracked mesh's mask), in units of the texture standard
  deviation; summed over the frame's views, averaged over frames;
- L_G: squared error of the decoded normalised vertices;
- L_L: the variant's latent term (see :mod:`avatarfit.models.catalog`), and H the
  entropy of the predicted prior in the decoder's latent space (keypoint setting; see
  :meth:`Objective.prior_entropy`). Both are sums over the L latent
  dimensions per frame, averaged over frames, and with ``loss.latent_reduction: mean``
  also divided by L (see :class:`~avatarfit.train.config.LossConfig`).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..models.priors import PriorParams, gaussian_log_prob
from ..models.variants import AvatarModel
from .config import TrainConfig
from .data import TrainingData

__all__ = ["Objective", "kl_normal", "kl_gaussians", "gaussian_entropy"]


def kl_normal(mu: torch.Tensor, log_sigma: torch.Tensor) -> torch.Tensor:
    """``KL(N(mu, sigma) || N(0, I))`` summed over the last dimension: ``(B, L)`` -> ``(B,)``."""
    return 0.5 * (torch.exp(2 * log_sigma) + mu ** 2 - 1.0 - 2 * log_sigma).sum(-1)


def kl_gaussians(mu_q, log_sigma_q, mu_p, log_sigma_p, beta: float = 0.0) -> torch.Tensor:
    """``KL(N(mu_q, sigma_q) || N(mu_p, sigma_p))`` summed over the last dimension: ``(B,)``
    (``beta`` > 0: each dimension weighted by ``sigma_p^(2 beta)`` held constant, as in
    :func:`~avatarfit.models.priors.gaussian_log_prob`)."""
    var_ratio = torch.exp(2 * (log_sigma_q - log_sigma_p))
    per = log_sigma_p - log_sigma_q + 0.5 * (var_ratio + ((mu_q - mu_p) * torch.exp(-log_sigma_p)) ** 2) - 0.5
    if beta:
        per = per * torch.exp(2 * beta * log_sigma_p).detach()
    return per.sum(-1)


def gaussian_entropy(log_sigma: torch.Tensor) -> torch.Tensor:
    """Entropy of ``N(mu, diag(sigma^2))``, ``sum(log sigma) + L/2 log(2 pi e)``: ``(B, L)`` -> ``(B,)``."""
    return log_sigma.sum(-1) + 0.5 * log_sigma.shape[-1] * (1.0 + math.log(2 * math.pi))


class Objective(nn.Module):
    """Loss terms of a batch (see :meth:`TrainingData.collate` for its keys).

    Args:
        model: the variant.
        data: the capture's constants (normalisation, topology, image size, background).
        config: loss weights and rasteriser.
    """

    def __init__(self, model: AvatarModel, data: TrainingData, config: TrainConfig) -> None:
        super().__init__()
        self.model = model
        self.variant = model.variant
        #: Decoding and rendering, shared with fitting and evaluation.
        self.avatar = data.avatar(model, keypoints=False)
        self.tex_std = data.tex_std
        self.image_size = data.image_size
        self.antialias = bool(config.train.antialias)
        self.w_image = config.loss.image
        self.w_geometry = config.loss.geometry
        self.w_latent = config.lambda_latent
        self.w_entropy = config.lambda_entropy
        self.beta = float(config.loss.latent_beta)
        # Latent terms are sums over the L dimensions; "mean" divides them by L.
        self.latent_scale = 1.0 / model.config.dam.latent if config.latent_reduction == "mean" else 1.0

    def codes(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor | PriorParams | None]:
        """Encoder and prior outputs and the code z to decode (``z = mu + sigma * noise``)."""
        model, v = self.model, self.variant
        out: dict = {"mu_q": None, "log_sigma_q": None}
        if model.encoder is not None:
            if v.pretrained:
                with torch.no_grad():
                    mu_q, ls_q = model.encoder(batch["texture"], batch["verts"])
            else:
                mu_q, ls_q = model.encoder(batch["texture"], batch["verts"])
            out.update(mu_q=mu_q, log_sigma_q=ls_q)
        B = batch["texture"].shape[0]
        params = model.prior.params(batch["condition"]) if model.conditional else model.prior.params(batch=B)
        out["params"] = params
        noise = batch["noise"]
        if v.q_encoder and not v.pretrained:
            out["z"] = out["mu_q"] + torch.exp(out["log_sigma_q"]) * noise
        else:  # the prior encoder is the encoder (DAM-HMC-Enc), or DAM-HMC-Reg decodes its mean
            out["z"] = params.mu + params.sigma * noise
        if model.prior.flow is not None:  # F(z_q; h) and its log-determinant, once per step
            out["flow"] = model.prior.flow(out["z"], params.h)
        return out

    def latent_term(self, c: dict) -> torch.Tensor:
        """The variant's L_L: per frame a sum over latent dimensions (times
        :attr:`latent_scale`), averaged over the batch. Gradient paths: ``regress`` does not
        reach the (frozen) encoder Q; every other term reaches what it is computed from."""
        kind = self.variant.latent_loss
        params: PriorParams = c["params"]
        beta = self.beta
        if kind == "kl_normal":
            per = kl_normal(c["mu_q"], c["log_sigma_q"])
        elif kind == "nll":
            # Not beta-weighted: the flow's log-determinant is not, and down-weighting the
            # density against it lets the flow expand without bound (measured: the prior
            # mean mapped back through F^-1 exploded within 1000 steps).
            per = -self.model.prior.log_prob(c["z"], params, flowed=c.get("flow"))
        elif kind == "kl_p_normal":
            per = kl_normal(params.mu, params.log_sigma)
        elif kind == "regress":
            per = -gaussian_log_prob(c["mu_q"].detach(), params.mu, params.log_sigma, beta)
        elif kind == "kl_q_p":
            per = kl_gaussians(c["mu_q"], c["log_sigma_q"], params.mu, params.log_sigma, beta)
        else:
            raise ValueError(f"latent_loss: unknown kind {kind!r}")
        return per.mean() * self.latent_scale

    def prior_entropy(self, c: dict) -> torch.Tensor:
        """Entropy of the prior in the decoder's latent space, per frame: ``(B,)``.

        ``c`` is :meth:`codes`' output: ``params`` (``mu``, ``log_sigma (B, L)``, ``h (B, D)``)
        and, for a flow prior, ``flow`` = ``(F(z), log |det dF/dz_q| (B,))`` at the codes
        ``z (B, L)``. For a Gaussian prior this is ``H(N(mu_p, sigma_p))``. A conditional
        flow's prior is ``N(mu_p, sigma_p)`` pushed through ``F^-1``, whose entropy is
        ``H(N(mu_p, sigma_p)) - E[log |det dF/dz_q|]``: the flows here (ActNorm, LU-linear,
        additive coupling) have a log-determinant that depends on neither z nor h, so the
        one at the frame's code is the expectation. Penalising the Gaussian's entropy alone
        would reward the flow for shrinking its output space: a factor s on F costs nothing
        in -log p (sigma_p and the log-determinant move together) but lowers H(N) by L log s
        without bound.
        """
        params: PriorParams = c["params"]
        entropy = gaussian_entropy(params.log_sigma)
        if self.model.prior.flow is not None:
            logdet = c["flow"][1] if "flow" in c else self.model.prior.flow(c["z"], params.h)[1]
            entropy = entropy - logdet
        return entropy

    def render(self, z: torch.Tensor, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Decode ``z (B, L)`` and render it in the batch's cameras (:meth:`Avatar.render_views`).

        Returns:
            ``verts (B, V, 3)`` normalised, ``image (B, C, 3, H, W)``.
        """
        out = self.avatar.render_views(z, batch["K"], batch["R"], batch["t"], self.image_size, batch["head_R"],
                                       batch["head_t"], batch["view"], antialias=self.antialias)
        return {"verts": out.verts, "image": out.image}

    def forward(self, batch: dict[str, torch.Tensor], renders: bool = False) -> dict[str, torch.Tensor]:
        """Loss terms (``loss`` is the total, all scalars), latent statistics (``stats/*``
        scalars, ``latent/*`` codes ``(B, L)``); with ``renders`` also the rendered images
        ``render (B, C, 3, H, W)`` and the decoded normalised vertices ``verts (B, V, 3)``."""
        c = self.codes(batch)
        zero = batch["texture"].new_zeros(())
        terms = {"image": zero, "geometry": zero, "entropy": zero}
        decode = renders or (self.variant.latent_loss != "regress" and (self.w_image > 0 or self.w_geometry > 0))
        out: dict[str, torch.Tensor] = {}
        if decode:
            r = self.render(c["z"], batch)
            mask = batch["mask"]
            err = (((r["image"] - batch["photo"]) / self.tex_std) ** 2 * mask).sum((2, 3, 4))
            terms["image"] = (err / (3 * mask.sum((2, 3, 4)).clamp_min(1))).sum(1).mean()
            terms["geometry"] = ((r["verts"] - batch["verts"]) ** 2).mean()
            if renders:
                out["render"] = r["image"]
                out["verts"] = r["verts"]
        terms["latent"] = self.latent_term(c)
        params: PriorParams = c["params"]
        if self.model.conditional:
            terms["entropy"] = self.prior_entropy(c).mean() * self.latent_scale
        total = self.w_latent * terms["latent"] + self.w_entropy * terms["entropy"]
        if self.variant.latent_loss != "regress":  # DAM-HMC-Reg's decoder is frozen: no image terms
            total = total + self.w_image * terms["image"] + self.w_geometry * terms["geometry"]
        out.update(loss=total, **terms)
        with torch.no_grad():
            if c["mu_q"] is not None:
                out["stats/mu_q_std"] = c["mu_q"].std(0).mean() if c["mu_q"].shape[0] > 1 else zero
                out["stats/sigma_q_mean"] = torch.exp(c["log_sigma_q"]).mean()
                out["latent/mu_q"] = c["mu_q"].detach()
            if self.model.conditional:
                out["stats/sigma_p_mean"] = params.sigma.mean()
                out["latent/mu_p"] = params.mu.detach()
        return out
