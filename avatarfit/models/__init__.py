"""Models: DAM encoder and decoder, HMC and keypoint prior encoders, latent flows, priors
and the LiP-Flow variants that combine them."""

from .config import DamConfig, FlowConfig, HmcEncoderConfig, KptEncoderConfig, ModelConfig
from .dam import DamDecoder, DamEncoder
from .flow import LatentFlow
from .hmc_encoder import HmcEncoder
from .kpt_encoder import KptEncoder
from .priors import ConditionalFlowPrior, ConditionalGaussianPrior, FlowPrior, Prior, PriorParams, StandardNormalPrior
from .variants import VARIANTS, AvatarModel, Variant, build_model

__all__ = [
    "AvatarModel", "ConditionalFlowPrior", "ConditionalGaussianPrior", "DamConfig", "DamDecoder", "DamEncoder",
    "FlowConfig", "FlowPrior", "HmcEncoder", "HmcEncoderConfig", "KptEncoder", "KptEncoderConfig", "LatentFlow",
    "ModelConfig", "Prior", "PriorParams", "StandardNormalPrior", "VARIANTS", "Variant", "build_model",
]
