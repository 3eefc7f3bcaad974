"""Number parsing shared by the text-format readers; errors name file and line."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Iterator

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


def table_rows(path: Path, what: str, columns: str, comments: bool = False) -> Iterator[tuple[int, list[str]]]:
    """Yield ``(line number, tokens)`` of each non-blank row of a whitespace-separated table.

    Args:
        path: the text file.
        what: what the file is, for the missing-file error (``"keypoint file"``).
        columns: the row's column names (``"x y visible"``); every row must have that many tokens.
        comments: also skip rows whose first token starts with ``#``.

    Raises:
        FormatError: the file is missing, or a row has the wrong number of values (file and line named).
    """
    if not path.is_file():
        raise FormatError(path, f"{what} not found")
    n = len(columns.split())
    for lineno, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        tokens = line.split()
        if not tokens or (comments and tokens[0].startswith("#")):
            continue
        if len(tokens) != n:
            raise FormatError(path, f"expected {n} values '{columns}', found {len(tokens)}: {line.strip()!r}", lineno)
        yield lineno, tokens
