"""A torch ``Dataset`` of DAM training samples from a capture."""

from __future__ import annotations

from torch.utils.data import Dataset

from .capture import Capture, FrameRef

__all__ = ["CaptureDataset"]


class CaptureDataset(Dataset):
    """One sample per (frame, camera) pair.

    Each sample is a dict:

    - ``texture``: ``(3, T, T)`` normalised average texture (the DAM encoder's input);
    - ``verts``: ``(V, 3)`` normalised head-local vertices;
    - ``photo``: ``(3, H, W)`` the camera's photo in [0, 1];
    - ``K``, ``R``: ``(3, 3)``; ``t``: ``(3,)`` the camera (OpenCV, world);
    - ``head_R``: ``(3, 3)``, ``head_t``: ``(3,)`` the head pose (head-local to world);
    - ``view``: ``(3,)`` unit vector to the camera centre in the head frame;
    - ``segment``, ``frame``, ``camera``: names.

    Args:
        capture: the capture.
        frames: frames to use (default: all listed).
        cameras: camera names (default: all). Photos of different sizes do not batch.
    """

    def __init__(self, capture: Capture, frames: list[FrameRef] | None = None, cameras: list[str] | None = None) -> None:
        self.capture = capture
        self.frames = list(frames) if frames is not None else capture.frames()
        self.cameras = list(cameras) if cameras is not None else capture.camera_names
        for cam in self.cameras:
            if cam not in capture.cameras:
                raise ValueError(f"cameras: {cam!r} is not in {capture.layout.krt}")
        if not self.frames or not self.cameras:
            raise ValueError(f"CaptureDataset: no samples ({len(self.frames)} frames x {len(self.cameras)} cameras)")

    def __len__(self) -> int:
        return len(self.frames) * len(self.cameras)

    def __getitem__(self, index: int) -> dict:
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} samples")
        ref = self.frames[index // len(self.cameras)]
        cam = self.cameras[index % len(self.cameras)]
        cap = self.capture
        stats = cap.stats
        K, R, t = cap.camera_tensors(cam)
        head_R, head_t = cap.head_pose(ref.segment, ref.frame)
        return {
            "texture": stats.normalise_texture(cap.texture(ref.segment, ref.frame)),
            "verts": stats.normalise_verts(cap.vertices(ref.segment, ref.frame)),
            "photo": cap.photo(ref.segment, ref.frame, cam),
            "K": K,
            "R": R,
            "t": t,
            "head_R": head_R,
            "head_t": head_t,
            "view": cap.view_vector(ref.segment, ref.frame, cam),
            "segment": ref.segment,
            "frame": ref.frame,
            "camera": cam,
        }
