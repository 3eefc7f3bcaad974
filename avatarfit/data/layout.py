"""Paths of the Multiface capture layout, in one place.

One folder per subject (paths relative to it)::

    KRT                                          cameras
    frame_list.txt                               'SEGMENT FRAME' per line
    images/{seg}/{cam}/{frame}.png               photos
    tracked_mesh/{seg}/{frame}.bin               float32 (V, 3), head-local, mm
    tracked_mesh/{seg}/{frame}_transform.txt     3x4 head pose, head-local -> world
    tracked_mesh/{seg}/{frame}.obj               topology with UVs
    unwrapped_uv_1024/{seg}/{cam}/{frame}.png    texture unwrapped from one camera (0 = unseen)
    unwrapped_uv_1024/{seg}/average/{frame}.png  average over cameras
    tex_mean.png tex_var.txt vert_mean.bin vert_var.txt   normalisation statistics
    landmarks.txt                                68 'face b0 b1 b2' rows (iBUG order); avatarfit's addition

Derived data written by ``avatarfit hmc`` (the synthetic-HMC tool)::

    hmc/rig.txt                                  HMC cameras (KRT; extrinsics headset -> camera)
                                                 and the nominal headset block (head -> headset)
    hmc/hmc.yaml                                 settings the HMC data was generated with
    hmc/{seg}/{view}/{frame}.png                 greyscale HMC views (left_eye, right_eye, mouth)
    hmc/{seg}/{frame}_headset.txt                3x4 [R|t] head-local -> headset used for the frame
    hmc/{seg}/{frame}_cameras.txt                the three cameras used (KRT, head-local -> camera)
    keypoints/keypoints.yaml                     camera, image size and point counts
    keypoints/points.txt                         'face b0 b1 b2' of every keypoint
    keypoints/{seg}/{frame}.txt                  'x y visible' per keypoint, in that camera's pixels

The texture folder keeps its Multiface name whatever the texture size; the size is that
of ``tex_mean.png``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Layout", "AVERAGE", "TEXTURE_DIR", "HMC_VIEWS"]

AVERAGE = "average"
TEXTURE_DIR = "unwrapped_uv_1024"
#: Names of the three head-mounted camera views, in order.
HMC_VIEWS = ("left_eye", "right_eye", "mouth")


@dataclass(frozen=True)
class Layout:
    """Path builder for one capture folder."""

    root: Path

    @classmethod
    def of(cls, root: str | os.PathLike) -> "Layout":
        return cls(Path(root))

    @property
    def krt(self) -> Path:
        return self.root / "KRT"

    @property
    def frame_list(self) -> Path:
        return self.root / "frame_list.txt"

    def image(self, segment: str, camera: str, frame: str) -> Path:
        return self.root / "images" / segment / camera / f"{frame}.png"

    def mesh_bin(self, segment: str, frame: str) -> Path:
        return self.root / "tracked_mesh" / segment / f"{frame}.bin"

    def mesh_obj(self, segment: str, frame: str) -> Path:
        return self.root / "tracked_mesh" / segment / f"{frame}.obj"

    def transform(self, segment: str, frame: str) -> Path:
        return self.root / "tracked_mesh" / segment / f"{frame}_transform.txt"

    def texture(self, segment: str, camera: str, frame: str) -> Path:
        """Texture unwrapped from ``camera``; ``camera='average'`` for the average."""
        return self.root / TEXTURE_DIR / segment / camera / f"{frame}.png"

    @property
    def tex_mean(self) -> Path:
        return self.root / "tex_mean.png"

    @property
    def tex_var(self) -> Path:
        return self.root / "tex_var.txt"

    @property
    def vert_mean(self) -> Path:
        return self.root / "vert_mean.bin"

    @property
    def vert_var(self) -> Path:
        return self.root / "vert_var.txt"

    @property
    def landmarks(self) -> Path:
        return self.root / "landmarks.txt"

    # -- derived: synthetic HMC views and keypoints -------------------------------------
    @property
    def hmc_dir(self) -> Path:
        return self.root / "hmc"

    @property
    def hmc_rig(self) -> Path:
        return self.hmc_dir / "rig.txt"

    @property
    def hmc_settings(self) -> Path:
        return self.hmc_dir / "hmc.yaml"

    def hmc_view(self, segment: str, view: str, frame: str) -> Path:
        return self.hmc_dir / segment / view / f"{frame}.png"

    def hmc_headset(self, segment: str, frame: str) -> Path:
        return self.hmc_dir / segment / f"{frame}_headset.txt"

    def hmc_cameras(self, segment: str, frame: str) -> Path:
        return self.hmc_dir / segment / f"{frame}_cameras.txt"

    @property
    def keypoints_dir(self) -> Path:
        return self.root / "keypoints"

    @property
    def keypoint_info(self) -> Path:
        return self.keypoints_dir / "keypoints.yaml"

    @property
    def keypoint_points(self) -> Path:
        return self.keypoints_dir / "points.txt"

    def keypoints(self, segment: str, frame: str) -> Path:
        return self.keypoints_dir / segment / f"{frame}.txt"

    def generated(self) -> list[Path]:
        """Every top-level entry this layout defines (what ``--overwrite`` replaces);
        derived HMC views and keypoints go too, as they would no longer match."""
        return [
            self.krt,
            self.frame_list,
            self.root / "images",
            self.root / "tracked_mesh",
            self.root / TEXTURE_DIR,
            self.tex_mean,
            self.tex_var,
            self.vert_mean,
            self.vert_var,
            self.landmarks,
            self.hmc_dir,
            self.keypoints_dir,
        ]
