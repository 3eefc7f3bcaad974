"""Exceptions raised by avatarfit.

Every error about user input is a :class:`ValueError` subclass whose message names the
file (and line, for text formats) or the argument, what was expected and what was found.
"""

from __future__ import annotations

from os import PathLike

__all__ = ["AvatarfitError", "FormatError", "ShapeError", "InvalidValueError", "DTypeError", "FitFailedError",
           "JobsFailedError"]


class AvatarfitError(Exception):
    """Base class of avatarfit's own errors."""


class FormatError(AvatarfitError, ValueError):
    """A file does not follow the expected format.

    Attributes:
        path: the offending file.
        line: 1-based line number for text files, ``None`` otherwise.
    """

    def __init__(self, path: str | PathLike, message: str, line: int | None = None) -> None:
        self.path = str(path)
        self.line = line
        where = f"{self.path}, line {line}" if line is not None else self.path
        super().__init__(f"{where}: {message}")


class ShapeError(AvatarfitError, ValueError):
    """A tensor argument has the wrong shape (or is no tensor at all)."""


class InvalidValueError(AvatarfitError, ValueError):
    """A tensor argument has the right shape but values it cannot have: NaN or Inf, points
    outside the image, an empty mask, indices outside their range, a missing part."""


class DTypeError(AvatarfitError, TypeError, ValueError):
    """A tensor argument has the wrong dtype (a ``ValueError`` too, as every input error)."""


class FitFailedError(AvatarfitError, RuntimeError):
    """A fit could not produce a result: every setting of a search diverged, or the
    device ran out of memory. The message says which option to change."""


class JobsFailedError(AvatarfitError, RuntimeError):
    """Jobs of a launch failed (trainings or evaluation cells). The message names each
    failed job, the end of its error and its log file; what finished stays written.

    Attributes:
        failed: ``job name -> log file`` of every failed job.
    """

    def __init__(self, message: str, failed: dict[str, str]) -> None:
        self.failed = dict(failed)
        super().__init__(message)
