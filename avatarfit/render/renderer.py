"""Textured mesh rendering through PyTorch3D with OpenCV cameras.

A renderer is a rasteriser (which face covers each pixel) followed by the differentiable
part, recomputed from the winning faces for the covered pixels only
(:mod:`avatarfit.render.pixels`): perspective-correct barycentrics, depth, and a bilinear
texture lookup that matches PyTorch3D's ``TexturesUV``. Two rasterisers choose the same
faces: PyTorch3D's ``MeshRasterizer`` (``backend="pytorch3d"``) and the bounding-box
rasteriser of :mod:`avatarfit.render.raster_bbox` (``backend="bbox"``).
``backend="auto"`` picks PyTorch3D's on CUDA and the bounding-box one on CPU, where it
is one to two orders of magnitude faster (``benchmarks/bench_render.py``).

Textures are ``(B, C, T, T)`` images with row 0 at the top; UVs follow OBJ (v up). The
one vertical flip between the two happens inside texture sampling.

A :class:`FaceCache` keeps each pixel's face between renderings of meshes that move
little (the steps of a fit): the barycentrics still follow the vertices every call, and
the hard test runs again only every few calls or when a vertex has moved far enough on
screen to change which face a pixel sees.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from ..errors import ShapeError
from .cameras import check_cameras, project_points, to_pytorch3d
from .pixels import PixelFaces, pixel_faces, sample_texture, scatter_pixels, to_fragments, unpack_faces
from .raster_bbox import face_per_pixel, rasterize_screen

__all__ = ["BACKENDS", "FaceCache", "RenderOutput", "coverage", "rasterize", "render_textured", "resolve_backend"]

BACKENDS = ("auto", "bbox", "pytorch3d")


def resolve_backend(backend: str, device: torch.device) -> str:
    """Map ``"auto"`` to ``"pytorch3d"`` on CUDA and ``"bbox"`` elsewhere."""
    if backend not in BACKENDS:
        raise ValueError(f"backend: expected one of {BACKENDS}, got {backend!r}")
    if backend == "auto":
        return "pytorch3d" if device.type == "cuda" else "bbox"
    return backend


def _check_mesh(verts: torch.Tensor, faces: torch.Tensor) -> None:
    if verts.ndim != 3 or verts.shape[-1] != 3:
        raise ShapeError(f"verts: expected shape (B, V, 3), got {tuple(verts.shape)}")
    if faces.ndim != 2 or faces.shape[-1] != 3:
        raise ShapeError(f"faces: expected shape (F, 3), got {tuple(faces.shape)}")
    if faces.numel() and (int(faces.min()) < 0 or int(faces.max()) >= verts.shape[1]):
        raise ShapeError(
            f"faces: indices must lie in [0, {verts.shape[1] - 1}] for {verts.shape[1]} vertices, "
            f"found [{int(faces.min())}, {int(faces.max())}]"
        )


def rasterize(
    verts: torch.Tensor,
    faces: torch.Tensor,
    K: torch.Tensor,
    R: torch.Tensor,
    t: torch.Tensor,
    image_size: tuple[int, int],
    *,
    backend: str = "auto",
    cull_backfaces: bool = False,
):
    """Rasterise a batch of meshes that share ``faces``, one camera per mesh.

    Args:
        verts: ``(B, V, 3)`` world vertices.
        faces: ``(F, 3)`` int64.
        K, R, t: ``(B, 3, 3)``, ``(B, 3, 3)``, ``(B, 3)`` OpenCV cameras.
        image_size: ``(H, W)``.
        backend: ``"auto"``, ``"bbox"`` or ``"pytorch3d"``.

    Returns:
        PyTorch3D ``Fragments`` (one face per pixel; see
        :func:`avatarfit.render.raster_bbox.rasterize_screen`).
    """
    _check_mesh(verts, faces)
    check_cameras(K, R, t, batch=verts.shape[0])
    faces = faces.to(verts.device).long()
    backend = resolve_backend(backend, verts.device)
    if backend == "bbox":
        screen = project_points(verts, K, R, t, image_size)
        return rasterize_screen(screen, faces, image_size, cull_backfaces=cull_backfaces)
    from pytorch3d.renderer import MeshRasterizer, RasterizationSettings
    from pytorch3d.structures import Meshes

    meshes = Meshes(verts=verts, faces=faces.unsqueeze(0).expand(verts.shape[0], -1, -1))
    settings = RasterizationSettings(
        image_size=(int(image_size[0]), int(image_size[1])),
        blur_radius=0.0,
        faces_per_pixel=1,
        cull_backfaces=cull_backfaces,
        bin_size=None if verts.is_cuda else 0,
    )
    return MeshRasterizer(cameras=to_pytorch3d(K, R, t, image_size), raster_settings=settings)(meshes)


def _faces_of_pixels(verts: torch.Tensor, screen: torch.Tensor, faces: torch.Tensor, K: torch.Tensor,
                     R: torch.Tensor, t: torch.Tensor, image_size: tuple[int, int], backend: str,
                     cull_backfaces: bool) -> torch.Tensor:
    """The hard test of either backend: ``(B, H, W)`` face index (not packed), -1 where empty."""
    if backend == "bbox":
        return face_per_pixel(screen.detach(), faces, image_size, cull_backfaces=cull_backfaces)
    with torch.no_grad():
        packed = rasterize(verts.detach(), faces, K, R, t, image_size, backend=backend,
                           cull_backfaces=cull_backfaces).pix_to_face[..., 0]
    return unpack_faces(packed, faces.shape[0])


class FaceCache:
    """Each pixel's face, kept between renderings of a batch whose meshes move little.

    Pass one to :func:`render_textured` on every step of an optimisation. Per image of the
    batch, it runs the rasteriser's hard test again when ``every`` renderings have used
    that image's kept faces, or when one of its vertices has moved more than ``max_shift``
    pixels on screen since they were chosen; the whole batch again when the batch size,
    image size or faces change. Otherwise the kept faces are used and only the
    differentiable part (barycentrics, depth, texture) is recomputed from the current
    vertices. The motion is watched on the vertices that were in front of the camera and
    on or near the image (a quarter of its size around it) when the faces were chosen.
    Pixels near a moving outline may show the face that covered them up to ``max_shift``
    pixels ago, and a change of which surface is in front that comes with no screen motion
    (depth alone) waits for the next ``every``. The cameras are not part of the check: use
    one cache per sequence of renderings of the same frames and cameras, and ``clear()`` it
    when they change. ``every=1`` rasterises every time.

    Args:
        every: at most this many renderings per rasterisation of an image (>= 1).
        max_shift: screen-space motion (pixels) of a vertex that forces a new rasterisation
            of its image.

    Attributes:
        rasterised, reused: how many images were rasterised and how many reused their
            kept faces, for reports.
    """

    def __init__(self, every: int = 8, max_shift: float = 0.5) -> None:
        if every < 1 or not max_shift > 0:
            raise ValueError(f"FaceCache: expected every >= 1 and max_shift > 0, got {every} and {max_shift}")
        self.every = int(every)
        self.max_shift = float(max_shift)
        self.rasterised = 0
        self.reused = 0
        self.clear()

    def clear(self) -> None:
        """Forget the kept faces (the next rendering rasterises every image)."""
        self._screen: torch.Tensor | None = None
        self._pix_to_face: torch.Tensor | None = None
        self._watch: torch.Tensor | None = None
        self._uses: torch.Tensor | None = None
        self._key: tuple | None = None

    def faces(self, screen: torch.Tensor, key: tuple, rasterise) -> torch.Tensor:
        """``pix_to_face (B, H, W)`` for vertices ``screen (B, V, 3)``: kept where still valid,
        from ``rasterise(index)`` (the images ``index``, or all for ``None``) elsewhere."""
        s = screen.detach()
        if self._pix_to_face is None or key != self._key:
            p2f = rasterise(None)
            self._key, self._pix_to_face, self._screen = key, p2f, s.clone()
            self._uses = torch.ones(s.shape[0], dtype=torch.long, device=s.device)
            self._watch = self._watched(s, p2f.shape[1:])
            self.rasterised += s.shape[0]
            return p2f
        moved = (s[..., :2] - self._screen[..., :2]).abs().amax(-1)
        shift = torch.where(self._watch, moved, torch.zeros_like(moved)).amax(-1)  # (B,)
        redo = ~(shift <= self.max_shift) | (self._uses >= self.every)  # NaN motion redoes too
        if bool(redo.any()):
            index = redo.nonzero()[:, 0]
            p2f = self._pix_to_face.clone()
            p2f[index] = rasterise(index)
            self._pix_to_face = p2f
            self._screen[index] = s[index]
            self._watch[index] = self._watched(s[index], p2f.shape[1:])
            self._uses[index] = 0
        self._uses += 1
        n = int(redo.sum())
        self.rasterised += n
        self.reused += s.shape[0] - n
        return self._pix_to_face

    @staticmethod
    def _watched(s: torch.Tensor, size) -> torch.Tensor:
        # Vertices that can move what the image shows: in front of the camera and on (or
        # near) the image. Those behind an HMC camera project to huge coordinates whose
        # changes mean nothing; faces with such a vertex are not rasterised at all.
        H, W = size
        margin = 0.25 * max(H, W)
        return ((s[..., 2] > 0) & (s[..., 0] > -margin) & (s[..., 0] < W + margin)
                & (s[..., 1] > -margin) & (s[..., 1] < H + margin))


@dataclass(frozen=True)
class RenderOutput:
    """What :func:`render_textured` returns.

    Attributes:
        image: ``(B, C, H, W)`` in [0, 1] (C = texture channels), background where empty.
        mask: ``(B, 1, H, W)`` 1 where a face covers the pixel, else 0.
        pixels: the covered pixels' faces, barycentrics and depth (:class:`PixelFaces`).
        num_faces: F, the meshes' face count.
    """

    image: torch.Tensor
    mask: torch.Tensor
    pixels: PixelFaces
    num_faces: int

    @property
    def depth(self) -> torch.Tensor:
        """``(B, 1, H, W)`` camera depth, 0 where empty (differentiable)."""
        B, H, W = self.pixels.pix_to_face.shape
        d = self.pixels.depth
        return torch.zeros(B * H * W, dtype=d.dtype, device=d.device).index_put((self.pixels.index,), d).view(B, 1, H, W)

    @property
    def fragments(self) -> Any:
        """PyTorch3D ``Fragments`` (packed ``pix_to_face``, ``zbuf``, ``bary_coords``), built on request."""
        return to_fragments(self.pixels, self.num_faces)


@torch.no_grad()
def coverage(verts: torch.Tensor, faces: torch.Tensor, K: torch.Tensor, R: torch.Tensor, t: torch.Tensor,
             image_size: tuple[int, int], *, backend: str = "auto") -> torch.Tensor:
    """Which pixels a batch of meshes covers, one camera per mesh (a tracked mesh's coverage
    is the face mask training and the evaluation score).

    Args:
        verts: ``(B, V, 3)`` world vertices; faces: ``(F, 3)``.
        K, R, t: ``(B, 3, 3)``, ``(B, 3, 3)``, ``(B, 3)`` OpenCV cameras.
        image_size: ``(H, W)``; backend: see :func:`rasterize`.

    Returns:
        ``(B, 1, H, W)``, 1 where a face covers the pixel, else 0 (``verts``' dtype).
    """
    frags = rasterize(verts, faces, K, R, t, image_size, backend=backend)
    return (frags.pix_to_face[..., 0] >= 0).to(verts.dtype)[:, None]


def render_textured(
    verts: torch.Tensor,
    faces: torch.Tensor,
    verts_uvs: torch.Tensor,
    faces_uvs: torch.Tensor,
    texture: torch.Tensor,
    K: torch.Tensor,
    R: torch.Tensor,
    t: torch.Tensor,
    image_size: tuple[int, int],
    *,
    backend: str = "auto",
    background: float | tuple[float, ...] = 0.0,
    cull_backfaces: bool = False,
    cache: FaceCache | None = None,
) -> RenderOutput:
    """Render textured meshes, one camera each; differentiable in verts, texture, K, R, t.

    Args:
        verts: ``(B, V, 3)`` world vertices.
        faces: ``(F, 3)`` vertex indices.
        verts_uvs: ``(U, 2)`` UVs in [0, 1], OBJ convention (v up).
        faces_uvs: ``(F, 3)`` UV indices.
        texture: ``(B, C, T, T)`` texture images, row 0 at the top (C = 1 or 3).
        K, R, t: ``(B, 3, 3)``, ``(B, 3, 3)``, ``(B, 3)`` OpenCV cameras.
        image_size: ``(H, W)``.
        backend: rasteriser, see :func:`rasterize`.
        background: scalar or per-channel value of empty pixels.
        cache: a :class:`FaceCache` to keep each pixel's face between calls (fitting).

    Returns:
        :class:`RenderOutput`.

    Example:
        >>> out = render_textured(verts, faces, uvs, fuvs, tex, K, R, t, (128, 96))  # doctest: +SKIP
        >>> out.image.shape
        torch.Size([B, 3, 128, 96])
    """
    _check_mesh(verts, faces)
    B = verts.shape[0]
    if texture.ndim != 4 or texture.shape[0] != B or texture.shape[1] not in (1, 3):
        raise ShapeError(f"texture: expected shape ({B}, 1 or 3, T, T), got {tuple(texture.shape)}")
    if verts_uvs.ndim != 2 or verts_uvs.shape[1] != 2:
        raise ShapeError(f"verts_uvs: expected shape (U, 2), got {tuple(verts_uvs.shape)}")
    if faces_uvs.shape != faces.shape:
        raise ShapeError(f"faces_uvs: expected shape {tuple(faces.shape)} like faces, got {tuple(faces_uvs.shape)}")
    check_cameras(K, R, t, batch=B)
    device = verts.device
    bg = torch.as_tensor(background, dtype=verts.dtype, device=device).reshape(-1)
    if bg.numel() not in (1, texture.shape[1]):
        raise ShapeError(f"background: expected 1 or {texture.shape[1]} values, got {bg.numel()}")
    faces_id = (faces.data_ptr(), tuple(faces.shape), faces.dtype, faces.device)  # before any conversion
    faces = faces.to(device).long()
    backend = resolve_backend(backend, device)
    H, W = int(image_size[0]), int(image_size[1])
    screen = project_points(verts, K, R, t, (H, W))
    key = (tuple(screen.shape), H, W, backend, cull_backfaces, faces_id)

    def rasterise(index: torch.Tensor | None) -> torch.Tensor:
        if index is None:
            return _faces_of_pixels(verts, screen, faces, K, R, t, (H, W), backend, cull_backfaces)
        return _faces_of_pixels(verts[index], screen[index], faces, K[index], R[index], t[index], (H, W), backend,
                                cull_backfaces)

    pix_to_face = rasterise(None) if cache is None else cache.faces(screen, key, rasterise)
    pf = pixel_faces(screen, faces, pix_to_face)
    colors = sample_texture(texture, verts_uvs.to(device), faces_uvs.to(device).long(), pf)
    image = scatter_pixels(colors, pf, bg)
    return RenderOutput(image=image, mask=pf.mask, pixels=pf, num_faces=faces.shape[0])
