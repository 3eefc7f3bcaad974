"""A trained avatar: decode a latent code and render it in any cameras.

:class:`Avatar` bundles what using a trained model needs without its training capture:
the :class:`~avatarfit.models.variants.AvatarModel` (decoder and prior), the
normalisation statistics, the topology with UVs, the keypoint definition (274 surface
points, when known), the background grey level, the variant and the condition.
Training, fitting and evaluation decode and render through it.

An avatar file (``avatar.pt``, written by ``avatarfit train`` beside ``best.pt``) holds
all of it; :meth:`Avatar.load` reads one, or a run folder's.

Cameras are OpenCV (``K`` in pixels, ``[R|t]`` world -> camera); the head pose
``(head_R, head_t)`` maps head-local millimetres to that world. Cameras given in the
head frame (the HMC cameras) take ``head_R = None``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ._io import atomic_path
from .data.stats import NormStats, resize_texture
from .data.surface import SurfacePoints
from .errors import FormatError, ShapeError
from .models.config import ModelConfig
from .models.variants import AvatarModel, build_model
from .render.cameras import camera_centers, project_points
from .render.grey import grey_weights, to_grey
from .render.mesh_ops import surface_points, vertex_normals
from .render.renderer import FaceCache, mesh_mask, render_textured

__all__ = ["Avatar", "AvatarViews", "AVATAR_FILE", "AVATAR_FORMAT"]

#: The avatar file's name in a run folder, and its format tag.
AVATAR_FILE = "avatar.pt"
AVATAR_FORMAT = "avatarfit-avatar-1"


@dataclass(frozen=True)
class AvatarViews:
    """Renderings of decoded codes, several cameras per code.

    Attributes:
        verts: ``(B, V, 3)`` decoded vertices, normalised (the decoder's output).
        image: ``(B, C, ch, H, W)`` renderings in [0, 1] (``ch`` = 3), background where empty.
        mask: ``(B, C, 1, H, W)`` 1 where the avatar covers the pixel, the covered fraction
            on its antialiased outline.
        normals: ``(B, C, 3, H, W)`` unit surface normals in each camera's coordinates on
            the covered pixels (0 elsewhere; constants, without gradient), when asked for.
    """

    verts: torch.Tensor
    image: torch.Tensor
    mask: torch.Tensor
    normals: torch.Tensor | None = None


def _identity_pose(B: int, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return (torch.eye(3, dtype=like.dtype, device=like.device).expand(B, 3, 3),
            torch.zeros(B, 3, dtype=like.dtype, device=like.device))


def _to_world(points: torch.Tensor, head_R: torch.Tensor, head_t: torch.Tensor) -> torch.Tensor:
    """Head-local ``(B, N, 3)`` -> world, ``R_f p + t_f`` with ``head_R (B, 3, 3)``, ``head_t (B, 3)``."""
    return points @ head_R.transpose(1, 2) + head_t[:, None]


class Avatar(nn.Module):
    """A trained avatar (see the module docstring).

    Args:
        model: the trained variant.
        stats: normalisation statistics, ``tex_mean`` at the model's texture size.
        faces: ``(F, 3)`` vertex indices; verts_uvs: ``(U, 2)``; faces_uvs: ``(F, 3)``.
        keypoints: the 274 keypoint definitions (face + barycentric), or ``None``.
        background: grey level of empty pixels (that of the training photos).
        backend: rasteriser, ``auto`` (bbox on CPU, PyTorch3D on CUDA), ``bbox`` or ``pytorch3d``.
        info: free-form provenance (run folder, capture, step) saved with the avatar.
    """

    def __init__(self, model: AvatarModel, stats: NormStats, faces: torch.Tensor, verts_uvs: torch.Tensor,
                 faces_uvs: torch.Tensor, *, keypoints: SurfacePoints | None = None, background: float = 0.0,
                 backend: str = "auto", info: dict[str, Any] | None = None) -> None:
        super().__init__()
        T = model.config.dam.texture_size
        if stats.tex_mean.shape != (3, T, T):
            raise ShapeError(f"stats.tex_mean: expected shape (3, {T}, {T}) (the model's texture size), "
                             f"got {tuple(stats.tex_mean.shape)}")
        if stats.vert_mean.shape != (model.num_verts, 3):
            raise ShapeError(f"stats.vert_mean: expected shape ({model.num_verts}, 3), got {tuple(stats.vert_mean.shape)}")
        self.model = model
        self.register_buffer("tex_mean", stats.tex_mean.clone())
        self.register_buffer("vert_mean", stats.vert_mean.clone())
        self.register_buffer("faces", faces.clone().long())
        self.register_buffer("verts_uvs", verts_uvs.clone())
        self.register_buffer("faces_uvs", faces_uvs.clone().long())
        self.tex_std = float(stats.tex_std)
        self.vert_std = float(stats.vert_std)
        self.keypoint_points = keypoints
        if keypoints is not None:
            self.register_buffer("kp_faces", keypoints.faces.clone().long())
            self.register_buffer("kp_bary", keypoints.bary.clone())
        self.background = float(background)
        self.backend = backend
        self.info = dict(info or {})

    # -- what it is --------------------------------------------------------------------------
    @property
    def variant(self) -> str:
        return self.model.config.variant

    @property
    def condition(self) -> str:
        """``hmc`` or ``kpt``: what the prior encoder sees (unused by DAM and DAM-Flow)."""
        return self.model.config.condition

    @property
    def conditional(self) -> bool:
        return self.model.conditional

    @property
    def latent_size(self) -> int:
        """L, the size of a latent code."""
        return self.model.config.dam.latent

    @property
    def num_verts(self) -> int:
        return self.model.num_verts

    @property
    def stats(self) -> NormStats:
        return NormStats(self.tex_mean, self.tex_std, self.vert_mean, self.vert_std)

    def __repr__(self) -> str:
        kp = f", {self.kp_faces.shape[0]} keypoints" if self.keypoint_points is not None else ""
        return (f"Avatar({self.variant}, condition {self.condition}, latent {self.latent_size}, "
                f"{self.num_verts} vertices, texture {self.tex_mean.shape[-1]}{kp})")

    # -- decoding -----------------------------------------------------------------------------
    def decode(self, z: torch.Tensor, view: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Decode codes for one view direction each.

        Args:
            z: ``(B, L)`` codes in the decoder's latent space.
            view: ``(B, 3)`` unit vectors from the head to the camera, in the head frame.

        Returns:
            ``verts (B, V, 3)`` head-local mm and ``texture (B, 3, T, T)`` (about [0, 1]).
        """
        return self.geometry(z), self.model.decoder.decode_texture(z, view) * self.tex_std + self.tex_mean

    def geometry(self, z: torch.Tensor) -> torch.Tensor:
        """The decoded meshes alone: ``z (B, L)`` -> ``verts (B, V, 3)`` head-local mm."""
        return self.model.decoder.decode_geometry(z) * self.vert_std + self.vert_mean

    def encode(self, texture: torch.Tensor, verts: torch.Tensor) -> torch.Tensor:
        """The DAM encoder Q's mean code of tracked frames (the decoder's space).

        Args:
            texture: ``(B, 3, T', T')`` unwrapped textures in [0, 1], any size (resized to the
                model's as in training).
            verts: ``(B, V, 3)`` tracked meshes, head-local mm.

        Returns:
            ``(B, L)``.

        Raises:
            ValueError: for variants without a Q encoder (DAM-HMC-Enc).
        """
        if self.model.encoder is None:
            raise ValueError(f"the {self.variant} avatar has no DAM encoder Q (its codes come from the prior encoder)")
        T = self.tex_mean.shape[-1]
        tex = torch.stack([resize_texture(x, T) for x in texture.to(self.tex_mean)])
        mu, _ = self.model.encoder((tex - self.tex_mean) / self.tex_std, (verts.to(self.vert_mean) - self.vert_mean)
                                   / self.vert_std)
        return mu

    # -- the prior ----------------------------------------------------------------------------
    @torch.no_grad()
    def prior_mean(self, observation: torch.Tensor | None = None, batch: int | None = None):
        """The prior's parameters for ``batch`` frames and its mean in the decoder's space
        (where a fit starts).

        Args:
            observation: what a conditional avatar's prior encoder sees: ``(B, 3, 1, h, w)``
                HMC views or ``(B, 274, 2)`` normalised keypoints; ignored (may be ``None``)
                for DAM and DAM-Flow.
            batch: B, for unconditional avatars without an observation.

        Returns:
            ``z (B, L)`` and the :class:`~avatarfit.models.priors.PriorParams`.

        Raises:
            ValueError: a conditional avatar without an observation.
        """
        prior = self.model.prior
        if self.conditional:
            if observation is None:
                raise ValueError(f"observation: the {self.variant} avatar's prior is {self.condition.upper()}-"
                                 "conditioned and needs its observation")
            params = prior.params(observation.to(self.vert_mean))
        else:
            if batch is None:
                if observation is None:
                    raise ValueError("batch: give the number of frames (or their observation)")
                batch = observation.shape[0]
            params = prior.params(batch=batch)
        return prior.mean(params), params

    @staticmethod
    def view_vectors(R: torch.Tensor, t: torch.Tensor, head_R: torch.Tensor, head_t: torch.Tensor) -> torch.Tensor:
        """Unit vectors to the camera centres in the head frame, ``R_f^T (c - t_f)``.

        Args:
            R, t: ``(B, C, 3, 3)``, ``(B, C, 3)`` cameras; head_R, head_t: ``(B, 3, 3)``, ``(B, 3)``.

        Returns:
            ``(B, C, 3)``.
        """
        c = camera_centers(R, t)  # (B, C, 3) world
        v = ((c - head_t[:, None]).unsqueeze(-2) @ head_R[:, None]).squeeze(-2)  # R_f^T (c - t_f)
        return v / v.norm(dim=-1, keepdim=True).clamp_min(1e-8)

    def render_views(self, z: torch.Tensor, K: torch.Tensor, R: torch.Tensor, t: torch.Tensor,
                     image_size: tuple[int, int], head_R: torch.Tensor | None = None,
                     head_t: torch.Tensor | None = None, view: torch.Tensor | None = None, *,
                     channel_weights: torch.Tensor | None = None, background: float | None = None,
                     antialias: bool = True, cache: FaceCache | None = None, normals: bool = False) -> AvatarViews:
        """Decode each code once for its geometry and once per camera for its texture,
        and render it in its C cameras.

        Args:
            z: ``(B, L)``.
            K, R, t: ``(B, C, 3, 3)``, ``(B, C, 3, 3)``, ``(B, C, 3)`` OpenCV cameras.
            image_size: ``(H, W)`` of every camera.
            head_R, head_t: ``(B, 3, 3)``, ``(B, 3)`` head-local -> world; ``None``: cameras
                in the head frame.
            view: ``(B, C, 3)`` view vectors; default from the cameras and the head pose.
            channel_weights: ``(3,)`` render one channel, ``sum_c w_c texture_c / sum_c w_c``
                (an infrared-like grey; the same as converting the colour rendering, since
                sampling and the weighted sum are both linear, at a third of the cost).
            background: grey level where no face is (outlines blend into it); default the
                avatar's.
            antialias: antialiased, differentiable outlines (see
                :func:`~avatarfit.render.renderer.render_textured`).
            cache: a :class:`~avatarfit.render.renderer.FaceCache` kept across calls on the
                same frames and cameras (the steps of a fit).
            normals: also return each covered pixel's surface normal in camera coordinates
                (interpolated vertex normals, without gradient: for a shading model).

        Returns:
            :class:`AvatarViews`, frames by cameras (``ch`` = 1 with ``channel_weights``).
        """
        B = z.shape[0]
        if K.ndim != 4 or K.shape[0] != B or K.shape[2:] != (3, 3):
            raise ShapeError(f"K: expected shape ({B}, C, 3, 3), got {tuple(K.shape)}")
        C = K.shape[1]
        if R.shape != (B, C, 3, 3) or t.shape != (B, C, 3):
            raise ShapeError(f"R, t: expected shapes ({B}, {C}, 3, 3) and ({B}, {C}, 3), got {tuple(R.shape)} "
                             f"and {tuple(t.shape)}")
        if head_R is None:
            head_R, head_t = _identity_pose(B, z)
        if view is None:
            view = self.view_vectors(R, t, head_R, head_t)
        dec = self.model.decoder
        verts_n = dec.decode_geometry(z)
        verts = verts_n * self.vert_std + self.vert_mean
        world = _to_world(verts, head_R, head_t)
        if channel_weights is None:
            tex = dec.decode_texture_views(z, view) * self.tex_std + self.tex_mean  # (B * C, 3, T, T)
        else:
            if channel_weights.shape != (3,):
                raise ShapeError(f"channel_weights: expected shape (3,), got {tuple(channel_weights.shape)}")
            w = grey_weights(channel_weights, z)
            grey_mean = to_grey(self.tex_mean, channel_weights)
            tex = dec.decode_texture_views(z, view, w) * self.tex_std + grey_mean  # (B * C, 1, T, T)
        out = render_textured(world.repeat_interleave(C, 0), self.faces, self.verts_uvs, self.faces_uvs, tex,
                              K.flatten(0, 1), R.flatten(0, 1), t.flatten(0, 1), image_size, backend=self.backend,
                              background=self.background if background is None else background,
                              antialias=antialias, cache=cache)
        shading = None
        if normals:
            with torch.no_grad():
                n = vertex_normals(world, self.faces.long())  # (B, V, 3) world
                pf = out.pixels
                item = pf.index // (image_size[0] * image_size[1])  # rendered image (frame x camera) of each pixel
                corners = (item // C)[:, None] * n.shape[1] + self.faces.long()[pf.face]  # (N, 3) into (B V)
                pix = (n.flatten(0, 1)[corners] * pf.bary[..., None]).sum(1)
                pix = torch.nn.functional.normalize((R.flatten(0, 1)[item] @ pix[..., None])[..., 0], dim=-1, eps=1e-12)
                flat = torch.zeros(B * C * image_size[0] * image_size[1], 3, dtype=pix.dtype, device=pix.device)
                flat[pf.index] = pix
                shading = flat.view(B, C, image_size[0], image_size[1], 3).permute(0, 1, 4, 2, 3).contiguous()
        return AvatarViews(verts_n, out.image.view(B, C, *out.image.shape[1:]), out.mask.view(B, C, *out.mask.shape[1:]),
                           shading)

    def render(self, z: torch.Tensor, K: torch.Tensor, R: torch.Tensor, t: torch.Tensor, image_size: tuple[int, int],
               head_R: torch.Tensor | None = None, head_t: torch.Tensor | None = None) -> AvatarViews:
        """:meth:`render_views` with one camera per code: ``K, R (B, 3, 3)``, ``t (B, 3)``;
        the result has C = 1."""
        return self.render_views(z, K[:, None], R[:, None], t[:, None], image_size, head_R, head_t)

    def mesh_mask(self, verts: torch.Tensor, K: torch.Tensor, R: torch.Tensor, t: torch.Tensor,
                  image_size: tuple[int, int], head_R: torch.Tensor | None = None,
                  head_t: torch.Tensor | None = None) -> torch.Tensor:
        """Which pixels meshes of this avatar's topology cover, one camera per mesh (for a
        tracked mesh: the face mask training scores, and the evaluation's face pixels).

        Args:
            verts: ``(B, V, 3)`` head-local.
            K, R, t: ``(B, 3, 3)``, ``(B, 3, 3)``, ``(B, 3)`` OpenCV cameras.
            image_size: ``(H, W)``.
            head_R, head_t: ``(B, 3, 3)``, ``(B, 3)`` head-local -> world; ``None``: identity.

        Returns:
            ``(B, 1, H, W)`` float, 1 where a face covers the pixel.
        """
        if verts.ndim != 3 or verts.shape[1:] != (self.num_verts, 3):
            raise ShapeError(f"verts: expected shape (B, {self.num_verts}, 3), got {tuple(verts.shape)}")
        if head_R is None:
            head_R, head_t = _identity_pose(verts.shape[0], verts)
        return mesh_mask(_to_world(verts, head_R, head_t), self.faces, K, R, t, image_size, backend=self.backend)

    def surface(self, z: torch.Tensor) -> torch.Tensor:
        """The 3D keypoints of the decoded meshes: ``(B, N, 3)`` head-local mm."""
        if self.keypoint_points is None:
            raise ValueError("keypoints: this avatar has no keypoint definition (its capture had no "
                             "keypoints/points.txt or landmarks.txt when it was trained)")
        return surface_points(self.geometry(z), self.faces, self.kp_faces, self.kp_bary)

    def keypoints(self, z: torch.Tensor, K: torch.Tensor, R: torch.Tensor, t: torch.Tensor,
                  image_size: tuple[int, int], head_R: torch.Tensor | None = None,
                  head_t: torch.Tensor | None = None) -> torch.Tensor:
        """Project the keypoints of the decoded meshes.

        Args:
            z: ``(B, L)``; K, R, t: ``(B, 3, 3)``, ``(B, 3, 3)``, ``(B, 3)``; image_size ``(H, W)``;
            head_R, head_t: ``(B, 3, 3)``, ``(B, 3)`` or ``None`` (cameras in the head frame).

        Returns:
            ``(B, N, 2)`` pixel coordinates (pixel centres at ``i + 0.5``), differentiable in z.
        """
        p = self.surface(z)
        if head_R is not None:
            p = _to_world(p, head_R, head_t)
        return project_points(p, K, R, t, image_size)[..., :2]

    # -- files ----------------------------------------------------------------------------------
    def payload(self) -> dict[str, Any]:
        """What :meth:`save` writes (plain tensors and values)."""
        from .config import to_dict

        kp = None if self.keypoint_points is None else {"faces": self.kp_faces.cpu(), "bary": self.kp_bary.cpu()}
        return {"format": AVATAR_FORMAT, "model_config": to_dict(self.model.config), "num_verts": self.num_verts,
                "model": {k: v.cpu() for k, v in self.model.state_dict().items()},
                "stats": {"tex_mean": self.tex_mean.cpu(), "tex_std": self.tex_std, "vert_mean": self.vert_mean.cpu(),
                          "vert_std": self.vert_std},
                "topology": {"faces": self.faces.cpu(), "verts_uvs": self.verts_uvs.cpu(),
                             "faces_uvs": self.faces_uvs.cpu()},
                "keypoints": kp, "background": self.background, "info": self.info}

    def save(self, path: str | os.PathLike) -> Path:
        """Write the avatar file atomically; returns its path."""
        path = Path(path)
        with atomic_path(path) as tmp:
            torch.save(self.payload(), tmp)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike, map_location: str | torch.device = "cpu", backend: str = "auto") -> "Avatar":
        """Read an avatar file, or the ``avatar.pt`` of a run folder, in eval mode.

        Raises:
            FormatError: naming the file or folder, when it is missing, not an avatar file
                (a training checkpoint, say), or unreadable.
        """
        from .config import from_dict

        path = Path(path)
        if path.is_dir():
            if not (path / AVATAR_FILE).is_file():
                has_ckpt = any((path / n).is_file() for n in ("best.pt", "last.pt"))
                hint = (" (a run from before avatar files: write one with `avatarfit export-avatar --run "
                        f"{path} --capture CAPTURE`, the capture it was trained on)") if has_ckpt else \
                    " (not a run folder of avatarfit train)"
                raise FormatError(path, f"no {AVATAR_FILE} in this folder{hint}")
            path = path / AVATAR_FILE
        if not path.is_file():
            raise FormatError(path, "avatar file not found")
        try:
            payload = torch.load(path, map_location=map_location, weights_only=True)
        except Exception as exc:  # noqa: BLE001 - torch raises many kinds on a bad file
            raise FormatError(path, f"not a readable avatar file ({type(exc).__name__}: {exc})") from None
        if not isinstance(payload, dict) or payload.get("format") != AVATAR_FORMAT:
            found = payload.get("format") if isinstance(payload, dict) else type(payload).__name__
            raise FormatError(path, f"not an avatar file (expected format {AVATAR_FORMAT!r}, found {found!r}); "
                              f"a run folder's avatar is {AVATAR_FILE}")
        info = payload.get("info")
        if info is not None and not isinstance(info, dict):
            raise FormatError(path, f"avatar file field 'info': expected a mapping, found {type(info).__name__}")
        for key, kind in (("model_config", dict), ("model", dict), ("stats", dict), ("topology", dict)):
            if not isinstance(payload.get(key), kind):
                found = "nothing" if key not in payload else type(payload[key]).__name__
                raise FormatError(path, f"avatar file field {key!r}: expected a mapping, found {found}")
        try:
            config = from_dict(ModelConfig, payload["model_config"], where="model_config")
            model = build_model(config, int(payload["num_verts"]))
            model.load_state_dict(payload["model"])
            st, topo = payload["stats"], payload["topology"]
            stats = NormStats(st["tex_mean"], float(st["tex_std"]), st["vert_mean"], float(st["vert_std"]))
            kp = payload["keypoints"]
            keypoints = None if kp is None else SurfacePoints(kp["faces"], kp["bary"])
            avatar = cls(model, stats, topo["faces"], topo["verts_uvs"], topo["faces_uvs"], keypoints=keypoints,
                         background=float(payload["background"]), backend=backend, info=info)
        except (KeyError, RuntimeError, ValueError, TypeError, AttributeError, IndexError) as exc:
            raise FormatError(path, f"avatar file is incomplete or inconsistent ({type(exc).__name__}: {exc})") from None
        return avatar.eval()
