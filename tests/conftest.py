"""Shared fixtures: a tiny generated capture and a capture written by hand."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from avatarfit.synth.generate import SynthConfig, generate_capture

TINY = SynthConfig(segments=1, frames=3, cameras=4, image_size=(96, 72), texture_size=128, seed=3)


@pytest.fixture(scope="session")
def tiny_capture(tmp_path_factory) -> Path:
    """A capture from the generator (1 segment, 3 frames, 4 cameras, 96x72)."""
    out = tmp_path_factory.mktemp("tiny") / "cap"
    generate_capture(out, TINY, progress=False)
    return out


# -- a capture written by hand, following the Multiface layout to the letter ---------------
# One quad (two triangles) in head-local mm, 60 x 40 mm, at z = 0, facing +z. Its texture is
# split in four coloured quadrants so orientation mistakes show.
QUAD_V = np.array([[-30, -20, 0], [30, -20, 0], [30, 20, 0], [-30, 20, 0]], dtype=np.float32)
QUAD_UV = np.array([[0, 0], [1, 0], [1, 1], [0, 1]], dtype=np.float32)
QUAD_F = [(1, 2, 3), (1, 3, 4)]  # 1-based, counter-clockwise seen from +z
# Texture quadrants (image rows: top half is v > 0.5): top-left red, top-right green,
# bottom-left blue, bottom-right white.
COLORS = {"tl": (255, 0, 0), "tr": (0, 255, 0), "bl": (0, 0, 255), "br": (255, 255, 255)}
HEAD_R = np.array([[0.0, 0.0, 1.0], [0.0, 1.0, 0.0], [-1.0, 0.0, 0.0]])  # 90 degrees about y
HEAD_T = np.array([5.0, -3.0, 2.0])
CAM_K = np.array([[400.0, 0.0, 40.0], [0.0, 400.0, 30.0], [0.0, 0.0, 1.0]])
CAM_R = np.eye(3)
CAM_T = np.array([0.0, 0.0, 500.0])
IMAGE_HW = (60, 80)
TEX = 32


def quadrant_texture(size: int = TEX) -> np.ndarray:
    img = np.zeros((size, size, 3), dtype=np.uint8)
    h = size // 2
    img[:h, :h] = COLORS["tl"]
    img[:h, h:] = COLORS["tr"]
    img[h:, :h] = COLORS["bl"]
    img[h:, h:] = COLORS["br"]
    return img


def write_handmade_capture(root: Path) -> Path:
    """Write a one-frame capture without any avatarfit code."""
    seg, frame, cam = "E001_Neutral", "000007", "400029"
    (root / "tracked_mesh" / seg).mkdir(parents=True)
    # The head pose maps head-local to world; the quad must face the camera (at -z world
    # looking down +z): R_f turns the quad's +z normal to world -x... so we pre-rotate the
    # local vertices by R_f^T so that the world quad faces the camera.
    local = (QUAD_V.astype(np.float64) - HEAD_T) @ HEAD_R  # R_f^T (v_world - t_f), world quad at z = 0
    local.astype("<f4").tofile(root / "tracked_mesh" / seg / f"{frame}.bin")
    rt = np.concatenate([HEAD_R, HEAD_T[:, None]], 1)
    (root / "tracked_mesh" / seg / f"{frame}_transform.txt").write_text(
        "\n".join(" ".join(f"{x:.6f}" for x in row) for row in rt) + "\n"
    )
    obj = [f"v {x:.6f} {y:.6f} {z:.6f}" for x, y, z in local]
    obj += [f"vt {u} {v}" for u, v in QUAD_UV]
    obj += [f"f {a}/{a} {b}/{b} {c}/{c}" for a, b, c in QUAD_F]
    (root / "tracked_mesh" / seg / f"{frame}.obj").write_text("\n".join(obj) + "\n")
    # The camera looks at the world quad from z = -500 (t = 500 along its z axis).
    krt = [cam]
    krt += [" ".join(f"{x:g}" for x in row) for row in CAM_K]
    krt += ["0 0 0 0 0"]
    krt += [" ".join(f"{x:g}" for x in list(CAM_R[i]) + [CAM_T[i]]) for i in range(3)]
    krt += [""]
    (root / "KRT").write_text("\n".join(krt) + "\n")
    (root / "frame_list.txt").write_text(f"{seg} {frame}\n")
    tex = quadrant_texture()
    for sub in ("average", cam):
        d = root / "unwrapped_uv_1024" / seg / sub
        d.mkdir(parents=True)
        Image.fromarray(tex).save(d / f"{frame}.png")
    (root / "images" / seg / cam).mkdir(parents=True)
    Image.fromarray(np.zeros((*IMAGE_HW, 3), dtype=np.uint8)).save(root / "images" / seg / cam / f"{frame}.png")
    Image.fromarray(tex).save(root / "tex_mean.png")
    (root / "tex_var.txt").write_text("100.0\n")
    local.astype("<f4").tofile(root / "vert_mean.bin")
    (root / "vert_var.txt").write_text("4.0\n")
    return root


@pytest.fixture()
def handmade_capture(tmp_path) -> Path:
    return write_handmade_capture(tmp_path / "hand")


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def tiny_hmc(tiny_capture, tmp_path_factory) -> Path:
    """Synthetic HMC data (default settings) of the tiny capture, in a separate folder."""
    from avatarfit.synth.hmc_write import write_hmc

    out = tmp_path_factory.mktemp("hmc") / "out"
    write_hmc(tiny_capture, out, progress=False)
    return out


def train_tiny(variant: str, capture: Path, tmp_path_factory) -> Path:
    """A run of ``variant`` trained for a few steps on ``capture`` (tests.train.conftest.tiny_config)."""
    from avatarfit.train import train
    from tests.train.conftest import tiny_config

    out = tmp_path_factory.mktemp("runs") / variant
    train(tiny_config(variant), capture, out, progress=False)
    return out


@pytest.fixture(scope="session")
def dam_run(tiny_capture, tmp_path_factory):
    """A DAM trained for a few steps (the pretrained model of DAM-HMC-Reg)."""
    return train_tiny("dam", tiny_capture, tmp_path_factory)
