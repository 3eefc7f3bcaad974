import math

import pytest
import torch

from avatarfit.eval.metrics import psnr


def test_psnr_known_value_and_mask():
    a = torch.zeros(1, 3, 4, 4)
    b = torch.full((1, 3, 4, 4), 0.1)
    assert psnr(a, b).item() == pytest.approx(20.0, abs=1e-4)
    mask = torch.zeros(1, 1, 4, 4)
    mask[..., :2, :] = 1
    b2 = b.clone()
    b2[..., 2:, :] = 1.0  # outside the mask: ignored
    assert psnr(a, b2, mask).item() == pytest.approx(20.0, abs=1e-4)
    assert psnr(a, b2).item() < 20 - 3 * math.log10(2)
    with pytest.raises(ValueError, match="mask: expected shape"):
        psnr(a, b, torch.ones(1, 3, 4, 4))
