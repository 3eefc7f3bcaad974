import math

import pytest
import torch

from avatarfit.eval.metrics import psnr, ssim


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


def test_ssim_mask_averages_the_map_over_the_masked_pixels_only():
    g = torch.Generator().manual_seed(0)
    a = torch.rand(2, 3, 32, 32, generator=g)
    b = a.clone()
    b[..., :, 20:] = torch.rand(2, 3, 32, 12, generator=g)  # differs on the right only
    mask = torch.zeros(2, 1, 32, 32)
    mask[..., :, :8] = 1  # far from the change (the 11-pixel window reaches 5 columns)
    assert ssim(a, b, mask=mask) == pytest.approx(torch.ones(2), abs=1e-4)
    assert float(ssim(a, b).max()) < 0.8
    assert float(ssim(a, b, mask=1 - mask).max()) < float(ssim(a, b).min())
    with pytest.raises(ValueError, match="mask: expected shape"):
        ssim(a, b, mask=torch.ones(2, 3, 32, 32))
