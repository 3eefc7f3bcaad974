"""A least-recently-used cache of tensors bounded by bytes."""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, Callable, Hashable

import torch

__all__ = ["TensorCache", "tensor_bytes"]


def tensor_bytes(item: Any) -> int:
    """Bytes held by the tensors in ``item`` (a tensor, or a tuple, list, dict or dataclass of them)."""
    if isinstance(item, torch.Tensor):
        return item.numel() * item.element_size()
    if isinstance(item, dict):
        return sum(tensor_bytes(v) for v in item.values())
    if isinstance(item, (tuple, list)):
        return sum(tensor_bytes(v) for v in item)
    if hasattr(item, "__dataclass_fields__"):
        return sum(tensor_bytes(getattr(item, k)) for k in item.__dataclass_fields__)
    return 0


class TensorCache:
    """Keeps items (tensors or containers of them) until their bytes exceed ``max_bytes``;
    then the least recently used go first. ``max_bytes = 0`` keeps nothing.

    Args:
        max_bytes: the bound.

    Example:
        >>> import torch
        >>> cache = TensorCache(2**20)
        >>> x = cache.get("a", lambda: torch.zeros(1000))   # computed once, then kept
        >>> cache.get("a", lambda: torch.ones(1000)) is x
        True
    """

    def __init__(self, max_bytes: int) -> None:
        if max_bytes < 0:
            raise ValueError(f"max_bytes: expected a size >= 0, got {max_bytes}")
        self.max_bytes = int(max_bytes)
        self.bytes = 0
        self.hits = 0
        self.misses = 0
        self._items: OrderedDict[Hashable, tuple[Any, int]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: Hashable) -> bool:
        return key in self._items

    def get(self, key: Hashable, make: Callable[[], Any]) -> Any:
        """The item under ``key``, made by ``make()`` (and kept, if it fits) on a miss."""
        if key in self._items:
            self._items.move_to_end(key)
            self.hits += 1
            return self._items[key][0]
        self.misses += 1
        item = make()
        size = tensor_bytes(item)
        if size <= self.max_bytes:
            self._items[key] = (item, size)
            self.bytes += size
            while self.bytes > self.max_bytes:
                _, (_, old) = self._items.popitem(last=False)
                self.bytes -= old
        return item

    def __repr__(self) -> str:
        return (f"TensorCache({len(self)} items, {self.bytes / 2**20:.1f} of {self.max_bytes / 2**20:.1f} MiB, "
                f"{self.hits} hits, {self.misses} misses)")
