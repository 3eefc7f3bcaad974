"""Synthetic head-mounted-camera (HMC) samples, in memory.

For a captured frame: sample a headset pose around the rig's nominal pose, render the
tracked mesh with the frame's average texture into the three HMC cameras, convert to
an infrared-like grey image and augment it (gain, directional shading, random
background, sensor noise, intrinsic jitter); project the 274 keypoints into the
frontal capture camera. :class:`SyntheticHmc` serves these samples for training;
:mod:`avatarfit.synth.hmc_write` writes the same samples to disk.

Randomness is drawn from a generator seeded by ``(seed, segment, frame)``, so a sample
does not depend on which other frames are generated or in which order.
"""

from __future__ import annotations

import math
import os
import zlib
from dataclasses import dataclass
from typing import Sequence

import torch

from ..data.capture import Capture, FrameRef
from ..data.layout import AVERAGE
from ..data.surface import SurfacePoints
from ..errors import FormatError, ShapeError
from ..render.mesh_ops import surface_points, vertex_normals
from ..render.grey import IR_WEIGHTS, to_grey
from ..render.renderer import render_textured
from .hmc_rig import HmcRig, compose_cameras, default_rig
from .keypoints import NUM_KEYPOINTS, keypoint_definition, project_keypoints

__all__ = ["HmcConfig", "HmcSample", "SyntheticHmc", "frame_generator", "sample_headset", "augment_views",
           "render_hmc_views", "check_frame_files"]


