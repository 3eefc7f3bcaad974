"""Captures in the Multiface layout: reading, writing, statistics, datasets."""

from .capture import Capture, FrameRef, Topology
from .dataset import CaptureDataset
from .krt import CameraCalib, read_krt, write_krt
from .layout import AVERAGE, Layout
from .obj import ObjMesh, read_obj, write_obj
from .stats import NormStats, compute_stats, read_stats, write_stats

__all__ = [
    "AVERAGE", "CameraCalib", "Capture", "CaptureDataset", "FrameRef", "Layout", "NormStats", "ObjMesh",
    "Topology", "compute_stats", "read_krt", "read_obj", "read_stats", "write_krt", "write_obj", "write_stats",
]
