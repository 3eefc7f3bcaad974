import math

import pytest
import torch

from avatarfit.metrics import geometry_error, keypoint_distance, l1, psnr, r_squared, ssim


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


def test_r_squared_is_one_for_exact_zero_for_the_mean_and_negative_for_worse():
    g = torch.Generator().manual_seed(0)
    target = torch.randn(10, 4, generator=g)
    assert float(r_squared(target, target)) == pytest.approx(1.0)
    assert float(r_squared(target.mean(0).expand(10, 4), target)) == pytest.approx(0.0, abs=1e-6)
    assert float(r_squared(-target, target)) < 0
    # Pooled over dimensions, each weighted by its variance: a wrong low-variance dimension costs little.
    scaled = target * torch.tensor([10.0, 1.0, 1.0, 1.0])
    pred = scaled.clone()
    pred[:, 3] = 0
    assert 0.9 < float(r_squared(pred, scaled)) < 1.0
    with pytest.raises(ValueError, match="N >= 2"):
        r_squared(target[:1], target[:1])


def test_l1_is_the_mean_absolute_error_per_image():
    pred = torch.zeros(2, 1, 2, 2)
    target = torch.tensor([[[[0.1, -0.3], [0.0, 0.4]]], [[[1.0, 1.0], [1.0, 1.0]]]])
    # image 0: (0.1 + 0.3 + 0 + 0.4) / 4 = 0.2; image 1: 1
    torch.testing.assert_close(l1(pred, target), torch.tensor([0.2, 1.0]))
    # every channel counts: two channels, one wrong by 0.6 everywhere, one exact -> 0.3
    two = torch.stack([torch.full((2, 2), 0.6), torch.zeros(2, 2)])[None]
    torch.testing.assert_close(l1(torch.zeros(1, 2, 2, 2), two), torch.tensor([0.3]))
    with pytest.raises(ValueError, match=r"expected equal shapes \(B, C, H, W\)"):
        l1(pred, target[:, :, :1])


def test_geometry_error_is_the_mean_euclidean_vertex_distance():
    target = torch.zeros(2, 3, 3)
    verts = torch.tensor([[[3.0, 4.0, 0.0], [0.0, 0.0, 0.0], [1.0, 2.0, 2.0]],  # distances 5, 0, 3
                          [[0.0, 0.0, -2.0], [0.0, 0.0, -2.0], [0.0, 0.0, -2.0]]])  # 2 each
    torch.testing.assert_close(geometry_error(verts, target), torch.tensor([8.0 / 3, 2.0]))
    # Euclidean per vertex, not per coordinate: (1, 1, 0) is sqrt(2) away
    one = torch.tensor([[[1.0, 1.0, 0.0]]])
    torch.testing.assert_close(geometry_error(one, torch.zeros(1, 1, 3)), torch.tensor([math.sqrt(2.0)]))
    with pytest.raises(ValueError, match=r"expected equal shapes \(B, V, 3\)"):
        geometry_error(verts[..., :2], target[..., :2])


def test_keypoint_distance_averages_over_the_visible_keypoints_only():
    target = torch.zeros(2, 3, 2)
    points = torch.tensor([[[3.0, 4.0], [6.0, 8.0], [100.0, 0.0]],  # 5, 10, (hidden) 100
                           [[0.0, 1.0], [0.0, 0.0], [0.0, 7.0]]])  # 1, 0, 7
    visible = torch.tensor([[True, True, False], [True, True, True]])
    torch.testing.assert_close(keypoint_distance(points, target, visible), torch.tensor([7.5, 8.0 / 3]))
    # a frame without a visible keypoint is NaN, the others unaffected
    none = torch.tensor([[False, False, False], [False, False, True]])
    d = keypoint_distance(points, target, none)
    assert math.isnan(float(d[0])) and float(d[1]) == pytest.approx(7.0)
    with pytest.raises(ValueError, match=r"expected \(B, K, 2\), \(B, K, 2\), \(B, K\)"):
        keypoint_distance(points, target, visible[:, :2])
