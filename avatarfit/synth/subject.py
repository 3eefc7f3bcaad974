"""A synthetic subject: textured face mesh with UVs, surface landmarks and an expression rig."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..errors import ShapeError
from ..render.mesh_ops import surface_points

__all__ = ["ExpressionRig", "Subject", "CONTROLS"]

#: The rig's controls, in order. Each moves geometry and changes the texture together.
CONTROLS = (
    "jaw_open",
    "smile_left",
    "smile_right",
    "lip_pucker",
    "brow_raise",
    "blink_left",
    "blink_right",
    "cheek_puff",
)


@dataclass(frozen=True)
class ExpressionRig:
    """Linear blendshape rig acting on geometry and texture.

    Attributes:
        names: control names (K).
        vert_deltas: ``(K, V, 3)`` vertex offsets at control value 1 (mm, head-local).
        tex_deltas: ``(K, 3, T, T)`` texture offsets at control value 1.
    """

    names: tuple[str, ...]
    vert_deltas: torch.Tensor
    tex_deltas: torch.Tensor


@dataclass(frozen=True)
class Subject:
    """A face to render.

    Head-local frame: +y up, +z out of the face (towards a frontal camera), +x towards
    the subject's left (right-handed); units mm.

    Attributes:
        name: subject name.
        verts: ``(V, 3)`` rest-pose vertices.
        faces: ``(F, 3)`` int64.
        verts_uvs: ``(U, 2)`` UVs (OBJ convention, v up).
        faces_uvs: ``(F, 3)`` int64.
        texture: ``(3, T, T)`` albedo in [0, 1], row 0 at the top.
        landmark_faces: ``(L,)`` face index of each landmark (L = 68, iBUG order).
        landmark_bary: ``(L, 3)`` barycentric coordinates of each landmark.
        rig: the expression rig.
    """

    name: str
    verts: torch.Tensor
    faces: torch.Tensor
    verts_uvs: torch.Tensor
    faces_uvs: torch.Tensor
    texture: torch.Tensor
    landmark_faces: torch.Tensor
    landmark_bary: torch.Tensor
    rig: ExpressionRig

    @property
    def num_controls(self) -> int:
        return len(self.rig.names)

    def pose(self, controls: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Apply control values.

        Args:
            controls: ``(B, K)`` values, clamped to [0, 1].

        Returns:
            ``verts (B, V, 3)`` head-local and ``texture (B, 3, T, T)`` in [0, 1].
        """
        K = self.num_controls
        if controls.ndim != 2 or controls.shape[1] != K:
            raise ShapeError(f"controls: expected shape (B, {K}) for controls {self.rig.names}, got {tuple(controls.shape)}")
        c = controls.clamp(0.0, 1.0).to(self.verts)
        verts = self.verts + torch.einsum("bk,kvd->bvd", c, self.rig.vert_deltas)
        tex = self.texture + torch.einsum("bk,kchw->bchw", c, self.rig.tex_deltas)
        return verts, tex.clamp(0.0, 1.0)

    def landmarks(self, verts: torch.Tensor) -> torch.Tensor:
        """Landmark positions on posed meshes: ``(B, V, 3)`` -> ``(B, L, 3)``."""
        return surface_points(verts, self.faces, self.landmark_faces, self.landmark_bary)
