"""Latent normalizing flow F (nflows): Glow-style steps for 1-D latents.

Each step is ``ActNorm -> LULinear -> AdditiveCouplingTransform`` whose coupling net is a
residual net, conditioned on the context h when there is one (LiP-Flow, supplementary Table 10).
Additive coupling is volume preserving; the paper found affine coupling often fails
to converge. ActNorm initialises itself from the first training batch it sees, and
batch norm makes training and evaluation outputs differ: invert in eval mode.
"""

from __future__ import annotations

import torch
from torch import nn

from .._checks import check_shape
from .config import FlowConfig

__all__ = ["LatentFlow"]


class LatentFlow(nn.Module):
    """``F(z_q; h) -> z_p`` with its log |det dF/dz_q|.

    Args:
        features: latent size L.
        config: depth and coupling-net sizes.
        context: size of h, or ``None`` for an unconditional flow (DAM-Flow).
    """

    def __init__(self, features: int, config: FlowConfig, context: int | None = None) -> None:
        super().__init__()
        from nflows.nn.nets import ResidualNet
        from nflows.transforms import (ActNorm, AdditiveCouplingTransform, CompositeTransform, LULinear)

        if features < 2:
            raise ValueError(f"features: a coupling flow needs at least 2 latent dimensions, got {features}")
        self.features = features
        self.context = context

        def net(in_features: int, out_features: int) -> nn.Module:
            return ResidualNet(in_features, out_features, hidden_features=config.hidden, context_features=context,
                               num_blocks=config.blocks_per_layer, activation=nn.functional.relu,
                               dropout_probability=config.dropout, use_batch_norm=config.batch_norm)

        steps = []
        for i in range(config.layers):
            mask = torch.arange(features) % 2 == i % 2  # alternate which half is transformed
            steps += [ActNorm(features), LULinear(features, identity_init=True),
                      AdditiveCouplingTransform(mask.int() * 2 - 1, net)]
        self.transform = CompositeTransform(steps)

    def _check(self, z: torch.Tensor, h: torch.Tensor | None) -> None:
        check_shape("z", z, (None, self.features))
        if self.context is None:
            if h is not None:
                raise ValueError("h: this flow is unconditional; pass h=None")
        else:
            if h is None:
                raise ValueError(f"h: this flow is conditional; expected a context of shape (B, {self.context})")
            check_shape("h", h, (z.shape[0], self.context))

    def forward(self, z: torch.Tensor, h: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``z_q (B, L)``, ``h (B, D)`` -> ``z_p (B, L)``, ``logabsdet (B,)``."""
        self._check(z, h)
        return self.transform(z, context=h)

    def inverse(self, z: torch.Tensor, h: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``z_p (B, L)``, ``h (B, D)`` -> ``z_q (B, L)``, ``logabsdet (B,)`` of the inverse."""
        import warnings

        self._check(z, h)
        with warnings.catch_warnings():  # nflows' LULinear uses the deprecated torch.triangular_solve
            warnings.filterwarnings("ignore", message="torch.triangular_solve is deprecated")
            return self.transform.inverse(z, context=h)
