import pytest
import torch

from avatarfit.data.cache import TensorCache, tensor_bytes


def test_bounded_by_bytes_least_recently_used_first():
    cache = TensorCache(3 * 400)  # room for three (100,) float32 tensors
    made = []

    def make(i):
        return lambda: made.append(i) or torch.full((100,), float(i))

    for i in range(3):
        cache.get(i, make(i))
    cache.get(0, make(0))  # 0 is now the most recent
    cache.get(3, make(3))  # evicts 1, the least recently used
    assert made == [0, 1, 2, 3] and 1 not in cache and 0 in cache and 3 in cache
    assert cache.bytes == 1200 and len(cache) == 3
    assert float(cache.get(1, make(1))[0]) == 1.0 and made[-1] == 1  # made again
    assert cache.bytes <= cache.max_bytes


def test_items_larger_than_the_bound_and_zero_bound_are_not_kept():
    cache = TensorCache(100)
    assert cache.get("big", lambda: torch.zeros(1000)).shape == (1000,)
    assert len(cache) == 0 and cache.bytes == 0
    off = TensorCache(0)
    off.get("a", lambda: torch.zeros(1))
    assert len(off) == 0
    with pytest.raises(ValueError, match="max_bytes"):
        TensorCache(-1)


def test_tensor_bytes_of_containers():
    assert tensor_bytes((torch.zeros(3), {"a": torch.zeros(2, dtype=torch.float64)}, None)) == 12 + 16
