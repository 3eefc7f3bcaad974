"""Rendering through PyTorch3D with OpenCV cameras: projection, rasterisers, textures."""

from .cameras import camera_centers, look_at, project_points, to_pytorch3d
from .raster_bbox import rasterize_screen
from .renderer import BACKENDS, FaceCache, RenderOutput, rasterize, render_textured
from .unwrap import UVRaster, rasterize_uv, unwrap_texture

__all__ = [
    "BACKENDS", "FaceCache", "RenderOutput", "UVRaster", "camera_centers", "look_at", "project_points", "rasterize",
    "rasterize_screen", "rasterize_uv", "render_textured", "to_pytorch3d", "unwrap_texture",
]
