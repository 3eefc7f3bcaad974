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

from .._checks import check_shape
from ..errors import InvalidValueError, ShapeError
from .antialias import antialias as antialias_edges
from .antialias import face_neighbours, silhouette_edges
from .cameras import NEAR_PLANE, check_cameras, project_points, to_pytorch3d
from .pixels import PixelFaces, flat_to_images, pixel_faces, sample_texture, scatter_flat, to_fragments, unpack_faces
from .raster_bbox import drawn_faces, face_per_pixel, rasterize_screen

__all__ = ["BACKENDS", "FaceCache", "RenderOutput", "mesh_mask", "rasterize", "render_textured", "resolve_backend"]

BACKENDS = ("auto", "bbox", "pytorch3d")


def resolve_backend(backend: str, device: torch.device) -> str:
    """Map ``"auto"`` to ``"pytorch3d"`` on CUDA and ``"bbox"`` elsewhere."""
    if backend not in BACKENDS:
        raise ValueError(f"backend: expected one of {BACKENDS}, got {backend!r}")
    if backend == "auto":
        return "pytorch3d" if device.type == "cuda" else "bbox"
    return backend


def _check_mesh(verts: torch.Tensor, faces: torch.Tensor) -> None:
    check_shape("verts", verts, (None, None, 3))
    check_shape("faces", faces, (None, 3))
    if faces.numel() and (int(faces.min()) < 0 or int(faces.max()) >= verts.shape[1]):
        raise InvalidValueError(
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
):
    """Rasterise a batch of meshes that share ``faces``, one camera per mesh.

    Both backends draw the same faces (:func:`~avatarfit.render.raster_bbox.drawn_faces`):
    none that reaches the near plane (:data:`~avatarfit.render.cameras.NEAR_PLANE`), no sliver.

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
    screen = project_points(verts, K, R, t, image_size)
    if backend == "bbox":
        return rasterize_screen(screen, faces, image_size, near=NEAR_PLANE)
    drawn, _ = drawn_faces(screen.detach(), faces, image_size, NEAR_PLANE)
    return _pytorch3d_rasterize(verts, faces, drawn, K, R, t, image_size)


def _pytorch3d_rasterize(verts, faces, drawn, K, R, t, image_size):
    """PyTorch3D's hard rasteriser on the faces ``drawn (B, F)``: the others become
    degenerate (one vertex three times, which it skips), so face indices keep their meaning."""
    from pytorch3d.renderer import MeshRasterizer, RasterizationSettings
    from pytorch3d.structures import Meshes

    per_mesh = torch.where(drawn.unsqueeze(-1), faces.unsqueeze(0), faces[:1, :1])  # (B, F, 3)
    if verts.dtype != torch.float32:  # PyTorch3D's cameras and kernels are float32 only
        verts, K, R, t = verts.float(), K.float(), R.float(), t.float()
    meshes = Meshes(verts=verts, faces=per_mesh)
    settings = RasterizationSettings(
        image_size=(int(image_size[0]), int(image_size[1])),
        blur_radius=0.0,
        faces_per_pixel=1,
        bin_size=None if verts.is_cuda else 0,
    )
    return MeshRasterizer(cameras=to_pytorch3d(K, R, t, image_size), raster_settings=settings)(meshes)


def _faces_of_pixels(verts: torch.Tensor, screen: torch.Tensor, faces: torch.Tensor, drawn: torch.Tensor,
                     K: torch.Tensor, R: torch.Tensor, t: torch.Tensor, image_size: tuple[int, int],
                     backend: str) -> torch.Tensor:
    """The hard test of either backend: ``(B, H, W)`` face index (not packed), -1 where empty."""
    if backend == "bbox":
        return face_per_pixel(screen.detach(), faces, image_size, drawn=drawn)
    with torch.no_grad():
        packed = _pytorch3d_rasterize(verts.detach(), faces, drawn, K, R, t, image_size).pix_to_face[..., 0]
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

    def neighbours(self, faces: torch.Tensor, faces_id: tuple) -> tuple[torch.Tensor, torch.Tensor]:
        """:func:`~avatarfit.render.antialias.face_neighbours` of ``faces``, computed once per mesh topology."""
        if self._adjacency is None or self._adjacency[0] != faces_id:
            self._adjacency = (faces_id, face_neighbours(faces))
        return self._adjacency[1]

    def keep_frames(self, frames: torch.Tensor, num_frames: int) -> None:
        """Keep only the images of ``frames (M,)``, indices into the ``num_frames`` frames of
        the batch rendered so far (each frame the same number of consecutive images), for a
        batch that drops frames: their kept faces and counters go on as if the others had
        never been rendered."""
        if self._pix_to_face is None or self._key is None:
            return
        n = self._pix_to_face.shape[0]
        if num_frames < 1 or n % num_frames:
            raise ValueError(f"keep_frames: {n} kept images are not {num_frames} frames of equal size")
        per = n // num_frames
        images = (frames.view(-1, 1) * per + torch.arange(per, device=frames.device)).reshape(-1)
        self._pix_to_face = self._pix_to_face[images]
        self._screen = self._screen[images]
        self._watch = self._watch[images]
        self._uses = self._uses[images]
        shape = (images.numel(),) + tuple(self._key[0][1:])
        self._key = (shape,) + tuple(self._key[1:])

    def clear(self) -> None:
        """Forget the kept faces (the next rendering rasterises every image)."""
        self._adjacency: tuple | None = None
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
        mask: ``(B, 1, H, W)`` 1 where a face covers the pixel, 0 where none, and
            with antialiasing the covered fraction on outline pixels (differentiable).
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
def mesh_mask(verts: torch.Tensor, faces: torch.Tensor, K: torch.Tensor, R: torch.Tensor, t: torch.Tensor,
              image_size: tuple[int, int], *, backend: str = "auto") -> torch.Tensor:
    """Which pixels a batch of meshes covers, one camera per mesh (a tracked mesh's mask
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
    antialias: bool = True,
    cache: FaceCache | None = None,
) -> RenderOutput:
    """Render textured meshes, one camera each; differentiable in verts, texture, K, R, t.

    With ``antialias`` (the default) the pixels on both sides of every silhouette and
    occlusion edge are blended by where the edge crosses them
    (:mod:`avatarfit.render.antialias`), so the image and the mask are continuous functions
    of the vertices at outlines too and their gradients say where an outline should move;
    without it each pixel shows one face or the background (what data generation and
    metrics use), and only texture sliding inside faces moves a fit.

    Args:
        verts: ``(B, V, 3)`` world vertices.
        faces: ``(F, 3)`` vertex indices.
        verts_uvs: ``(U, 2)`` UVs in [0, 1], OBJ convention (v up).
        faces_uvs: ``(F, 3)`` UV indices.
        texture: ``(B, C, T, T)`` texture images, row 0 at the top (C = 1 or 3).
        K, R, t: ``(B, 3, 3)``, ``(B, 3, 3)``, ``(B, 3)`` OpenCV cameras.
        image_size: ``(H, W)``.
        backend: rasteriser, see :func:`rasterize`.
        background: scalar or per-channel value of empty pixels (outlines blend into it).
        antialias: blend silhouette edges (differentiable outlines).
        cache: a :class:`FaceCache` to keep each pixel's face between calls (fitting).

    Returns:
        :class:`RenderOutput`; its ``mask`` is the antialiased mask in [0, 1] (the hard
        one is ``pixels.mask``).

    Example (one grey triangle 100 mm in front of a camera at the origin):
        >>> import torch
        >>> verts = torch.tensor([[[-40.0, -40.0, 100.0], [40.0, -40.0, 100.0], [0.0, 40.0, 100.0]]])
        >>> faces = torch.tensor([[0, 1, 2]])
        >>> uvs, tex = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.5, 1.0]]), torch.full((1, 3, 8, 8), 0.5)
        >>> K = torch.tensor([[[100.0, 0.0, 48.0], [0.0, 100.0, 64.0], [0.0, 0.0, 1.0]]])
        >>> out = render_textured(verts, faces, uvs, faces, tex, K, torch.eye(3)[None], torch.zeros(1, 3), (128, 96))
        >>> out.image.shape, float(out.image[0, :, 64, 48].mean())
        (torch.Size([1, 3, 128, 96]), 0.5)
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
    C = texture.shape[1]
    if bg.numel() not in (1, C):
        raise ShapeError(f"background: expected 1 or {C} values, got {bg.numel()}")
    faces_id = (faces.data_ptr(), tuple(faces.shape), faces.dtype, faces.device)  # before any conversion
    faces = faces.to(device).long()
    backend = resolve_backend(backend, device)
    H, W = int(image_size[0]), int(image_size[1])
    screen = project_points(verts, K, R, t, (H, W))
    drawn, area = drawn_faces(screen.detach(), faces, (H, W), NEAR_PLANE)
    key = (tuple(screen.shape), H, W, backend, faces_id)

    def rasterise(index: torch.Tensor | None) -> torch.Tensor:
        if index is None:
            return _faces_of_pixels(verts, screen, faces, drawn, K, R, t, (H, W), backend)
        return _faces_of_pixels(verts[index], screen[index], faces, drawn[index], K[index], R[index], t[index],
                                (H, W), backend)

    if cache is None:
        pix_to_face = rasterise(None)
    else:
        # Kept faces that are no longer drawn (they reached the near plane, became slivers)
        # are dropped at once rather than at the next rasterisation.
        kept = cache.faces(screen, key, rasterise)
        items = torch.arange(B, device=device).view(B, 1, 1) * faces.shape[0]
        pix_to_face = torch.where(drawn.reshape(-1)[(kept + items).clamp(min=0)] & (kept >= 0), kept, -1)
    pf = pixel_faces(screen, faces, pix_to_face)
    colors = sample_texture(texture, verts_uvs.to(device), faces_uvs.to(device).long(), pf)
    flat = scatter_flat(colors, pf, bg)
    if not antialias:
        return RenderOutput(image=flat_to_images(flat, (B, H, W)), mask=pf.mask, pixels=pf, num_faces=faces.shape[0])
    covered = (pix_to_face.reshape(-1, 1) >= 0).to(flat.dtype)
    depth = torch.full((B * H * W,), float("inf"), dtype=flat.dtype, device=device)
    depth = depth.index_put_((pf.index,), pf.depth.detach()).view(B, H, W)
    neighbour, opposite = face_neighbours(faces) if cache is None else cache.neighbours(faces, faces_id)
    silhouette = silhouette_edges(area, drawn, neighbour, opposite)
    both = antialias_edges(torch.cat([flat, covered], 1), pix_to_face, depth, screen, faces, silhouette, neighbour)
    return RenderOutput(image=flat_to_images(both[:, :C], (B, H, W)), mask=flat_to_images(both[:, C:], (B, H, W)),
                        pixels=pf, num_faces=faces.shape[0])
