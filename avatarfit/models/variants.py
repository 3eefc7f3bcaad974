"""The LiP-Flow model variants (seed 003, Fig. 4 and Table 6) as one module each.

=============== ========================= ============= =============================== =========
name            paper                     encoder Q     prior                            lambda_L
=============== ========================= ============= =============================== =========
``dam``         (a) DAM                   yes           N(0, I), KL term                 0.01
``dam_flow``    DAM-Flow                  yes           unconditional flow, -log p       5e-4
``dam_hmc_enc`` (b) DAM-HMC-Enc           no (P is)     N(0, I) on P's output, KL term   1
``dam_hmc_reg`` (c) DAM-HMC-Reg           pretrained    P regresses a DAM's mu_q, -log N 1
``lip_kl``      (d) LiP-KL                yes           N(mu_p, sigma_p), KL(q || p)     1
``lip_flow``    (e) LiP-Flow              yes           conditional flow, -log p         5e-4
=============== ========================= ============= =============================== =========

The prior encoder P sees HMC views (``condition: hmc``) or keypoints (``kpt``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .config import ModelConfig
from .dam import DamDecoder, DamEncoder
from .flow import LatentFlow
from .hmc_encoder import HmcEncoder
from .kpt_encoder import KptEncoder
from .priors import ConditionalFlowPrior, ConditionalGaussianPrior, FlowPrior, Prior, StandardNormalPrior

__all__ = ["Variant", "VARIANTS", "AvatarModel", "build_model"]


@dataclass(frozen=True)
class Variant:
    """What a variant is made of and how its latent term is computed.

    Attributes:
        name: config name.
        title: the paper's name.
        q_encoder: has a DAM encoder Q (the decoder's latent space is Q's).
        prior: ``normal``, ``flow``, ``gaussian`` or ``cond_flow``.
        latent_loss: ``kl_normal`` (KL(q || N(0, I))), ``nll`` (-log p(z_q)),
            ``kl_p_normal`` (KL(N(mu_p, sigma_p) || N(0, I))), ``regress``
            (-log N(mu_q; mu_p, sigma_p) against a frozen pretrained DAM), ``kl_q_p``.
        lambda_latent: the paper's weight of the latent term.
        pretrained: starts from a trained DAM whose encoder and decoder stay frozen.
    """

    name: str
    title: str
    q_encoder: bool
    prior: str
    latent_loss: str
    lambda_latent: float
    pretrained: bool = False

    @property
    def conditional(self) -> bool:
        return self.prior in ("gaussian", "cond_flow")


VARIANTS: dict[str, Variant] = {
    v.name: v
    for v in (
        Variant("dam", "DAM", True, "normal", "kl_normal", 0.01),
        Variant("dam_flow", "DAM-Flow", True, "flow", "nll", 5e-4),
        Variant("dam_hmc_enc", "DAM-HMC-Enc", False, "gaussian", "kl_p_normal", 1.0),
        Variant("dam_hmc_reg", "DAM-HMC-Reg", True, "gaussian", "regress", 1.0, pretrained=True),
        Variant("lip_kl", "LiP-KL", True, "gaussian", "kl_q_p", 1.0),
        Variant("lip_flow", "LiP-Flow", True, "cond_flow", "nll", 5e-4),
    )
}


class AvatarModel(nn.Module):
    """Encoder Q (if any), decoder D and prior of one variant.

    Args:
        config: the model config (variant, condition, sizes).
        num_verts: V of the capture's topology.

    Attributes:
        encoder: :class:`DamEncoder` or ``None``.
        decoder: :class:`DamDecoder`.
        prior: a :class:`~avatarfit.models.priors.Prior`.
    """

    def __init__(self, config: ModelConfig, num_verts: int) -> None:
        super().__init__()
        self.config = config
        self.variant = VARIANTS[config.variant]
        self.num_verts = num_verts
        L = config.dam.latent
        self.encoder = DamEncoder(config.dam, num_verts) if self.variant.q_encoder else None
        self.decoder = DamDecoder(config.dam, num_verts)
        self.prior = self._make_prior(L)

    def _make_prior(self, L: int) -> Prior:
        kind = self.variant.prior
        if kind == "normal":
            return StandardNormalPrior(L)
        if kind == "flow":
            return FlowPrior(L, LatentFlow(L, self.config.flow))
        if self.config.condition == "hmc":
            encoder: nn.Module = HmcEncoder(self.config.hmc, L)
            context = self.config.hmc.features
        else:
            encoder = KptEncoder(self.config.kpt, L)
            context = self.config.kpt.features
        if kind == "gaussian":
            return ConditionalGaussianPrior(L, encoder)
        return ConditionalFlowPrior(L, encoder, LatentFlow(L, self.config.flow, context=context))

    @property
    def conditional(self) -> bool:
        return self.variant.conditional

    def freeze_dam(self) -> None:
        """Stop gradients into Q and D (DAM-HMC-Reg trains only the prior encoder)."""
        for module in (self.encoder, self.decoder):
            if module is not None:
                module.requires_grad_(False)
                module.eval()

    def train(self, mode: bool = True) -> "AvatarModel":
        super().train(mode)
        if self.variant.pretrained:  # frozen parts stay in eval mode
            for module in (self.encoder, self.decoder):
                if module is not None:
                    module.eval()
        return self

    def dam_state_dict(self) -> dict[str, torch.Tensor]:
        """Parameters of Q and D only (what DAM-HMC-Reg loads from a trained DAM)."""
        return {k: v for k, v in self.state_dict().items() if k.startswith(("encoder.", "decoder."))}


def build_model(config: ModelConfig, num_verts: int) -> AvatarModel:
    """The model of ``config.variant`` for a topology of ``num_verts`` vertices."""
    if num_verts < 3:
        raise ValueError(f"num_verts: expected at least 3, got {num_verts}")
    return AvatarModel(config, num_verts)
