import pytest
import torch

from avatarfit.eval.compare import paired_difference, verdict


def test_paired_difference_resolves_a_consistent_gain_and_not_noise():
    g = torch.Generator().manual_seed(0)
    b = torch.randn(30, generator=g).tolist()
    better = [x + 0.5 + 0.05 * float(torch.randn((), generator=g)) for x in b]
    d = paired_difference(better, b)
    assert d.mean == pytest.approx(0.5, abs=0.05) and d.low > 0.4 and d.high < 0.6 and d.frames == 30
    assert verdict(d, higher_is_better=True) == "holds"
    assert verdict(d, higher_is_better=False) == "reversed"  # e.g. a larger geometry error
    noise = [x + float(torch.randn((), generator=g)) for x in b]
    n = paired_difference(noise, b)
    assert n.low < 0 < n.high and verdict(n, True) == "not resolved"
    assert paired_difference(better, b) == d  # reproducible (seeded)


def test_pooled_difference_resamples_within_each_subject():
    a = [[1.0, 1.0, 1.0], [3.0, 3.0]]
    b = [[0.0, 0.0, 0.0], [0.0, 0.0]]
    d = paired_difference(a, b)
    # Every resample keeps 3 frames of the first subject and 2 of the second: no spread.
    assert d.mean == pytest.approx(9 / 5) and d.low == pytest.approx(9 / 5) and d.high == pytest.approx(9 / 5)
    with pytest.raises(ValueError, match="paired scores of the same frames"):
        paired_difference([[1.0]], [[1.0, 2.0]])
    with pytest.raises(ValueError, match="no frames"):
        paired_difference([], [])
