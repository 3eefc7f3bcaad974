"""Model settings (dataclasses read from the ``model:`` section of a training config)."""

from __future__ import annotations

from dataclasses import dataclass, field

from .catalog import VARIANTS

__all__ = ["DamConfig", "HmcEncoderConfig", "KptEncoderConfig", "FlowConfig", "ModelConfig"]


def _positive(obj, *names: str) -> None:
    for name in names:
        value = getattr(obj, name)
        if isinstance(value, tuple):
            if not value or any(v < 1 for v in value):
                raise ValueError(f"{type(obj).__name__}.{name}: expected positive integers, got {value}")
        elif value < 1:
            raise ValueError(f"{type(obj).__name__}.{name}: expected a positive integer, got {value}")


@dataclass(frozen=True)
class DamConfig:
    """Deep Appearance Model sizes.

    Attributes:
        latent: size of z (paper: 256).
        texture_size: T of the decoded texture (paper: 1024); the capture's textures are
            resized to it. A power of two >= 2 ** len(channels) * 4.
        channels: convolution channels of the texture encoder, finest first; the decoder
            mirrors them.
        geometry_hidden: hidden units of the geometry branches.
        view_features: size of the view-vector embedding the texture decoder sees.
    """

    latent: int = 64
    texture_size: int = 128
    channels: tuple[int, ...] = (16, 32, 64, 64, 64)
    geometry_hidden: int = 256
    view_features: int = 8

    def __post_init__(self) -> None:
        _positive(self, "latent", "texture_size", "channels", "geometry_hidden", "view_features")
        bottom = self.texture_size >> len(self.channels)
        if self.texture_size & (self.texture_size - 1) or bottom < 2:
            raise ValueError(f"DamConfig.texture_size: expected a power of two of at least {4 << len(self.channels)} "
                             f"for {len(self.channels)} conv layers, got {self.texture_size}")


@dataclass(frozen=True)
class HmcEncoderConfig:
    """HMC prior encoder (design section 5).

    Attributes:
        input_size: ``(H, W)`` the three views are resized to (paper: 480x640).
        channels: channels of each view's conv block (conv k4 s2 + LeakyReLU(0.2)).
        features: size of the context h (paper: 1024).
        normalise: ``none`` (views in [0, 1] mapped to [-1, 1]) or ``image`` (each view
            minus its mean, divided by its standard deviation: blind to the headset's gain
            and background level).
        head: ``flatten`` (the last feature map flattened into a linear layer, as the paper
            reshapes it) or ``pool`` (its global average: features that tolerate a shift).
    """

    input_size: tuple[int, int] = (60, 80)
    channels: tuple[int, ...] = (16, 32, 64, 64)
    features: int = 128
    normalise: str = "none"
    head: str = "flatten"

    def __post_init__(self) -> None:
        _positive(self, "input_size", "channels", "features")
        if self.normalise not in ("none", "image"):
            raise ValueError(f"HmcEncoderConfig.normalise: expected 'none' or 'image', got {self.normalise!r}")
        if self.head not in ("flatten", "pool"):
            raise ValueError(f"HmcEncoderConfig.head: expected 'flatten' or 'pool', got {self.head!r}")
        if min(self.input_size) >> len(self.channels) < 1:
            raise ValueError(f"HmcEncoderConfig.input_size: {self.input_size} is too small for "
                             f"{len(self.channels)} stride-2 layers")


@dataclass(frozen=True)
class KptEncoderConfig:
    """Keypoint prior encoder: 274x2 -> dense -> residual blocks -> dense -> h.

    Attributes:
        hidden: width of the residual blocks (paper: 512).
        blocks: residual blocks (paper: 4).
        features: size of the context h (paper: 1024).
        dropout: dropout probability inside the blocks.
        normalise: ``none`` (the keypoints as observed, in [-1, 1] of the image) or
            ``eyes`` (translation, roll and scale of the head removed by the eyes' frame,
            :func:`~avatarfit.models.kpt_encoder.align_keypoints`).
    """

    hidden: int = 256
    blocks: int = 4
    features: int = 128
    dropout: float = 0.1
    normalise: str = "none"

    def __post_init__(self) -> None:
        _positive(self, "hidden", "blocks", "features")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"KptEncoderConfig.dropout: expected a value in [0, 1), got {self.dropout}")
        if self.normalise not in ("none", "eyes"):
            raise ValueError(f"KptEncoderConfig.normalise: expected 'none' or 'eyes', got {self.normalise!r}")


@dataclass(frozen=True)
class FlowConfig:
    """Latent normalizing flow (LiP-Flow, supplementary Table 10, in nflows' terms).

    Attributes:
        layers: steps of ActNorm -> LULinear -> AdditiveCoupling (paper: 4).
        hidden: hidden features of each coupling's residual net (paper: 1024).
        blocks_per_layer: residual blocks per coupling net (paper: 2).
        batch_norm: batch norm within the coupling nets (paper: True).
        dropout: dropout probability (paper: 0).
    """

    layers: int = 4
    hidden: int = 128
    blocks_per_layer: int = 2
    batch_norm: bool = True
    dropout: float = 0.0

    def __post_init__(self) -> None:
        _positive(self, "layers", "hidden", "blocks_per_layer")


@dataclass(frozen=True)
class ModelConfig:
    """Which variant, conditioned on what, at which sizes.

    Attributes:
        variant: ``dam``, ``dam_flow``, ``dam_hmc_enc``, ``dam_hmc_reg``, ``lip_kl`` or
            ``lip_flow`` (see :data:`avatarfit.models.catalog.VARIANTS`).
        condition: ``hmc`` (three HMC views) or ``kpt`` (274 keypoints): the observation
            the prior encoder sees; DAM and DAM-Flow have no prior encoder and ignore it.
        dam, hmc, kpt, flow: sizes of the parts.
    """

    variant: str = "dam"
    condition: str = "hmc"
    dam: DamConfig = field(default_factory=DamConfig)
    hmc: HmcEncoderConfig = field(default_factory=HmcEncoderConfig)
    kpt: KptEncoderConfig = field(default_factory=KptEncoderConfig)
    flow: FlowConfig = field(default_factory=FlowConfig)

    def __post_init__(self) -> None:
        if self.variant not in VARIANTS:
            raise ValueError(f"model.variant: expected one of {sorted(VARIANTS)}, got {self.variant!r}")
        if self.condition not in ("hmc", "kpt"):
            raise ValueError(f"model.condition: expected 'hmc' or 'kpt', got {self.condition!r}")
