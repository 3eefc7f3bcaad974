"""Deep Appearance Model (Lombardi et al. 2018) encoder Q and decoder D.

Q maps a frame's normalised average texture and normalised vertices to a Gaussian over z;
D maps z and the view vector (unit vector to the camera in the head frame) to
normalised vertices and a view-dependent normalised texture.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .._checks import check_shape
from ._checks import EqualizedLinear, conv_tower, log_sigma
from .config import DamConfig

__all__ = ["DamEncoder", "DamDecoder"]


class DamEncoder(nn.Module):
    """Q: ``texture (B, 3, T, T)``, ``verts (B, V, 3)`` -> ``mu, log_sigma (B, L)``.

    Args:
        config: sizes.
        num_verts: V.
    """

    def __init__(self, config: DamConfig, num_verts: int) -> None:
        super().__init__()
        self.config = config
        self.num_verts = num_verts
        self.texture = conv_tower(3, config.channels)
        bottom = config.texture_size >> len(config.channels)
        self.texture_fc = nn.Sequential(EqualizedLinear(config.channels[-1] * bottom * bottom, config.geometry_hidden),
                                        nn.LeakyReLU(0.2))
        self.geometry = nn.Sequential(EqualizedLinear(num_verts * 3, config.geometry_hidden), nn.LeakyReLU(0.2))
        self.head = nn.Linear(2 * config.geometry_hidden, 2 * config.latent)

    def forward(self, texture: torch.Tensor, verts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        T = self.config.texture_size
        check_shape("texture", texture, (None, 3, T, T))
        check_shape("verts", verts, (texture.shape[0], self.num_verts, 3))
        t = self.texture_fc(self.texture(texture).flatten(1))
        g = self.geometry(verts.flatten(1))
        mu, raw = self.head(torch.cat([t, g], 1)).chunk(2, dim=1)
        return mu, log_sigma(raw)


class DamDecoder(nn.Module):
    """D: ``z (B, L)`` -> ``verts (B, V, 3)``; ``z (B, L)``, ``view (B, 3)`` -> ``texture (B, 3, T, T)``.

    Geometry does not depend on the view; the texture does (DAM's view conditioning).

    Args:
        config: sizes.
        num_verts: V.
    """

    def __init__(self, config: DamConfig, num_verts: int) -> None:
        super().__init__()
        self.config = config
        self.num_verts = num_verts
        L, Hg = config.latent, config.geometry_hidden
        self.geometry = nn.Sequential(nn.Linear(L, Hg), nn.LeakyReLU(0.2), nn.Linear(Hg, num_verts * 3))
        self.view = nn.Sequential(nn.Linear(3, config.view_features), nn.LeakyReLU(0.2))
        chans = tuple(reversed(config.channels))
        self.bottom = config.texture_size >> len(chans)
        self.texture_fc = nn.Sequential(nn.Linear(L + config.view_features, chans[0] * self.bottom ** 2),
                                        nn.LeakyReLU(0.2))
        layers: list[nn.Module] = []
        for c_in, c_out in zip(chans, chans[1:]):
            layers += [nn.ConvTranspose2d(c_in, c_out, 4, 2, 1), nn.LeakyReLU(0.2)]
        layers.append(nn.ConvTranspose2d(chans[-1], 3, 4, 2, 1))
        self.texture = nn.Sequential(*layers)

    def decode_geometry(self, z: torch.Tensor) -> torch.Tensor:
        """``z (B, L)`` -> normalised vertices ``(B, V, 3)``."""
        check_shape("z", z, (None, self.config.latent))
        return self.geometry(z).view(z.shape[0], self.num_verts, 3)

    def decode_texture(self, z: torch.Tensor, view: torch.Tensor) -> torch.Tensor:
        """``z (B, L)``, unit ``view (B, 3)`` -> normalised texture ``(B, 3, T, T)``."""
        check_shape("z", z, (None, self.config.latent))
        check_shape("view", view, (z.shape[0], 3))
        x = self.texture_fc(torch.cat([z, self.view(view)], 1))
        x = x.view(z.shape[0], -1, self.bottom, self.bottom)
        return self.texture(x)

    def decode_texture_views(self, z: torch.Tensor, views: torch.Tensor,
                             channel_weights: torch.Tensor | None = None) -> torch.Tensor:
        """Textures of each code for several view directions: ``z (B, L)``, unit ``views
        (B, C, 3)`` -> normalised textures ``(B * C, 3, T, T)``, frames by views.

        Equals :meth:`decode_texture` of ``z`` repeated C times; the latent part of the
        first layer is computed once per code instead of once per view. With
        ``channel_weights (3,)`` (summing to 1) it returns the one-channel weighted sum
        ``(B * C, 1, T, T)``, folded into the last layer's weights (exact: it is linear).
        """
        check_shape("z", z, (None, self.config.latent))
        check_shape("views", views, (z.shape[0], None, 3))
        B, C = views.shape[:2]
        L = self.config.latent
        fc = self.texture_fc[0]
        from_z = F.linear(z, fc.weight[:, :L], fc.bias)  # (B, O)
        from_view = F.linear(self.view(views.reshape(B * C, 3)), fc.weight[:, L:])  # (B * C, O)
        x = self.texture_fc[1]((from_z.unsqueeze(1) + from_view.view(B, C, -1)).flatten(0, 1))
        x = x.view(B * C, -1, self.bottom, self.bottom)
        if channel_weights is None:
            return self.texture(x)
        check_shape("channel_weights", channel_weights, (3,))
        *body, last = self.texture
        for layer in body:
            x = layer(x)
        w = channel_weights.to(last.weight)
        weight = (last.weight * w.view(1, 3, 1, 1)).sum(1, keepdim=True)  # (in, 1, k, k)
        bias = (last.bias * w).sum().reshape(1)
        return F.conv_transpose2d(x, weight, bias, last.stride, last.padding, last.output_padding, last.groups,
                                  last.dilation)

    def forward(self, z: torch.Tensor, view: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Both outputs: ``verts (B, V, 3)`` and ``texture (B, 3, T, T)``."""
        return self.decode_geometry(z), self.decode_texture(z, view)
