"""Number parsing shared by the text-format readers; errors name file and line."""

from __future__ import annotations

import math
from pathlib import Path

from ..errors import FormatError


def parse_floats(path: Path, lineno: int, tokens: list[str], what: str) -> list[float]:
    """Parse finite floats, raising :class:`FormatError` that names ``what`` and the token."""
    out = []
    for token in tokens:
        try:
            value = float(token)
        except ValueError:
            raise FormatError(path, f"expected a number ({what}), found {token!r}", lineno) from None
        if not math.isfinite(value):
            raise FormatError(path, f"expected a finite number ({what}), found {token!r}", lineno)
        out.append(value)
    return out
