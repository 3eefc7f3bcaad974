"""What a fit job is (:class:`FitJob`, saved as ``config.yaml`` in its output folder) and
how two jobs compare (whether a folder's partial results can be resumed)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..config import to_dict
from ..data.splits import SPLIT_WORDS
from ..device import check_device_name
from ..observe.targets import TARGET_KINDS
from .optimize import FitConfig

__all__ = ["FitJob", "RECORDED_FIT", "job_dict", "job_differences"]

#: The fit settings ``avatarfit fit --hmc-dir`` uses unless told otherwise: a recording's
#: exposure and black level differ per camera (gain and bias per view), its IR light shades
#: the face (a Lambertian light per view), and what is behind the face is no rendering's
#: background (only the starting face's pixels are scored); its cameras are not quite the
#: rig's (the headset pose is fitted too). Chosen on validation frames of one subject among
#: seven ways of fitting a recording (benchmarks/results/recorded_hmc/).
RECORDED_FIT = {"photometric": True, "shading": True, "hmc_pixels": "face", "fit_headset": True}


@dataclass(frozen=True)
class FitJob:
    """What to fit and how (saved as ``config.yaml`` in the output folder).

    Attributes:
        run: run folder of ``avatarfit train`` (its ``avatar.pt``) or an avatar file.
        capture: capture folder whose frames are fitted; with ``hmc_dir`` optional (it then
            adds ground truth for the frames it has), ``None`` without one.
        hmc_dir: folder holding recorded HMC views in ``hmc/``
            (:class:`~avatarfit.observe.recorded.RecordedHmc`): HMC targets are read from it
            instead of rendered from the capture; without ``capture`` its frames are the
            ones fitted (``frames`` then selects among them).
        rig: rig file of the recording instead of ``hmc_dir/hmc/rig.txt``.
        target: ``frontal``, ``masked``, ``hmc`` or ``keypoints``.
        frames: ``test`` (the avatar's test frames: what results are reported on),
            ``validation`` (the frames settings are chosen on), ``train``, each also as
            ``NAME:N`` (N of them, spread evenly); ``heldout`` is ``test``; or a spec of
            :func:`~avatarfit.data.selection.select_frames` (positions ``N``, ``A:B``,
            segment names; empty: every frame).
        batch: frames fitted together (one code each; independent objectives and stops).
        sequence: fit each segment's frames in order, warm-starting each from the previous.
        search: pick lr and lambda_L on the avatar's validation frames (the first batch of
            them; the paper's grid unless ``grid``), never on the fitted frames.
        grid: ``(learning rates, latent weights)`` searched instead of the paper's grid.
        search_frames: validation frames the search fits (the first ones; 0: a batch).
        pose_noise_rot, pose_noise_trans: headset pose noise (degrees, mm) of HMC targets.
        seed: seed of the pose noise (each frame's noise depends on it and the frame).
        device: ``cpu``, ``cuda``, ``cuda:N`` or ``auto``.
        fit: the fit's settings (lr, lambda_L, steps, headset pose, smoothness).
    """

    run: str
    capture: str | None = None
    target: str = "hmc"
    frames: str = "test"
    batch: int = 8
    sequence: bool = False
    search: bool = False
    pose_noise_rot: float = 0.0
    pose_noise_trans: float = 0.0
    seed: int = 0
    device: str = "auto"
    fit: FitConfig = FitConfig()
    grid: tuple[tuple[float, ...], tuple[float, ...]] | None = None
    search_frames: int = 0
    hmc_dir: str | None = None
    rig: str | None = None

    def __post_init__(self) -> None:
        if self.capture is None and self.hmc_dir is None:
            raise ValueError("capture (--capture): give the capture whose frames are fitted, or recorded HMC views "
                             "(hmc_dir, --hmc-dir)")
        if self.hmc_dir is not None and self.target != "hmc":
            raise ValueError(f"hmc_dir (--hmc-dir): recorded HMC views are fitted with target hmc, not {self.target}")
        if self.rig is not None and self.hmc_dir is None:
            raise ValueError("rig (--rig): a rig file goes with recorded HMC views (hmc_dir, --hmc-dir)")
        if self.target in TARGET_KINDS:  # the resolved lambda_L is what config.yaml records
            object.__setattr__(self, "fit", self.fit.for_target(self.target))
        if self.grid is not None:
            grid = tuple(tuple(float(x) for x in g) for g in self.grid)
            if len(grid) != 2 or not grid[0] or not grid[1] or min(grid[0]) <= 0 or min(grid[1]) < 0:
                raise ValueError(f"grid: expected (learning rates > 0, latent weights >= 0), got {self.grid}")
            object.__setattr__(self, "grid", grid)
        if self.search_frames < 0:
            raise ValueError(f"search_frames: expected 0 (the first batch) or more frames, got {self.search_frames}")
        name, _, count = self.frames.partition(":")
        if name in SPLIT_WORDS and count and (not count.isdigit() or int(count) < 1):
            raise ValueError(f"frames: expected {name}:N with N >= 1 frames, got {self.frames!r}")
        if self.target not in TARGET_KINDS:
            raise ValueError(f"target: expected one of {', '.join(TARGET_KINDS)}, got {self.target!r}")
        if self.batch < 1:
            raise ValueError(f"batch: expected at least 1 frame, got {self.batch}")
        if self.pose_noise_rot < 0 or self.pose_noise_trans < 0:
            raise ValueError(f"pose noise: expected values >= 0, got {self.pose_noise_rot} deg, "
                             f"{self.pose_noise_trans} mm")
        if (self.pose_noise_rot > 0 or self.pose_noise_trans > 0 or self.fit.fit_headset) and self.target != "hmc":
            raise ValueError(f"headset pose (noise or fitting): only HMC targets have one, not {self.target}")
        check_device_name(self.device)


def job_dict(job: FitJob) -> dict[str, Any]:
    """The job as the plain mapping saved under ``job:`` in ``config.yaml``."""
    d = to_dict(job)
    d["fit"] = to_dict(job.fit)
    return d


def job_differences(old: dict[str, Any], new: dict[str, Any] | FitJob) -> list[str]:
    """Keys in which a saved job (:func:`~avatarfit.fit.folder.saved_job`) differs from ``new`` (a job or its
    :func:`job_dict`); a setting newer than the saved job (absent from it) counts only when
    ``new`` gives it another value than its default, so folders of earlier versions resume."""
    if isinstance(new, FitJob):
        new = job_dict(new)
    defaults = {**job_dict(FitJob(run="", capture="")), "fit": to_dict(FitConfig())}
    differ = []
    for k in sorted(set(old) | set(new)):
        a, b = old.get(k, defaults.get(k)), new.get(k)
        if k == "fit" and isinstance(a, dict) and isinstance(b, dict):
            a = {**{f: v for f, v in defaults["fit"].items() if f not in a}, **a}
        if a != b:
            differ.append(k)
    return differ
