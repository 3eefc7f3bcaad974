"""Normalisation statistics: telling subjects apart by their mean meshes."""

import math

import pytest
import torch

from avatarfit.data.stats import identity_distance


def _head(seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(2000, 3, generator=g) * torch.tensor([70.0, 90.0, 65.0])


def test_identity_distance_ignores_a_rigid_move_and_expressions_but_not_another_shape():
    head = _head(0)
    th = math.radians(3.0)
    rot = torch.tensor([[math.cos(th), -math.sin(th), 0.0], [math.sin(th), math.cos(th), 0.0], [0.0, 0.0, 1.0]])
    moved = head @ rot.T + torch.tensor([4.0, -2.0, 1.0])
    moved[:300] += 8.0  # an expression: a minority of vertices moves a lot
    distance, tolerance = identity_distance(head, moved)
    assert distance < 0.1 * tolerance
    other = head + torch.randn(head.shape, generator=torch.Generator().manual_seed(1)) * 3.0
    distance, tolerance = identity_distance(head, other)
    assert distance > 3 * tolerance
    with pytest.raises(ValueError, match=r"expected two \(V, 3\) meshes"):
        identity_distance(head, head[:10])
