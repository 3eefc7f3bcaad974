"""Captures in the Multiface layout: reading, writing, statistics."""

from .capture import Capture, FrameRef, Topology
from .krt import CameraCalib, read_krt, write_krt
from .layout import AVERAGE, Layout
from .obj import ObjMesh, read_obj, write_obj
from .keypoints import read_keypoints, write_keypoints
from .layout import HMC_VIEWS
from .stats import NormStats, compute_stats, read_stats, write_stats
from .surface import SurfacePoints, read_surface_points, write_surface_points

__all__ = [
    "AVERAGE", "CameraCalib", "Capture", "FrameRef", "HMC_VIEWS", "Layout", "NormStats", "ObjMesh",
    "SurfacePoints", "Topology", "compute_stats", "read_keypoints", "read_krt", "read_obj", "read_stats",
    "read_surface_points", "write_keypoints", "write_krt", "write_obj", "write_stats", "write_surface_points",
]