@dataclass(frozen=True)
class HmcConfig:
    """Settings of the synthetic-HMC generator.

    Attributes:
        views_size: ``(H, W)`` of each HMC image (the paper uses 480x640).
        pose_noise_rot: standard deviation of the headset rotation about each axis (degrees).
        pose_noise_trans: standard deviation of the headset translation along each axis (mm).
            0.5 and 0.5 move the face by about 1.6 pixels at 120x160 (2 and 2: 6.4 pixels,
            more than most expressions move it; a prior trained on 200 frames under that
            noise predicted test frames' codes with R^2 -0.2 against 0.5 at 0.5 / 0.5,
            ``benchmarks/prior_study.py``). Fitting the headset pose (Table 9) adds its own
            noise (``--pose-noise-rot/--pose-noise-trans``).
        seed: seed of every random draw.
        augment: False gives clean renderings (black background, no gain, shading,
            noise or intrinsic jitter); the headset pose is still sampled.
        gain: range of the uniform image gain.
        shading: range of the strength of the directional light term (0 = flat).
        background: range of the mean level of the random background texture.
        noise: range of the standard deviation of Gaussian sensor noise.
        focal_jitter: relative standard deviation of the focal length, per camera.
        center_jitter: standard deviation of the principal point, as a fraction of the width.
        ir_weights: weights of R, G, B in the infrared-like grey (skin is bright in IR).
        backend: rasteriser (``auto``, ``bbox`` or ``pytorch3d``).
    """

    views_size: tuple[int, int] = (240, 320)
    pose_noise_rot: float = 0.5
    pose_noise_trans: float = 0.5
    seed: int = 0
    augment: bool = True
    gain: tuple[float, float] = (0.6, 1.3)
    shading: tuple[float, float] = (0.2, 0.7)
    background: tuple[float, float] = (0.02, 0.4)
    noise: tuple[float, float] = (0.005, 0.03)
    focal_jitter: float = 0.02
    center_jitter: float = 0.01
    ir_weights: tuple[float, float, float] = IR_WEIGHTS
    backend: str = "auto"

    def __post_init__(self) -> None:
        if len(self.views_size) != 2 or min(self.views_size) < 8:
            raise ValueError(f"views_size: expected (H, W) of at least 8x8, got {self.views_size}")
        for name in ("pose_noise_rot", "pose_noise_trans", "focal_jitter", "center_jitter"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{name}: expected a finite value >= 0, got {value}")
        for name in ("gain", "shading", "background", "noise"):
            lo, hi = getattr(self, name)
            if not (0 <= lo <= hi):
                raise ValueError(f"{name}: expected a range (low, high) with 0 <= low <= high, got {(lo, hi)}")
        if any(w < 0 for w in self.ir_weights) or sum(self.ir_weights) <= 0:
            raise ValueError(f"ir_weights: expected non-negative weights with a positive sum, got {self.ir_weights}")


@dataclass(frozen=True)
class HmcSample:
    """One frame seen by the headset.

    Attributes:
        segment, frame: the capture frame.
        views: ``(3, 1, H, W)`` grey images in [0, 1] (8-bit levels, as written to PNG),
            in :data:`~avatarfit.data.layout.HMC_VIEWS` order.
        masks: ``(3, 1, H, W)`` 1 where the face covers the pixel.
        headset_R, headset_t: ``(3, 3)``, ``(3,)`` head-local -> headset pose used.
        K, R, t: ``(3, 3, 3)``, ``(3, 3, 3)``, ``(3, 3)`` the cameras used (K with jitter),
            head-local -> camera.
        keypoints: ``(274, 2)`` pixels in the keypoint camera.
        visible: ``(274,)`` bool.
        keypoint_camera: capture camera of the keypoints.
    """

    segment: str
    frame: str
    views: torch.Tensor
    masks: torch.Tensor
    headset_R: torch.Tensor
    headset_t: torch.Tensor
    K: torch.Tensor
    R: torch.Tensor
    t: torch.Tensor
    keypoints: torch.Tensor
    visible: torch.Tensor
    keypoint_camera: str


def frame_generator(seed: int, segment: str, frame: str, draw: int = 0) -> torch.Generator:
    """Generator seeded from ``(seed, segment, frame, draw)`` (stable across runs and
    platforms); draw 0 is the frame's first draw, the one written to disk."""
    text = f"{seed}/{segment}/{frame}" + (f"/{draw}" if draw else "")
    return torch.Generator().manual_seed(zlib.crc32(text.encode()) + (seed << 32))


def _uniform(gen: torch.Generator, lo_hi: tuple[float, float], n: int) -> torch.Tensor:
    lo, hi = lo_hi
    return lo + (hi - lo) * torch.rand(n, generator=gen)


def _axis_angle(v: torch.Tensor) -> torch.Tensor:
    """Rotation matrix of an axis-angle vector ``(3,)`` (Rodrigues)."""
    angle = v.norm()
    if float(angle) < 1e-12:
        return torch.eye(3, dtype=v.dtype)
    k = v / angle
    Kx = torch.tensor([[0.0, -k[2], k[1]], [k[2], 0.0, -k[0]], [-k[1], k[0], 0.0]], dtype=v.dtype)
    return torch.eye(3, dtype=v.dtype) + torch.sin(angle) * Kx + (1 - torch.cos(angle)) * (Kx @ Kx)


def sample_headset(rig: HmcRig, config: HmcConfig, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Perturb the nominal headset pose: a rotation about the headset origin and a shift.

    Returns:
        ``R (3, 3)``, ``t (3,)`` float32, head-local -> headset:
        ``x_headset = R_d (R_n x + t_n) + t_d``.
    """
    rot = torch.randn(3, generator=gen, dtype=torch.float64) * math.radians(config.pose_noise_rot)
    shift = torch.randn(3, generator=gen, dtype=torch.float64) * config.pose_noise_trans
    Rn, tn = (torch.as_tensor(a, dtype=torch.float64) for a in (rig.headset_R, rig.headset_t))
    Rd = _axis_angle(rot)
    return (Rd @ Rn).float(), (Rd @ tn + shift).float()


def _jitter_intrinsics(K: torch.Tensor, config: HmcConfig, gen: torch.Generator, width: int) -> torch.Tensor:
    n = K.shape[0]
    scale = 1.0 + config.focal_jitter * torch.randn(n, generator=gen)
    shift = config.center_jitter * width * torch.randn(n, 2, generator=gen)
    K = K.clone()
    K[:, 0, 0] *= scale
    K[:, 1, 1] *= scale
    K[:, :2, 2] += shift
    return K


def _background(config: HmcConfig, gen: torch.Generator, n: int, size: tuple[int, int]) -> torch.Tensor:
    """Random smooth textures ``(n, 1, H, W)``: coarse blotches plus finer grain."""
    H, W = size
    level = _uniform(gen, config.background, n).view(n, 1, 1, 1)
    coarse = torch.rand(n, 1, max(2, H // 40), max(2, W // 40), generator=gen)
    fine = torch.rand(n, 1, max(2, H // 8), max(2, W // 8), generator=gen)
    up = lambda x: torch.nn.functional.interpolate(x, size=(H, W), mode="bicubic", align_corners=False)  # noqa: E731
    tex = 0.75 * up(coarse) + 0.25 * up(fine)
    return (2.0 * level * tex).clamp(0.0, 1.0)


def augment_views(
    grey: torch.Tensor,
    mask: torch.Tensor,
    normals: torch.Tensor,
    config: HmcConfig,
    gen: torch.Generator,
) -> torch.Tensor:
    """Lighting, background and sensor noise.

    Args:
        grey: ``(B, 1, H, W)`` clean infrared-like renderings.
        mask: ``(B, 1, H, W)`` face mask.
        normals: ``(B, 3, H, W)`` unit surface normals in camera coordinates (0 off the face).
        config: ranges of the augmentations.
        gen: random generator.

    Returns:
        ``(B, 1, H, W)`` in [0, 1].
    """
    n, _, H, W = grey.shape
    gain = _uniform(gen, config.gain, n).view(n, 1, 1, 1)
    strength = _uniform(gen, config.shading, n).view(n, 1, 1, 1)
    # Light near the camera (IR LEDs sit around the lens), pointing into the scene.
    to_light = torch.cat([0.6 * torch.randn(n, 2, generator=gen), -torch.ones(n, 1)], 1)
    to_light = torch.nn.functional.normalize(to_light, dim=1).view(n, 3, 1, 1)
    lambert = (normals * to_light).sum(1, keepdim=True).clamp_min(0.0)
    face = grey * gain * (1.0 - strength + strength * lambert)
    background = _background(config, gen, n, (H, W))
    image = face * mask + background * (1.0 - mask)
    sigma = _uniform(gen, config.noise, n).view(n, 1, 1, 1)
    image = image + sigma * torch.randn(image.shape, generator=gen)
    return image.clamp(0.0, 1.0)


def _quantise(image: torch.Tensor) -> torch.Tensor:
    return torch.round(image.clamp(0.0, 1.0) * 255.0) / 255.0


def _pixel_normals(fragments, faces: torch.Tensor, normals: torch.Tensor, R: torch.Tensor) -> torch.Tensor:
    """Interpolated vertex normals in camera coordinates: ``(B, 3, H, W)``."""
    from pytorch3d.ops import interpolate_face_attributes

    B = normals.shape[0]
    face_normals = normals[:, faces].reshape(B * faces.shape[0], 3, 3)  # packed (B*F, 3 verts, 3)
    n = interpolate_face_attributes(fragments.pix_to_face, fragments.bary_coords, face_normals)[..., 0, :]
    n = torch.einsum("bij,bhwj->bhwi", R, n)
    return torch.nn.functional.normalize(n, dim=-1, eps=1e-12).permute(0, 3, 1, 2)


def render_hmc_views(
    verts: torch.Tensor,
    faces: torch.Tensor,
    verts_uvs: torch.Tensor,
    faces_uvs: torch.Tensor,
    texture: torch.Tensor,
    K: torch.Tensor,
    R: torch.Tensor,
    t: torch.Tensor,
    config: HmcConfig,
    gen: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Render one mesh into the HMC cameras as infrared-like grey images.

    Args:
        verts: ``(V, 3)`` head-local vertices.
        faces, verts_uvs, faces_uvs: topology.
        texture: ``(3, T, T)`` in [0, 1].
        K, R, t: ``(N, 3, 3)``, ``(N, 3, 3)``, ``(N, 3)`` head-local -> camera.
        config: image size, infrared weights, augmentation ranges (used when ``gen`` is given
            and ``config.augment``).
        gen: random generator for the augmentations.

    Returns:
        ``views (N, 1, H, W)`` quantised to 8-bit levels and ``masks (N, 1, H, W)``.
    """
    n = K.shape[0]
    vb = verts.unsqueeze(0).expand(n, -1, -1)
    out = render_textured(vb, faces, verts_uvs, faces_uvs, texture.unsqueeze(0).expand(n, -1, -1, -1),
                          K, R, t, config.views_size, backend=config.backend, background=0.0,
                          antialias=False)
    grey = to_grey(out.image, config.ir_weights) * out.mask
    if config.augment and gen is not None:
        normals = _pixel_normals(out.fragments, faces, vertex_normals(vb, faces), R) * out.mask
        grey = augment_views(grey, out.mask, normals, config, gen)
    return _quantise(grey), out.mask


def _mean_vertices(capture: Capture) -> torch.Tensor:
    """The capture's mean mesh (``vert_mean.bin``), else its first frame."""
    if capture.layout.vert_mean.is_file():
        return capture.stats.vert_mean
    ref = capture.frames()[0]
    return capture.vertices(ref.segment, ref.frame)


class SyntheticHmc:
    """Synthetic HMC samples of a capture's frames, made on demand (a map-style dataset).

    Args:
        capture: the capture (or its folder); needs tracked meshes, head poses, average
            textures, ``landmarks.txt`` and the keypoint camera's photos' size.
        config: generator settings.
        rig: HMC rig; default :func:`~avatarfit.synth.hmc_rig.default_rig` fitted to the
            capture's mean face.
        frames: frames to serve (default: all, in frame-list order).
        keypoint_camera: capture camera of the keypoints; default the most frontal one
            for the capture's first frame.
        keypoint_points: the 274 keypoint definitions; default
            :func:`~avatarfit.synth.keypoints.keypoint_definition` on the mean face.

    Example (``CAPTURE``: a capture folder with ``landmarks.txt``, as ``avatarfit synth`` writes):
        >>> hmc = SyntheticHmc(CAPTURE)
        >>> hmc[0].views.shape  # left eye, right eye, mouth; grey; HmcConfig().views_size
        torch.Size([3, 1, 240, 320])
    """

    def __init__(
        self,
        capture: Capture | str | os.PathLike,
        config: HmcConfig = HmcConfig(),
        *,
        rig: HmcRig | None = None,
        frames: Sequence[FrameRef] | None = None,
        keypoint_camera: str | None = None,
        keypoint_points: SurfacePoints | None = None,
    ) -> None:
        self.capture = capture if isinstance(capture, Capture) else Capture(capture)
        self.config = config
        cap = self.capture
        topo = cap.topology
        self.frames = list(frames) if frames is not None else cap.frames()
        mean = _mean_vertices(cap)
        landmarks = cap.landmarks
        if rig is None:
            lm = surface_points(mean[None], topo.faces, landmarks.faces, landmarks.bary)[0]
            rig = default_rig(lm, config.views_size)
        elif tuple(rig.image_size) != tuple(config.views_size):
            raise ValueError(f"rig: its images are {rig.image_size[0]}x{rig.image_size[1]}, but views_size is "
                             f"{config.views_size[0]}x{config.views_size[1]}")
        self.rig = rig
        if keypoint_camera is None:
            keypoint_camera = cap.frontal_camera()
        cap._check_camera(keypoint_camera)
        self.keypoint_camera = keypoint_camera
        if keypoint_points is None:
            keypoint_points = keypoint_definition(mean, topo.faces, landmarks)
        if len(keypoint_points) != NUM_KEYPOINTS:
            raise ShapeError(f"keypoint_points: expected {NUM_KEYPOINTS} points, got {len(keypoint_points)}")
        self.keypoint_points = keypoint_points
        self.keypoint_size = cap.image_size(keypoint_camera)

    def __len__(self) -> int:
        return len(self.frames)

    def __getitem__(self, index: int) -> HmcSample:
        ref = self.frames[index]
        return self.sample(ref.segment, ref.frame)

    def sample(self, segment: str, frame: str, draw: int = 0) -> HmcSample:
        """The sample of one frame (the same whatever else is generated); ``draw`` k > 0
        gives the frame's k-th independent draw of headset pose and augmentation."""
        cap, cfg = self.capture, self.config
        topo = cap.topology
        gen = frame_generator(cfg.seed, segment, frame, draw)
        verts = cap.vertices(segment, frame)
        texture = cap.texture(segment, frame)
        hR, ht = sample_headset(self.rig, cfg, gen)
        R, t = compose_cameras(self.rig, hR, ht)
        K = self.rig.intrinsics()
        if cfg.augment:
            K = _jitter_intrinsics(K, cfg, gen, cfg.views_size[1])
        views, masks = render_hmc_views(verts, topo.faces, topo.verts_uvs, topo.faces_uvs, texture, K, R, t, cfg,
                                        gen if cfg.augment else None)
        xy, vis = self.keypoints(segment, frame, verts)
        return HmcSample(segment, frame, views, masks, hR, ht, K, R, t, xy, vis, self.keypoint_camera)

    def keypoints(
        self, segment: str, frame: str, verts: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Only the keypoints of a frame: ``xy (274, 2)`` pixels and ``visible (274,)``.

        ``verts``: the frame's head-local ``(V, 3)`` vertices when already read.
        """
        cap = self.capture
        Kc, Rc, tc = (x.unsqueeze(0) for x in cap.camera_tensors(self.keypoint_camera))
        xy, vis = project_keypoints(cap.world_vertices(segment, frame, verts)[None], cap.topology.faces,
                                    self.keypoint_points, Kc, Rc, tc, self.keypoint_size, backend=self.config.backend)
        return xy[0], vis[0]


def check_frame_files(capture: Capture, frames: Sequence[FrameRef]) -> None:
    """Raise :class:`FormatError` naming the first missing mesh, pose or average texture
    of ``frames`` (and how many are missing), before anything is generated."""
    lay = capture.layout
    missing = []
    for ref in frames:
        for path in (lay.mesh_bin(ref.segment, ref.frame), lay.transform(ref.segment, ref.frame),
                     lay.texture(ref.segment, AVERAGE, ref.frame)):
            if not path.is_file():
                missing.append(path)
    if missing:
        kind = "tracked meshes, head poses or average textures"
        raise FormatError(missing[0], f"missing; the HMC tool needs {kind} for every frame "
                          f"({len(missing)} files missing over {len(frames)} frames)")

