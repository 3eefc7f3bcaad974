"""Atomic, durable writes (``avatarfit._io``)."""

import os

import pytest
import torch

from avatarfit import _io
from avatarfit._io import atomic_path, write_text_atomic


def test_success_replaces_the_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "sub" / "last.pt"
    write_text_atomic(path, "old")
    with atomic_path(path) as tmp:
        assert tmp.parent == path.parent and tmp != path
        torch.save({"step": 2}, tmp)
    assert torch.load(path)["step"] == 2
    assert sorted(p.name for p in path.parent.iterdir()) == ["last.pt"]


def test_failure_mid_write_keeps_the_old_file_whole(tmp_path):
    path = tmp_path / "last.pt"
    write_text_atomic(path, "good checkpoint")
    with pytest.raises(RuntimeError, match="disk full"):
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as f:
                f.write(b"half a chec")
            raise RuntimeError("disk full")
    assert path.read_text() == "good checkpoint"
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]


def test_file_and_folder_are_synced_before_and_after_the_rename(tmp_path, monkeypatch):
    events = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(_io.os, "fsync", lambda fd: (events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}"))),
                                                        real_fsync(fd)))
    monkeypatch.setattr(_io.os, "replace", lambda a, b: (events.append(("replace", str(b))), real_replace(a, b)))
    path = tmp_path / "best.pt"
    write_text_atomic(path, "data")
    kinds = [e[0] for e in events]
    assert kinds == ["fsync", "replace", "fsync"], events
    assert events[0][1].startswith(str(tmp_path / ".best.pt."))  # the temporary file, before the rename
    assert events[2][1] == str(tmp_path)  # the folder, after it


def test_new_files_get_the_mode_open_would_give(tmp_path):
    write_text_atomic(tmp_path / "a.txt", "x")
    (tmp_path / "b.txt").write_text("x")
    assert (tmp_path / "a.txt").stat().st_mode == (tmp_path / "b.txt").stat().st_mode
    os.chmod(tmp_path / "a.txt", 0o640)
    write_text_atomic(tmp_path / "a.txt", "y")  # replacing keeps the file's mode
    assert (tmp_path / "a.txt").stat().st_mode & 0o777 == 0o640


def test_sixteen_bit_grey_images_are_scaled_not_clipped(tmp_path):
    import numpy as np
    from PIL import Image

    from avatarfit._io import read_png

    levels = np.array([[0, 16384, 32768, 65535]], dtype=np.uint16)
    Image.fromarray(levels).save(tmp_path / "ir16.png")
    grey = read_png(tmp_path / "ir16.png", channels=1)
    assert grey.shape == (1, 1, 4)
    assert torch.allclose(grey[0, 0], torch.tensor([0.0, 0.25, 0.5, 1.0]), atol=1e-4)
    assert read_png(tmp_path / "ir16.png", channels=3).shape == (3, 1, 4)
