"""What the paper's Tables 6-9 (LiP-Flow, supplementary) are made of: the models, the tasks and the cells.

A *cell* is one model on one task of one subject (with or without the latent term L_L):
a decoding (the prior encoder's mean, or the DAM encoder's, rendered frontally) or a fit
(to frontal, masked frontal, HMC or keypoint targets; Table 9 also fits the headset pose
under pose noise). Tables share cells: DAM's frontal fit is in Tables 6, 7 and 8.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ModelSpec", "Task", "Table", "Cell", "MODELS", "TASKS", "TABLES", "plan_cells", "table_models"]


@dataclass(frozen=True)
class ModelSpec:
    """A trained model of the evaluation.

    Attributes:
        title: the paper's row name.
        variant: training variant (:data:`avatarfit.models.catalog.VARIANTS`).
        condition: what its prior encoder sees (``hmc`` or ``kpt``; DAM and DAM-Flow have
            none, trained with the HMC data settings).
        pretrained: the model whose encoder and decoder it regresses (DAM-*-Reg).
    """

    title: str
    variant: str
    condition: str
    pretrained: str | None = None

    @property
    def conditional(self) -> bool:
        return self.variant not in ("dam", "dam_flow")

    @property
    def has_q(self) -> bool:
        """Has a DAM encoder Q of its own (DAM-*-Reg's is its frozen DAM's: n/a as in the paper)."""
        return self.variant not in ("dam_hmc_enc", "dam_hmc_reg")


MODELS: dict[str, ModelSpec] = {
    "dam": ModelSpec("DAM", "dam", "hmc"),
    "dam_flow": ModelSpec("DAM-Flow", "dam_flow", "hmc"),
    "dam_hmc_enc": ModelSpec("DAM-HMC Enc.", "dam_hmc_enc", "hmc"),
    "dam_hmc_reg": ModelSpec("DAM-HMC Reg.", "dam_hmc_reg", "hmc", pretrained="dam"),
    "lip_kl_hmc": ModelSpec("LiP-KL-HMC", "lip_kl", "hmc"),
    "lip_flow_hmc": ModelSpec("LiP-Flow-HMC", "lip_flow", "hmc"),
    "dam_kpt_enc": ModelSpec("DAM-KPT Enc.", "dam_hmc_enc", "kpt"),
    "dam_kpt_reg": ModelSpec("DAM-KPT Reg.", "dam_hmc_reg", "kpt", pretrained="dam"),
    "lip_kl_kpt": ModelSpec("LiP-KL-KPT", "lip_kl", "kpt"),
    "lip_flow_kpt": ModelSpec("LiP-Flow-KPT", "lip_flow", "kpt"),
}


@dataclass(frozen=True)
class Task:
    """A column group of the paper's tables.

    Attributes:
        name: key in cell names and files.
        kind: ``decode_prior``, ``decode_encoder`` or a fit target (``frontal``,
            ``masked``, ``hmc``, ``keypoints``).
        pose: fits the headset pose under pose noise (Table 9).
    """

    name: str
    kind: str
    pose: bool = False

    @property
    def is_fit(self) -> bool:
        return not self.kind.startswith("decode")


TASKS: dict[str, Task] = {t.name: t for t in (
    Task("decode_prior", "decode_prior"),
    Task("decode_encoder", "decode_encoder"),
    Task("hmc", "hmc"),
    Task("keypoints", "keypoints"),
    Task("frontal", "frontal"),
    Task("masked", "masked"),
    Task("hmc_pose", "hmc", pose=True),
)}


@dataclass(frozen=True)
class Table:
    """One of the paper's tables: rows (models) and column groups ``(task, with L_L, title)``."""

    number: int
    title: str
    rows: tuple[str, ...]
    columns: tuple[tuple[str, bool, str], ...]


def _ablation(number: int, cond: str, label: str, fit_title: str, obs: str) -> Table:
    rows = ("dam", f"dam_{cond}_enc", f"dam_{cond}_reg", f"lip_kl_{cond}", f"lip_flow_{cond}")
    cols = (("decode_prior", True, f"{label}-Encoder Decoding"), ("decode_encoder", True, "DAM-Encoder Decoding"),
            (obs, False, f"{fit_title} Fitting w/o L_L"), (obs, True, f"{fit_title} Fitting"),
            ("frontal", False, "Frontal Fitting w/o L_L"), ("frontal", True, "Frontal Fitting"),
            ("masked", False, "Masked Frontal Fitting w/o L_L"), ("masked", True, "Masked Frontal Fitting"))
    title = "HMC setting" if cond == "hmc" else "2D keypoint setting"
    return Table(number, f"Table {number}. Evaluations in the {title}", rows, cols)


TABLES: dict[int, Table] = {
    6: Table(6, "Table 6. DAM-Flow, DAM with unconditional latent flow",
             ("dam", "dam_flow", "lip_flow_hmc", "lip_flow_kpt"),
             (("decode_encoder", True, "DAM-Encoder Decoding"), ("frontal", True, "Frontal Fitting"))),
    7: _ablation(7, "hmc", "HMC", "HMC", "hmc"),
    8: _ablation(8, "kpt", "KPT", "KPT", "keypoints"),
    9: Table(9, "Table 9. Fitting latent code and headset pose to HMC observations",
             ("dam", "dam_hmc_enc", "dam_hmc_reg", "lip_kl_hmc", "lip_flow_hmc"),
             (("hmc_pose", True, "HMC Fitting with headset pose"),)),
}


@dataclass(frozen=True)
class Cell:
    """One model on one task (``latent``: with L_L). ``key`` names its files."""

    model: str
    task: str
    latent: bool

    @property
    def key(self) -> str:
        return f"{self.model}/{self.task}" + ("" if self.latent else "_noLL")

    def applies(self) -> bool:
        """Whether the paper has a number here (n/a: DAM's prior decoding, DAM-Reg's Q)."""
        spec, task = MODELS[self.model], TASKS[self.task]
        if task.kind == "decode_prior":
            return spec.conditional
        if task.kind == "decode_encoder":
            return spec.variant != "dam_hmc_reg"
        return True

    def canonical(self) -> "Cell":
        """The cell whose result this one shows: decodings do not depend on L_L."""
        return Cell(self.model, self.task, True) if not TASKS[self.task].is_fit else self


def table_models(numbers: tuple[int, ...], models: tuple[str, ...]) -> list[str]:
    """The configured models the tables have rows for (DAM-*-Reg's DAM first), in
    :data:`MODELS` order."""
    wanted = {m for n in numbers for m in TABLES[n].rows if m in models}
    wanted |= {MODELS[m].pretrained for m in wanted if MODELS[m].pretrained}
    return [m for m in MODELS if m in wanted]


def plan_cells(numbers: tuple[int, ...], models: tuple[str, ...]) -> list[Cell]:
    """Every distinct cell the tables need for these models (n/a cells left out), in the
    order they can run: decodings, fits, then pose fits (which reuse the HMC fit's
    searched settings)."""
    cells: dict[str, Cell] = {}
    for n in numbers:
        table = TABLES[n]
        for model in table.rows:
            if model not in models:
                continue
            for task, latent, _ in table.columns:
                cell = Cell(model, task, latent).canonical()
                if cell.applies():
                    cells.setdefault(cell.key, cell)
    order = {"decode_prior": 0, "decode_encoder": 0}
    return sorted(cells.values(), key=lambda c: (2 if TASKS[c.task].pose else order.get(TASKS[c.task].kind, 1)))
