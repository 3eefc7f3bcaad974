"""Number parsing shared by the text-format readers; errors name file and line."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Iterator

import numpy as np

from ..errors import FormatError

#: Largest ``|R R^T - I|`` entry accepted for a rotation read from a file. Text files
#: written with 6 significant digits (as real calibrations are) stay below 1e-5; a
#: scaled or sheared matrix is off by far more.
ROTATION_TOLERANCE = 1e-3


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


def check_rotation(path: Path, lineno: int, R: np.ndarray, what: str) -> None:
    """Raise :class:`FormatError` unless ``R (3, 3)`` is a proper rotation: orthonormal
    within :data:`ROTATION_TOLERANCE` and of determinant +1.

    Args:
        path: the file the matrix was read from.
        lineno: the line of its first row.
        what: what the matrix is (``"head pose"``, ``"camera '400000' [R|t]"``).
    """
    R = np.asarray(R, dtype=np.float64)
    err = float(np.abs(R @ R.T - np.eye(3)).max())
    det = float(np.linalg.det(R))
    if err > ROTATION_TOLERANCE or det <= 0:
        scales = np.linalg.norm(R, axis=1)
        raise FormatError(path, f"{what}: expected a rotation (R R^T = I within {ROTATION_TOLERANCE:g}, det +1), "
                          f"found max |R R^T - I| = {err:.3g}, det = {det:.4g}, row norms "
                          f"{', '.join(f'{v:.4g}' for v in scales)}", lineno)
