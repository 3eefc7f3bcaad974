"""The LiP-Flow model variants (LiP-Flow, supplementary Fig. 4 and Table 6) as modules: encoder Q,
decoder D and prior of each. The variants themselves (names, priors, latent terms and
their weights, entropy penalty) are listed in :mod:`avatarfit.models.catalog`.

The prior encoder P sees HMC views (``condition: hmc``) or keypoints (``kpt``).
"""

from __future__ import annotations

import torch
from torch import nn

from .catalog import VARIANTS, Variant
from .config import ModelConfig
from .dam import DamDecoder, DamEncoder
from .flow import LatentFlow
from .hmc_encoder import HmcEncoder
from .kpt_encoder import KptEncoder
from .priors import ConditionalFlowPrior, ConditionalGaussianPrior, FlowPrior, Prior, StandardNormalPrior

__all__ = ["Variant", "VARIANTS", "AvatarModel", "build_model"]


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
