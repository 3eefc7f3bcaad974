"""Small file helpers shared by the package: atomic writes and PNG I/O.

Images in memory are float32 tensors in [0, 1], channels first: ``(C, H, W)``.
"""

from __future__ import annotations

import math
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch

from .errors import FormatError

__all__ = [
    "atomic_path",
    "write_bytes_atomic",
    "write_text_atomic",
    "write_png",
    "read_png",
    "png_size",
    "json_safe",
]


def _fsync(path: Path, directory: bool = False) -> None:
    """Flush ``path``'s data (or a folder's entries) to the disk."""
    fd = os.open(path, os.O_RDONLY | (getattr(os, "O_DIRECTORY", 0) if directory else 0))
    try:
        os.fsync(fd)
    except OSError:  # some file systems refuse fsync on folders; the file itself was synced
        if not directory:
            raise
    finally:
        os.close(fd)


def _new_file_mode(path: Path) -> int:
    """The mode ``open(path, "w")`` would give: the existing file's, else 0666 less the umask."""
    try:
        return path.stat().st_mode & 0o777
    except FileNotFoundError:
        umask = os.umask(0o022)
        os.umask(umask)
        return 0o666 & ~umask


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success make it durable and rename it
    onto ``path``.

    The body writes the temporary file; then its data is flushed to the disk (``fsync``),
    it replaces ``path`` in one rename, and the folder is synced, so that after a crash
    ``path`` holds either the old content or the complete new one, never an empty or
    partial file. Nothing is left at ``path`` (and no temporary file remains) when the
    body raises.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, _new_file_mode(path))  # mkstemp's 0600 would hide the file from other users
        _fsync(tmp_path)
        os.replace(tmp_path, path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise
    _fsync(path.parent, directory=True)


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` through a temporary file and a rename."""
    write_bytes_atomic(path, text.encode("utf-8"))


def _to_uint8_hwc(image: torch.Tensor | np.ndarray) -> np.ndarray:
    if isinstance(image, torch.Tensor):
        image = image.detach().cpu().float().numpy()
    image = np.asarray(image)
    if image.ndim == 2:
        image = image[None]
    if image.ndim != 3 or image.shape[0] not in (1, 3):
        raise ValueError(f"image: expected shape (1 or 3, H, W) or (H, W), got {tuple(image.shape)}")
    if image.dtype != np.uint8:
        image = np.clip(np.rint(image * 255.0), 0, 255).astype(np.uint8)
    hwc = np.ascontiguousarray(image.transpose(1, 2, 0))
    return hwc[..., 0] if hwc.shape[2] == 1 else hwc


def write_png(path: str | os.PathLike, image: torch.Tensor | np.ndarray) -> None:
    """Write an image atomically as 8-bit PNG.

    Args:
        path: destination file.
        image: ``(3, H, W)`` or ``(1, H, W)`` or ``(H, W)``; float in [0, 1] (clipped) or uint8.
    """
    from PIL import Image

    array = _to_uint8_hwc(image)
    with atomic_path(path) as tmp:
        Image.fromarray(array).save(tmp, format="PNG")


def read_png(path: str | os.PathLike, channels: int = 3) -> torch.Tensor:
    """Read an image file as float32 in [0, 1].

    Args:
        path: an image file Pillow can read.
        channels: 3 for RGB, 1 for greyscale.

    Returns:
        ``(channels, H, W)`` tensor (8-bit images divided by 255, 16-bit ones by 65535).

    Raises:
        FormatError: the file is missing or is not a readable image.
    """
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise FormatError(path, "file not found")
    try:
        with Image.open(path) as im:
            if im.mode.startswith("I;16") or im.mode == "I":  # 16-bit grey (Pillow's convert would clip it)
                grey = np.asarray(im, dtype=np.float64) / 65535.0
                array = np.repeat(grey[..., None], channels, axis=2)
                return torch.from_numpy(array.transpose(2, 0, 1).copy()).float().clamp_(0.0, 1.0)
            im = im.convert("RGB" if channels == 3 else "L")
            array = np.asarray(im, dtype=np.uint8)
    except (UnidentifiedImageError, OSError) as exc:
        raise FormatError(path, f"not a readable image ({exc})") from exc
    if array.ndim == 2:
        array = array[..., None]
    return torch.from_numpy(array.transpose(2, 0, 1).copy()).float().div_(255.0)


def png_size(path: str | os.PathLike) -> tuple[int, int]:
    """Return ``(height, width)`` of an image file, reading only its header."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise FormatError(path, "file not found")
    try:
        with Image.open(path) as im:
            width, height = im.size
    except (UnidentifiedImageError, OSError) as exc:
        raise FormatError(path, f"not a readable image ({exc})") from exc
    return height, width


def json_safe(v: Any) -> Any:
    """JSON-safe: tensors and arrays to lists, non-finite floats to None."""
    if isinstance(v, (torch.Tensor, np.ndarray)):
        return json_safe(v.tolist())
    if isinstance(v, (list, tuple)):
        return [json_safe(x) for x in v]
    if isinstance(v, dict):
        return {k: json_safe(x) for k, x in v.items()}
    if isinstance(v, (float, np.floating)):
        return float(v) if math.isfinite(v) else None
    if isinstance(v, np.integer):
        return int(v)
    return v
