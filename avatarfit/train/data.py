"""Training batches from a capture: normalised DAM inputs, photos with face masks in a few
cameras, and the prior encoder's observation (HMC views or keypoints).

Batches are drawn deterministically from ``(seed, step)``: a resumed run sees the same
batches as an uninterrupted one, and each of several processes takes its own slice of
the same global batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from ..data.cache import TensorCache
from ..data.capture import Capture, FrameRef
from ..data.layout import Layout
from ..data.splits import split_frames
from ..data.stats import NormStats, resize_texture
from ..data.surface import SurfacePoints, read_surface_points
from ..synth.keypoints import NUM_KEYPOINTS, keypoint_definition
from ..render.renderer import mesh_mask
from .config import TrainConfig

if TYPE_CHECKING:
    from ..avatar import Avatar

__all__ = ["TrainingData"]


@dataclass
class _Frame:
    texture: torch.Tensor  # (3, T, T) normalised, model size
    verts: torch.Tensor  # (V, 3) normalised
    head_R: torch.Tensor
    head_t: torch.Tensor
    condition: torch.Tensor | None


class TrainingData:
    """Frames of a capture prepared for one model.

    Args:
        capture: the capture.
        config: the training config (data settings, model texture size and condition).
        conditional: whether the prior encoder's observation is needed.
    """

    def __init__(self, capture: Capture, config: TrainConfig, conditional: bool) -> None:
        self.capture = capture
        self.config = config
        self.conditional = conditional
        self.splits = split_frames(capture, config.data.validation, config.data.test)
        self.train_frames, self.validation_frames = self.splits["train"], self.splits["validation"]
        cams = list(config.data.cameras) if config.data.cameras else capture.camera_names
        for cam in cams:
            if cam not in capture.cameras:
                raise ValueError(f"data.cameras: {cam!r} is not in {capture.layout.krt} (cameras: {capture.camera_names})")
        self.cameras = cams
        sizes = {cam: capture.image_size(cam) for cam in cams}
        if len(set(sizes.values())) != 1:
            raise ValueError(f"data.cameras: photos of different sizes do not batch: {sizes}; choose cameras of one size")
        self.image_size = next(iter(sizes.values()))
        self.frontal = capture.frontal_camera()
        if self.frontal not in cams:
            self.frontal = cams[0]
        stats = capture.stats
        #: The capture's statistics with the mean texture at the model's texture size.
        self.stats = NormStats(self._resize(stats.tex_mean), float(stats.tex_std), stats.vert_mean,
                               float(stats.vert_std))
        self.tex_mean, self.tex_std = self.stats.tex_mean, self.stats.tex_std
        self.vert_mean, self.vert_std = self.stats.vert_mean, self.stats.vert_std
        topo = capture.topology
        self.faces, self.verts_uvs, self.faces_uvs = topo.faces, topo.verts_uvs, topo.faces_uvs
        self.num_verts = topo.num_verts
        self.background = self._background()
        # Decoded frames (texture, vertices, pose, observation) and (frame, camera) photos with
        # masks, least recently used first out beyond data.cache_mb.
        self.cache = TensorCache(int(config.data.cache_mb * 2**20) if config.data.cache else 0)
        self._hmc = None
        self._kpt_points: SurfacePoints | None | bool = False  # False: not looked up yet
        self.observer = None
        if conditional:
            from ..synth.observe import Observer

            d = config.data
            self.observer = Observer(capture, config.model.condition, d.hmc_source, d.hmc, d.hmc_dir)
            self.observer.check([r for refs in self.splits.values() for r in refs])
            if d.hmc_source == "memory":
                self._hmc = self.observer.hmc

    def avatar(self, model, keypoints: bool = True) -> "Avatar":
        """``model`` as an :class:`~avatarfit.avatar.Avatar` with this capture's statistics,
        topology, background and (with ``keypoints``) keypoint definition: what training
        saves beside ``best.pt``."""
        from ..avatar import Avatar

        return Avatar(model, self.stats, self.faces, self.verts_uvs, self.faces_uvs,
                      keypoints=self.keypoint_points() if keypoints else None,
                      background=self.background, backend=self.config.train.backend,
                      info={"capture": str(self.capture.root), "frontal_camera": self.frontal,
                            "splits": {name: [f"{r.segment}/{r.frame}" for r in refs]
                                       for name, refs in self.splits.items()},
                            "observation": None if self.observer is None else self.observer.record()})

    def keypoint_points(self) -> SurfacePoints | None:
        """The 274 keypoint definitions: ``keypoints/points.txt`` of the HMC files when
        present, else the HMC tool's definition from the capture's landmarks, else ``None``."""
        if self._kpt_points is False:
            root = Path(self.config.data.hmc_dir) if self.config.data.hmc_dir else self.capture.root
            path = Layout(root).keypoint_points
            if self._hmc is not None:
                points = self._hmc.keypoint_points
            elif path.is_file():
                points = read_surface_points(path, count=NUM_KEYPOINTS, num_faces=int(self.faces.shape[0]))
            elif self.capture.layout.landmarks.is_file():
                points = keypoint_definition(self.stats.vert_mean, self.faces, self.capture.landmarks)
            else:
                points = None
            self._kpt_points = points
        return self._kpt_points

    def _resize(self, texture: torch.Tensor) -> torch.Tensor:
        return resize_texture(texture, self.config.model.dam.texture_size)

    def _background(self) -> float:
        """Grey level of empty pixels: ``synth.yaml``'s for synthetic captures, else 0."""
        import yaml

        path = self.capture.root / "synth.yaml"
        if path.is_file():
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
            return float(data.get("synth", {}).get("background", 0.0))
        return 0.0

    # -- per frame -------------------------------------------------------------------------
    @property
    def cache_bytes(self) -> int:
        """Bytes the cache holds now (at most ``data.cache_mb`` MiB)."""
        return self.cache.bytes

    def frame(self, ref: FrameRef) -> _Frame:
        return self.cache.get(("frame", ref.segment, ref.frame), lambda: self._read_frame(ref))

    def _read_frame(self, ref: FrameRef) -> _Frame:
        cap = self.capture
        tex = self.stats.normalise_texture(self._resize(cap.texture(ref.segment, ref.frame)))
        verts = self.stats.normalise_verts(cap.vertices(ref.segment, ref.frame))
        R, t = cap.head_pose(ref.segment, ref.frame)
        return _Frame(tex, verts, R, t, self._condition(ref) if self.conditional else None)

    def _condition(self, ref: FrameRef) -> torch.Tensor:
        return self.observer.observe(ref)

    @property
    def draws(self) -> int:
        """Observation draws per training frame (1 for keypoints: they see no headset)."""
        return self.config.data.observation_draws if self.conditional and self.config.model.condition == "hmc" else 1

    def observation(self, ref: FrameRef, draw: int = 0) -> torch.Tensor:
        """The prior encoder's observation of a frame under draw ``draw`` (see
        :meth:`~avatarfit.synth.observe.Observer.observe`); draw 0 is what fitting sees."""
        if draw == 0:
            return self.frame(ref).condition
        return self.cache.get(("observation", ref.segment, ref.frame, draw), lambda: self.observer.observe(ref, draw))

    def view(self, ref: FrameRef, camera: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Photo ``(3, H, W)``, face mask ``(1, H, W)`` (the tracked mesh's mask) and the
        unit view vector ``(3,)`` of one frame seen from one camera."""
        return self.cache.get(("view", ref.segment, ref.frame, camera), lambda: self._read_view(ref, camera))

    def _read_view(self, ref: FrameRef, camera: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        cap = self.capture
        photo = cap.photo(ref.segment, ref.frame, camera)
        K, R, t = cap.camera_tensors(camera)
        mask = mesh_mask(cap.world_vertices(ref.segment, ref.frame)[None], self.faces, K[None], R[None], t[None],
                        self.image_size, backend=self.config.train.backend)[0]
        return photo, mask, cap.view_vector(ref.segment, ref.frame, camera)

    # -- batches ---------------------------------------------------------------------------
    def collate(self, refs: list[FrameRef], cameras: list[list[str]], draws: list[int] | None = None
                ) -> dict[str, torch.Tensor]:
        """Stack frames and their cameras (and, for conditional models, each frame's
        observation under its draw in ``draws``, default 0).

        Returns:
            ``texture (B, 3, T, T)``, ``verts (B, V, 3)`` (normalised), ``head_R (B, 3, 3)``,
            ``head_t (B, 3)``, ``photo (B, C, 3, H, W)``, ``mask (B, C, 1, H, W)``,
            ``K, R (B, C, 3, 3)``, ``t (B, C, 3)``, ``view (B, C, 3)`` and, for conditional
            models, ``condition``: ``(B, 3, 1, h, w)`` views or ``(B, 274, 2)`` keypoints.
        """
        frames = [self.frame(r) for r in refs]
        cap = self.capture
        out: dict[str, torch.Tensor] = {
            "texture": torch.stack([f.texture for f in frames]),
            "verts": torch.stack([f.verts for f in frames]),
            "head_R": torch.stack([f.head_R for f in frames]),
            "head_t": torch.stack([f.head_t for f in frames]),
        }
        photos, masks, Ks, Rs, ts, views = [], [], [], [], [], []
        for ref, cams in zip(refs, cameras):
            pv = [self.view(ref, c) for c in cams]
            photos.append(torch.stack([p for p, _, _ in pv]))
            masks.append(torch.stack([m for _, m, _ in pv]))
            krt = [cap.camera_tensors(c) for c in cams]
            Ks.append(torch.stack([k[0] for k in krt]))
            Rs.append(torch.stack([k[1] for k in krt]))
            ts.append(torch.stack([k[2] for k in krt]))
            views.append(torch.stack([v for _, _, v in pv]))
        out.update(photo=torch.stack(photos), mask=torch.stack(masks), K=torch.stack(Ks), R=torch.stack(Rs),
                   t=torch.stack(ts), view=torch.stack(views))
        if self.conditional:
            draws = draws or [0] * len(refs)
            out["condition"] = torch.stack([self.observation(r, d) for r, d in zip(refs, draws)])
        return out

    def training_batch(self, step: int, rank: int = 0, world: int = 1) -> dict[str, torch.Tensor]:
        """This process's share of the global batch of ``step`` (deterministic), with
        ``noise (B, L)`` for the reparameterisation."""
        cfg = self.config
        gen = torch.Generator().manual_seed(cfg.train.seed * 1_000_003 + step)
        B = cfg.train.batch
        idx = torch.randint(len(self.train_frames), (B,), generator=gen)
        C = min(cfg.data.views_per_frame, len(self.cameras))
        cams = [[self.cameras[i] for i in torch.randperm(len(self.cameras), generator=gen)[:C].tolist()]
                for _ in range(B)]
        noise = torch.randn(B, cfg.model.dam.latent, generator=gen)
        draws = torch.randint(self.draws, (B,), generator=gen) if self.draws > 1 else torch.zeros(B, dtype=torch.long)
        per = B // world
        mine = slice(rank * per, (rank + 1) * per)
        batch = self.collate([self.train_frames[i] for i in idx[mine].tolist()], cams[mine], draws[mine].tolist())
        batch["noise"] = noise[mine]
        return batch

    def validation_batches(self, batch: int) -> list[dict[str, torch.Tensor]]:
        """The validation frames in the frontal camera, in batches, noise 0 (the codes' means):
        what early stopping and the best checkpoint are judged on."""
        frames = self.validation_frames or self.train_frames[-1:]
        out = []
        for i in range(0, len(frames), batch):
            refs = frames[i:i + batch]
            b = self.collate(refs, [[self.frontal]] * len(refs))
            b["noise"] = torch.zeros(len(refs), self.config.model.dam.latent)
            out.append(b)
        return out
