"""The ``avatarfit`` command: parse arguments, call library functions, print results."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

__all__ = ["main", "build_parser"]

_EXAMPLES = """\
examples:
  avatarfit demo                                   # synthetic capture + re-rendering, in ./avatarfit-demo
  avatarfit synth --subject procedural --segments 1 --frames 8 --cameras 6 --image-size 128x96 --out CAP
  avatarfit render CAP --segment E001_Jaw_Open --frame 000000 --camera 400000 --out view.png
  avatarfit hmc --capture CAP --preview            # synthetic HMC views + keypoints into CAP/hmc, CAP/keypoints
"""

_HMC_EXAMPLES = """\
examples:
  avatarfit hmc --capture CAP --preview                       # every frame, 240x320, into CAP/hmc and CAP/keypoints
  avatarfit hmc --capture CAP --out HMC --views-size 480x640  # the paper's image size, in another folder
  avatarfit hmc --capture CAP --frames 0:100 --seed 1         # frame-list positions 0..99
  avatarfit hmc --capture CAP --frames E001_Jaw_Open --no-augment   # clean renderings of one segment

outputs (paths relative to --out):
  hmc/rig.txt                       the HMC rig (KRT: left_eye, right_eye, mouth relative to the headset;
                                    'headset' block = nominal headset pose, head-local -> headset)
  hmc/{seg}/{view}/{frame}.png      greyscale infrared-like views
  hmc/{seg}/{frame}_headset.txt     3x4 [R|t] head-local -> headset used for the frame
  hmc/{seg}/{frame}_cameras.txt     the three cameras used (KRT, head-local -> camera, K with jitter)
  keypoints/{seg}/{frame}.txt       274 rows 'x y visible' in the keypoint camera's pixels
  keypoints/points.txt, keypoints/keypoints.yaml   keypoint definitions (face + barycentric) and camera
  hmc/preview.png                   contact sheet (with --preview)
Re-running skips frames already written; other settings in the same --out are refused.
"""


def _image_size(text: str) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected HxW such as 128x96, got {text!r}") from None
    if h < 8 or w < 8:
        raise argparse.ArgumentTypeError(f"expected at least 8x8, got {text!r}")
    return h, w


def _default(owner, name: str):
    """The default of field ``name`` of a dataclass, or of parameter ``name`` of a function:
    the one place a default lives (the CLI reads it from there, for its help and its values)."""
    import dataclasses
    import inspect

    if dataclasses.is_dataclass(owner):
        f = {f.name: f for f in dataclasses.fields(owner)}[name]
        return f.default_factory() if f.default is dataclasses.MISSING else f.default
    return inspect.signature(owner).parameters[name].default


def _hw(size: tuple[int, int]) -> str:
    return f"{size[0]}x{size[1]}"


def _add_synth_args(p: argparse.ArgumentParser) -> None:
    from .synth.generate import SynthConfig

    d = lambda name: _default(SynthConfig, name)  # noqa: E731 - the --config's defaults
    p.add_argument("--subject", choices=("procedural", "james"), help="procedural: head built in code (offline); "
                   "james: real face scan from the menpo3d sdist, fetched once with pip into the user cache "
                   f"(default {d('subject')})")
    p.add_argument("--segments", type=int, help=f"number of segments (performances; default {d('segments')})")
    p.add_argument("--frames", type=int, help=f"frames per segment (default {d('frames')})")
    p.add_argument("--cameras", type=int, help=f"dome cameras; the first (400000) is frontal (default {d('cameras')})")
    p.add_argument("--image-size", type=_image_size, metavar="HxW", help=f"photo size (default {_hw(d('image_size'))})")
    p.add_argument("--texture-size", type=int, metavar="T", help="unwrapped texture size T (T x T; default "
                   f"{d('texture_size')})")
    p.add_argument("--seed", type=int, help=f"seed of the identity and the performances (default {d('seed')})")
    p.add_argument("--backend", choices=("auto", "bbox", "pytorch3d"), help="rasteriser (default auto: bbox on CPU)")


def _add_demo(sub, full: bool) -> None:
    """``avatarfit demo``: listed always, its arguments only when ``full``."""
    demo = sub.add_parser("demo", help="train a small DAM and LiP-Flow-HMC on a synthetic subject and fit both to "
                          "head-mounted-camera views (3-7 minutes on 2 CPU cores; cached)",
                          description="The library's main job end to end, offline: generate a small synthetic capture, "
                          "train a DAM and a LiP-Flow-HMC on it side by side (900 and 750 steps), fit both to the clean "
                          "synthetic HMC views of its test frames, and print frontal PSNR and geometry "
                          "error before fitting (the prior's mean) and after. Writes PNG strips per frame, a comparison "
                          "sheet and TensorBoard logs. Everything is cached in --out: a second run takes seconds.",
                          formatter_class=argparse.RawDescriptionHelpFormatter,
                          epilog="outputs (in --out):\n"
                          "  comparison.png        rows: test frames; columns: HMC views | photo | DAM before | DAM "
                          "after |\n                        LiP-Flow before | LiP-Flow after\n"
                          "  fits/MODEL/           avatarfit fit outputs (metrics.json, strips/, tb/)\n"
                          "  runs/MODEL/           training runs (avatar.pt, tb/); capture/: the synthetic capture\n"
                          "  summary.json          the printed table's numbers")
    if not full:
        return
    from .demo import run_demo

    demo.add_argument("--out", type=Path, default=Path(_default(run_demo, "out")),
                      help=f"output folder (default: ./{_default(run_demo, 'out')})")
    demo.add_argument("--subject", choices=("procedural", "james"), default=_default(run_demo, "subject"),
                      help=f"procedural (offline) or james (real scan, fetched once); default {_default(run_demo, 'subject')}")
    demo.add_argument("--seed", type=int, default=_default(run_demo, "seed"),
                      help=f"seed of the subject and its performances (default {_default(run_demo, 'seed')})")
    demo.add_argument("--minutes", type=float, default=_default(run_demo, "minutes"),
                      help=f"cap on each model's training time (default {_default(run_demo, 'minutes'):g}; "
                      "the models train 900 and 750 steps, about 4.5 min on 2 cores)")
    demo.add_argument("--no-progress", action="store_true", help="no progress bar")


def _add_synth(sub, full: bool) -> None:
    """``avatarfit synth``: listed always, its arguments only when ``full``."""
    synth = sub.add_parser("synth", help="write a synthetic multi-view capture in the Multiface layout",
                           description="Render a synthetic subject performing random expressions into a dome of "
                           "cameras and write photos, tracked meshes, head poses, unwrapped textures and statistics "
                           "in the Multiface layout. Options override the --config YAML (see configs/synth/).",
                           epilog=_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    if not full:
        return
    synth.add_argument("--out", type=Path, required=True, help="capture folder to write")
    synth.add_argument("--config", type=Path, help="YAML file of SynthConfig settings")
    _add_synth_args(synth)
    synth.add_argument("--overwrite", action="store_true", help="replace the capture in a non-empty --out")
    synth.add_argument("--no-progress", action="store_true", help="no progress bar")


def _add_render(sub, full: bool) -> None:
    """``avatarfit render``: listed always, its arguments only when ``full``."""
    render = sub.add_parser("render", help="render a frame of a capture from one of its cameras",
                            description="Render the tracked mesh of one frame with its average texture (or one "
                            "camera's unwrapped texture) from a capture camera; print PSNR against the photo.")
    if not full:
        return
    from .synth.generate import SynthConfig

    render.add_argument("capture", type=Path, help="capture folder (Multiface layout)")
    render.add_argument("--segment", required=True)
    render.add_argument("--frame", required=True, help="frame id as in frame_list.txt, e.g. 000000")
    render.add_argument("--camera", required=True, help="camera id as in KRT")
    render.add_argument("--out", type=Path, required=True, help="PNG file for the rendering")
    render.add_argument("--texture", default="average", help="'average' (default) or a camera id")
    render.add_argument("--compare", type=Path, help="also write photo | rendering | error x4 to this PNG")
    render.add_argument("--background", type=float, default=_default(SynthConfig, "background"),
                        help=f"grey level of empty pixels (default {_default(SynthConfig, 'background')}, as "
                        "avatarfit synth)")
    render.add_argument("--backend", choices=("auto", "bbox", "pytorch3d"), default="auto")


def _add_hmc(sub, full: bool) -> None:
    """``avatarfit hmc``: listed always, its arguments only when ``full``."""
    hmc = sub.add_parser("hmc", help="render synthetic head-mounted-camera views and 2D keypoints of a capture",
                         description="For every frame of a capture: sample a headset pose around the rig's nominal "
                         "pose, render the tracked mesh with its average texture into the three head-mounted cameras "
                         "(left eye, right eye, mouth) as infrared-like grey images with augmentations (gain, "
                         "directional light, random background, sensor noise, intrinsic jitter), and project 274 "
                         "keypoints (68 landmarks + 206 surface points) with visibility into the frontal camera. "
                         "Options override the --config YAML (see configs/hmc/).",
                         epilog=_HMC_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    if not full:
        return
    _add_hmc_args(hmc)


def _add_train(sub, full: bool) -> None:
    """``avatarfit train``: listed always, its arguments only when ``full``."""
    tr = sub.add_parser("train", help="train a DAM / LiP-Flow variant on a capture",
                        description="Train one model variant (DAM, DAM-Flow, DAM-HMC-Enc, DAM-HMC-Reg, LiP-KL, LiP-Flow; "
                        "HMC- or keypoint-conditioned) on a capture: L = sum over views lambda_I * image loss (rendered "
                        "against the photos on the face) + lambda_G * geometry loss + lambda_L * latent term, Adam, early "
                        "stopping on validation frames (data.validation; data.test frames are kept for reporting). The run folder gets config.yaml, last.pt, best.pt, metrics.yaml and "
                        "TensorBoard logs (tensorboard --logdir RUN/tb). Several processes: torchrun --standalone --nproc_per_node N "
                        "-m avatarfit.cli train ...",
                        epilog=_TRAIN_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    if not full:
        return
    tr.add_argument("--config", type=Path, help="training YAML (configs/train/small/*.yaml for a CPU, "
                    "configs/train/paper/*.yaml for GPUs); optional with --resume")
    tr.add_argument("--capture", type=Path, required=True, help="capture folder (Multiface layout)")
    tr.add_argument("--out", type=Path, help="run folder (default: runs/<config name>)")
    tr.add_argument("--resume", action="store_true", help="continue the run in --out from its last.pt, with the config "
                    "saved in it (plus --set; only train.steps, patience, max_minutes and the cadences may change)")
    tr.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                    help="override a config value, e.g. --set train.steps=500 --set model.dam.latent=32 (repeatable)")
    tr.add_argument("--no-progress", action="store_true", help="no progress bar")


def _add_export_avatar(sub, full: bool) -> None:
    """``avatarfit export-avatar``: listed always, its arguments only when ``full``."""
    ex = sub.add_parser("export-avatar", help="write the self-contained avatar file of a training run",
                        description="Build avatar.pt (model, normalisation statistics, topology, keypoint definition, "
                        "background) from a run's best checkpoint and the capture it was trained on. avatarfit train "
                        "writes it by itself; this is for runs from before avatar files, or to write it elsewhere.")
    if not full:
        return
    ex.add_argument("--run", type=Path, required=True, help="run folder (its best.pt) or a checkpoint file")
    ex.add_argument("--capture", type=Path, required=True, help="the capture the run was trained on")
    ex.add_argument("--out", type=Path, help="avatar file (default: avatar.pt beside the checkpoint)")


def _add_fit(sub, full: bool) -> None:
    """``avatarfit fit``: listed always, its arguments only when ``full``."""
    ft = sub.add_parser("fit", help="fit a trained avatar to frames of a capture (frontal, masked, HMC or keypoints)",
                        description="Inference-time fitting (LiP-Flow, supplementary H.2): for each frame, Adam on the latent code "
                        "(and with --fit-headset the 6-DoF headset pose) minimising the data term on the target's visible "
                        "pixels or keypoints + lambda_L * (-log p(z | observation)) / L under the avatar's prior, from the "
                        "prior's mean, at most --steps steps, each frame stopping after --patience steps without "
                        "improvement. HMC views and keypoints are made by the synthetic HMC tool: the data term compares "
                        "clean 120x160 views, the prior observes each frame as the avatar's training did; the "
                        "frontal photo and tracked mesh score the fit (PSNR, SSIM, L1 of the frontal rendering; mean "
                        "vertex error in mm). With --hmc-dir the HMC views are recorded ones read from files (the "
                        "prior observes them too), fitted by default with a gain, bias and Lambertian light per view "
                        "on the starting face's pixels, and the headset pose; scores that need ground truth are null "
                        "without it. Interrupted? Run the same command again: finished batches are kept. Across GPUs: "
                        "torchrun --nproc-per-node N -m avatarfit.cli -- fit ... (the '--' keeps torchrun from "
                        "reading --run as its own --run-path): each process fits every N-th batch on GPU LOCAL_RANK, "
                        "and the outputs are those of one process.",
                        epilog=_FIT_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    if not full:
        return
    from .fit.job import FitJob
    from .fit.optimize import DEFAULT_LAMBDA_LATENT, FitConfig

    ft.add_argument("--run", type=Path, required=True, help="run folder of avatarfit train (its avatar.pt) or an avatar file")
    ft.add_argument("--capture", type=Path, help="capture folder of the same subject (Multiface layout); optional with "
                    "--hmc-dir, where it adds ground truth (photo, tracked mesh) for the recorded frames it lists")
    ft.add_argument("--target", required=True, choices=("frontal", "masked", "hmc", "keypoints"),
                    help="frontal: the frontal photo; masked: only its eye and mouth regions (LiP-Flow, supplementary Fig. 10); "
                    "hmc: the three head-mounted views; keypoints: 274 2D keypoints in the frontal camera")
    ft.add_argument("--out", type=Path, required=True, help="output folder (see outputs below)")
    ft.add_argument("--frames", metavar="SPLIT|SPEC",
                    help="test (default: the avatar's test frames, the last block of each segment, never used to "
                    "choose anything), validation (the block before them: what early stopping and --search use), "
                    "train, each also as NAME:N (N of them, spread evenly; heldout = test); or positions N, A:B and "
                    "segment names, comma-separated; '' for every frame. With --hmc-dir they are the recording's "
                    "frames (default without --capture: every recorded frame)")
    job, cfg = (lambda name: _default(FitJob, name)), (lambda name: _default(FitConfig, name))  # noqa: E731
    ft.add_argument("--batch", type=int, default=job("batch"), metavar="N", help=f"frames fitted together (default "
                    f"{job('batch')}); with --sequence: segments fitted together, a frame of each at a time")
    ft.add_argument("--lr", type=float, help=f"Adam learning rate of the codes (default {cfg('lr'):g})")
    per_kind = ", ".join(f"{v:g} for {k}" for k, v in DEFAULT_LAMBDA_LATENT.items())
    ft.add_argument("--lambda-latent", type=float, metavar="Y", help="weight of the latent NLL; 0 = the paper's "
                    f"'w/o L_L' (default: {per_kind}: the middle of the paper's grid)")
    ft.add_argument("--search", action="store_true", help="choose --lr and --lambda-latent with the paper's grid on "
                    "a batch of the avatar's validation frames (9 fits, judged by frontal PSNR against the ground truth, the paper's protocol; "
                    "by the data term without ground truth), then fit every frame with the best pair (search.json)")
    ft.add_argument("--steps", type=int, help=f"at most this many Adam steps per frame (default {cfg('steps')})")
    ft.add_argument("--patience", type=int, help="stop a frame after this many steps without improvement (default "
                    f"{cfg('patience')})")
    ft.add_argument("--raster-every", type=int, metavar="K", help="run the rasteriser's hard test (which face covers "
                    "each pixel) every K steps at most, keeping each pixel's face in between, and sooner when a vertex "
                    f"moves more than half a pixel; 1 = every step (default {cfg('raster_every')}). 8 saves 7-37 %% of a "
                    "step's time, but its fits move with float rounding and converged worse on validation frames")
    ft.add_argument("--no-antialias", action="store_true", help="render one face per pixel, with no gradient at "
                    "outlines (default: antialiased silhouettes, so the fit moves outlines onto the target's)")
    ft.add_argument("--hmc-dir", type=Path, metavar="DIR", help="fit recorded HMC views (--target hmc): "
                    "DIR/hmc/SEG/{left_eye,right_eye,mouth}/FRAME.png, the rig DIR/hmc/rig.txt and optional "
                    "DIR/hmc/SEG/FRAME_headset.txt starting poses, as avatarfit hmc --out DIR writes (its "
                    "FRAME_cameras.txt are not read: the rig's K is used) and the README describes for a headset of "
                    "your own; no ground truth needed. --frames selects among the recorded frames (default without "
                    "--capture: all); --capture adds ground truth for those it lists")
    ft.add_argument("--rig", type=Path, metavar="FILE", help="with --hmc-dir: the headset's rig file (KRT) instead of "
                    "DIR/hmc/rig.txt")
    ft.add_argument("--photometric", action=argparse.BooleanOptionalAction, default=None,
                    help="map each rendered HMC view by the gain and bias that fit it best at every step (a camera's "
                    "exposure and black level; default: on with --hmc-dir, off for the clean views made in memory)")
    ft.add_argument("--shading", action=argparse.BooleanOptionalAction, default=None,
                    help="with --photometric: also a Lambertian light per view (rendering x light . normal, solved "
                    "with gain and bias): IR LEDs light a face unevenly (default: on with --hmc-dir)")
    ft.add_argument("--hmc-pixels", choices=("all", "face"), help="HMC pixels the data term scores: all, or face: "
                    "those the starting face covers, 2 pixels in from its outline (a recording's background is not "
                    "the avatar's; default: face with --hmc-dir, all for the clean views made in memory)")
    ft.add_argument("--fit-headset", action=argparse.BooleanOptionalAction, default=None,
                    help="also fit the 6-DoF headset pose (hmc; LiP-Flow, supplementary Table 9; default: on with --hmc-dir, "
                    "off otherwise)")
    ft.add_argument("--pose-noise-rot", type=float, default=job("pose_noise_rot"), metavar="DEG",
                    help=f"perturb the headset pose the fit starts from (per-axis std, degrees; hmc; default "
                    f"{job('pose_noise_rot'):g})")
    ft.add_argument("--pose-noise-trans", type=float, default=job("pose_noise_trans"), metavar="MM",
                    help=f"perturb the headset position (per-axis std, mm; hmc; default {job('pose_noise_trans'):g})")
    ft.add_argument("--sequence", action="store_true", help="fit each segment's frames in order, each from the "
                    "previous frame's code; reports jitter (mean frame-to-frame vertex motion) next to the truth's")
    ft.add_argument("--smoothness", type=float, metavar="W", help="with --sequence: weight pulling each code towards "
                    f"the previous frame's (default {cfg('smoothness'):g})")
    ft.add_argument("--seed", type=int, default=job("seed"),
                    help=f"seed of the headset pose noise (default {job('seed')})")
    ft.add_argument("--device", default=job("device"), help="auto (CUDA when available), cpu, cuda or cuda:N (default "
                    f"{job('device')})")
    ft.add_argument("--overwrite", action="store_true", help="discard what --out holds and start again")
    ft.add_argument("--no-progress", action="store_true", help="no progress bar")


def _add_inspect_latents(sub, full: bool) -> None:
    """``avatarfit inspect-latents``: listed always, its arguments only when ``full``."""
    il = sub.add_parser("inspect-latents", help="TensorBoard projector and variance of a trained prior's samples",
                        description="For N inputs of a capture (HMC views, or keypoints for a KPT run), draw S samples "
                        "from each predicted prior N(mu_p, sigma_p), map them into the decoder's space with F^-1 "
                        "(flow variants), and write TensorBoard logs: embedding projector of all samples in P and Q "
                        "(labelled by input, with thumbnails), per-input variance as scalars and histograms, the PCA "
                        "of both spaces side by side (also pca.png), the inputs of highest and lowest variance, and "
                        "decoded frontal renderings of a few samples per input (LiP-Flow, supplementary Fig. 11). Unconditional "
                        "runs (DAM, DAM-Flow) sample their one prior.",
                        epilog="example:\n  avatarfit inspect-latents --run runs/lip_flow_hmc --capture CAP --logdir "
                        "tb/latents && tensorboard --logdir tb/latents",
                        formatter_class=argparse.RawDescriptionHelpFormatter)
    if not full:
        return
    from .inspect.job import inspect_latents

    _add_run_args(il)
    il.add_argument("--logdir", type=Path, required=True, help="TensorBoard folder to write")
    il.add_argument("--inputs", type=int, default=_default(inspect_latents, "inputs"),
                    help=f"number of inputs N, spread over the frames (default {_default(inspect_latents, 'inputs')})")
    il.add_argument("--samples", type=int, default=_default(inspect_latents, "samples"),
                    help=f"samples S per input (default {_default(inspect_latents, 'samples')})")
    il.add_argument("--frames", metavar="SPEC", help="frames to pick the inputs from (positions N, A:B, segments)")
    il.add_argument("--seed", type=int, default=_default(inspect_latents, "seed"),
                    help=f"seed of the samples (default {_default(inspect_latents, 'seed')})")


def _add_interpolate(sub, full: bool) -> None:
    """``avatarfit interpolate``: listed always, its arguments only when ``full``."""
    ip = sub.add_parser("interpolate", help="render codes interpolated between two frames",
                        description="z' = a z1 + (1 - a) z2 for a from 1 to 0, between the codes of two tracked frames "
                        "(their DAM-encoder means; the prior's mean for DAM-HMC-Enc), in the decoder's space Q or in "
                        "the prior's space P mapped back through the flow's inverse (flow variants; P = Q otherwise), "
                        "each rendered in the most frontal camera under the first frame's head pose. The strip is "
                        "photo 1 | renderings | photo 2.",
                        epilog="example:\n  avatarfit interpolate --run runs/lip_flow_hmc --capture CAP --from "
                        "E001_Jaw_Open/000003 --to E002_Smile_Left/000031 --space p --out strip.png",
                        formatter_class=argparse.RawDescriptionHelpFormatter)
    if not full:
        return
    from .inspect.interpolate import interpolate_frames

    _add_run_args(ip)
    ip.add_argument("--from", dest="first", required=True, metavar="SEG/FRAME", help="first frame (a = 1)")
    ip.add_argument("--to", dest="second", required=True, metavar="SEG/FRAME", help="second frame (a = 0)")
    ip.add_argument("--steps", type=int, default=_default(interpolate_frames, "steps"), help="codes from one end to "
                    f"the other, both included (default {_default(interpolate_frames, 'steps')})")
    ip.add_argument("--space", choices=("p", "q"), default=_default(interpolate_frames, "space"),
                    help=f"where to mix the codes (default {_default(interpolate_frames, 'space')})")
    ip.add_argument("--out", type=Path, required=True, help="PNG strip to write")
    ip.add_argument("--logdir", type=Path, help="also log the strip to TensorBoard here")


def _add_evaluate(sub, full: bool) -> None:
    """``avatarfit evaluate``: listed always, its arguments only when ``full``."""
    ev = sub.add_parser("evaluate", help="reproduce the paper's Tables 6-9: train every variant, fit, tabulate, plot",
                        description="Trains (or reuses) every model the configured tables need on each subject, runs "
                        "every cell on test frames (the prior encoder's and the DAM encoder's decodings; fits to "
                        "frontal, masked frontal, HMC and keypoint targets with and without L_L; HMC fits with the "
                        "headset pose under pose noise), with lr and lambda_L searched on validation frames per model "
                        "and task (LiP-Flow, supplementary H.2), and writes the tables in the paper's layout. Every cell is saved as "
                        "it finishes: --resume continues an interrupted evaluation without recomputing anything.",
                        epilog=_EVAL_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    if not full:
        return
    ev.add_argument("--config", type=Path, required=True,
                    help="evaluation YAML: configs/eval/small.yaml (2-core CPU) or configs/eval/paper.yaml (GPUs)")
    ev.add_argument("--subjects", nargs="+", metavar="NAME", help="only these subjects of the config (default: all)")
    ev.add_argument("--out", type=Path, default=Path("avatarfit-eval"), help="output folder (default avatarfit-eval)")
    ev.add_argument("--resume", action="store_true", help="continue the evaluation in --out (finished cells reused)")
    ev.add_argument("--tables-only", action="store_true", help="train and fit nothing: rewrite the top-level tables "
                    "and charts from the subjects finished in --out")
    ev.add_argument("--jobs", type=int, help="jobs side by side with the local launcher (default: the config's jobs)")
    ev.add_argument("--device", choices=("auto", "cpu", "cuda"), help="default: the config's device")
    ev.add_argument("--no-progress", action="store_true", help="no progress bars")
    from .eval.config import LAUNCHERS, LaunchSpec

    cl = ev.add_argument_group("where the jobs run (each overrides the config's launch: settings)")
    cl.add_argument("--launcher", choices=LAUNCHERS, help="local: processes on this machine; slurm: sbatch jobs "
                    f"(default: the config's, else {_default(LaunchSpec, 'launcher')})")
    cl.add_argument("--partition", help="SLURM partition")
    cl.add_argument("--account", help="SLURM account")
    cl.add_argument("--gpus-per-job", type=int, metavar="N", help="GPUs of each job")
    cl.add_argument("--cpus-per-job", type=int, metavar="N", help="CPU cores of each job")
    cl.add_argument("--mem-gb", type=float, metavar="GB", help="memory of each job")
    cl.add_argument("--time-min", type=int, metavar="MIN", help="time limit of each job; a job that reaches it (or "
                    "is pre-empted) is requeued and continues from its checkpoint")
    cl.add_argument("--fit-processes", type=int, metavar="N", help="processes of each fit cell (default: one per "
                    "GPU of the job), fitting its frames across them like torchrun")
    cl.add_argument("--sbatch", action="append", default=[], metavar="KEY=VALUE",
                    help="a further sbatch parameter, e.g. --sbatch qos=high --sbatch constraint=a100")


#: Each command's parser, in ``--help`` order.
_PARSERS = {"demo": _add_demo, "synth": _add_synth, "render": _add_render, "hmc": _add_hmc, "train": _add_train,
            "export-avatar": _add_export_avatar, "fit": _add_fit, "inspect-latents": _add_inspect_latents,
            "interpolate": _add_interpolate, "evaluate": _add_evaluate}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser of every command; with ``command``, only that command's arguments are
    added (the others list their name and summary; ``""``: none's), so that ``avatarfit --help`` and each
    command start without importing what the others need for their defaults (which come
    from the library's dataclasses)."""
    parser = argparse.ArgumentParser(
        prog="avatarfit",
        description="Fit personalised face avatars to partial observations (LiP-Flow). "
        "Captures use the Multiface layout; cameras are OpenCV (K in pixels, [R|t] world-to-camera), units mm.",
        epilog=_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    from . import __version__

    parser.add_argument("--version", action="version", version=f"avatarfit {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name, add in _PARSERS.items():
        add(sub, command is None or command == name)
    return parser


_EVAL_EPILOG = """outputs (--out):
  tables.md, tables.csv     the tables, averaged over the subjects (CSV: every subject and the mean)
  table6.png ... table9.png bar charts: PSNR and geometry error per model and column
  SUBJECT/                  the subject's own tables, charts, fits_table*.png (frontal renderings of the fits
                            for the same frames, with error maps), runs/ (training) and cells/ (one JSON per cell;
                            fit cells keep the avatarfit fit outputs: strips, TensorBoard)
  jobs/SUBJECT/JOB/         each training's and cell's logs (ID_0_log.out, ID_0_log.err)

every training and cell is a job: --launcher local runs --jobs of them at a time on this machine, --launcher
slurm submits them all with sbatch (DAM-*-Reg after its DAM, cells after their model: afterok dependencies)
and waits for them; Ctrl-C cancels the unfinished ones, --resume submits only what is missing.

examples:
  avatarfit evaluate --config configs/eval/small.yaml --out eval-small
  avatarfit evaluate --config configs/eval/small.yaml --subjects proc101 --out eval-small --resume
  avatarfit evaluate --config configs/eval/small.yaml --out eval-small --tables-only   # tables of what is finished
  avatarfit evaluate --config configs/eval/paper.yaml --device cuda --out eval-paper
  avatarfit evaluate --config configs/eval/paper.yaml --out eval-paper --launcher slurm --partition gpu \\
      --gpus-per-job 1 --cpus-per-job 8 --mem-gb 64 --time-min 240 --sbatch qos=normal

models: dam, dam_flow, dam_hmc_enc, dam_hmc_reg, lip_kl_hmc, lip_flow_hmc, dam_kpt_enc, dam_kpt_reg, lip_kl_kpt,
lip_flow_kpt; tables: 6, 7, 8, 9. Your own captures: subjects: [{name: mine, capture: /path}] (Multiface layout
with landmarks.txt).
"""


_TRAIN_EXAMPLES = """\
examples:
  avatarfit synth --config configs/synth/train_small.yaml --out CAP
  avatarfit train --config configs/train/small/dam_hmc.yaml --capture CAP --out runs/dam
  avatarfit train --config configs/train/small/lip_flow_kpt.yaml --capture CAP --set train.steps=2000
  avatarfit train --capture CAP --out runs/dam --resume --set train.steps=40000
  avatarfit train --config configs/train/small/dam_hmc_reg_hmc.yaml --capture CAP --set train.pretrained=runs/dam

variants (model.variant): dam, dam_flow, dam_hmc_enc, dam_hmc_reg (needs train.pretrained), lip_kl, lip_flow;
model.condition: hmc (three HMC views, from the HMC tool in memory or its files) or kpt (274 keypoints).
"""


def _add_run_args(p: argparse.ArgumentParser) -> None:
    """``--run`` and ``--capture`` of the commands that use a trained avatar on a capture."""
    p.add_argument("--run", type=Path, required=True, help="run folder (its avatar.pt) or an avatar file")
    p.add_argument("--capture", type=Path, required=True, help="capture of the run's subject")


_FIT_EXAMPLES = """\
examples:
  avatarfit fit --run runs/lip_flow_hmc --capture CAP --target hmc --out fits/hmc
  avatarfit fit --run runs/dam --capture CAP --target masked --search --out fits/masked
  avatarfit fit --run runs/lip_flow_hmc --capture CAP --target hmc --fit-headset --pose-noise-rot 2 \\
      --pose-noise-trans 2 --out fits/pose                   # LiP-Flow, supplementary Table 9
  avatarfit fit --run runs/lip_flow_kpt --capture CAP --target keypoints --lambda-latent 0 --out fits/kpt_noLL
  avatarfit fit --run runs/dam --capture CAP --target frontal --frames E001_Jaw_Open --sequence --out fits/seq
  avatarfit hmc --capture CAP --out REC --views-size 120x160      # recorded-like views (augmented) ...
  avatarfit fit --run runs/lip_flow_hmc --target hmc --hmc-dir REC --out fits/rec   # ... fitted from files

outputs (in --out):
  metrics.json        summary (frames, psnr_init, psnr, ssim, geom_mm_init, geom_mm, steps_mean,
                      seconds_per_frame, ...) and one record per frame; null where a value is undefined
  fits.npz            names, z, z_init (prior mean), z_start, headset_R/headset_t (with --fit-headset),
                      photometric: gain, bias[, light x y z] per HMC view (with --photometric), steps, failed, objective
                      (steps x frames; the last value repeats after a frame stopped), objective_steps,
                      metric_* per frame; never NaN (a frame whose objective turned NaN is marked failed)
  strips/SEG_FRAME.png   target | fit in the target's view | frontal before | frontal fit | photo | error x4
  tb/                 tensorboard --logdir OUT/tb (strips: step = frame; objective/SEG/FRAME curves)
  config.yaml         the job and the settings used (after --search, the chosen pair); search.json
  parts/              finished batches (what a re-run keeps)
"""


def _add_hmc_args(p: argparse.ArgumentParser) -> None:
    from .synth.hmc import HmcConfig

    d = lambda name: _default(HmcConfig, name)  # noqa: E731 - the --config's defaults
    p.add_argument("--capture", type=Path, required=True, help="capture folder (Multiface layout, with landmarks.txt)")
    p.add_argument("--out", type=Path, help="folder receiving hmc/ and keypoints/ (default: the capture folder)")
    p.add_argument("--config", type=Path, help="YAML file of HmcConfig settings")
    p.add_argument("--views-size", type=_image_size, metavar="HxW",
                   help=f"HMC image size (default {_hw(d('views_size'))})")
    p.add_argument("--pose-noise-rot", type=float, metavar="DEG",
                   help=f"std of the headset rotation per axis (default {d('pose_noise_rot'):g}; 0.5 is about 1.6 "
                   "px at 120x160)")
    p.add_argument("--pose-noise-trans", type=float, metavar="MM",
                   help=f"std of the headset shift per axis (default {d('pose_noise_trans'):g})")
    p.add_argument("--seed", type=int, help=f"seed of the headset poses and augmentations (default {d('seed')})")
    p.add_argument("--frames", metavar="SPEC", help="frame-list positions N or A:B, or segment names, comma-separated "
                   "(default: all)")
    p.add_argument("--rig", type=Path, metavar="FILE", help="rig file (KRT; see outputs) with K for --views-size "
                   "(default: a generic headset fitted to the capture's mean face)")
    p.add_argument("--keypoint-camera", metavar="CAM", help="capture camera of the keypoints (default: the most frontal)")
    p.add_argument("--no-augment", action="store_true", help="clean renderings: no lighting, background, noise or "
                   "intrinsic jitter (the headset pose is still sampled)")
    p.add_argument("--backend", choices=("auto", "bbox", "pytorch3d"), help="rasteriser (auto: bbox on CPU)")
    p.add_argument("--preview", action="store_true", help="write hmc/preview.png: frontal photo with keypoints "
                   "and the three views for a few frames")
    p.add_argument("--overwrite", action="store_true", help="remove hmc/ and keypoints/ in --out first")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def _synth_config(args: argparse.Namespace):
    import dataclasses

    from .config import load_yaml
    from .synth.generate import SynthConfig

    base = load_yaml(SynthConfig, args.config) if getattr(args, "config", None) else SynthConfig()
    overrides = {
        k: getattr(args, k)
        for k in ("subject", "segments", "frames", "cameras", "image_size", "texture_size", "seed", "backend")
        if getattr(args, k, None) is not None
    }
    return dataclasses.replace(base, **overrides)


def _cmd_synth(args) -> None:
    from .data.capture import Capture
    from .synth.generate import generate_capture

    config = _synth_config(args)
    out = generate_capture(args.out, config, overwrite=args.overwrite, progress=not args.no_progress)
    cap = Capture(out)
    print(f"wrote {cap}")
    ref = cap.frames()[0]
    print(f"try: avatarfit render {out} --segment {ref.segment} --frame {ref.frame} --camera {cap.camera_names[0]} --out view.png")


def _cmd_render(args) -> None:
    from ._io import write_png
    from .data.capture import Capture
    from .eval.reproject import compare_view, comparison_strip, render_capture_view

    cap = Capture(args.capture)
    kwargs = dict(texture=args.texture, backend=args.backend, background=args.background)
    photo_path = cap.layout.image(args.segment, args.camera, args.frame)
    if photo_path.is_file():
        cmp = compare_view(cap, args.segment, args.frame, args.camera, **kwargs)
        write_png(args.out, cmp.render)
        print(f"wrote {args.out}; PSNR against {photo_path}: {cmp.psnr:.2f} dB (face pixels only: {cmp.psnr_face:.2f} dB)")
        if args.compare:
            write_png(args.compare, comparison_strip(cmp.photo, cmp.render))
            print(f"wrote {args.compare} (photo | rendering | error x4)")
    else:
        out = render_capture_view(cap, args.segment, args.frame, args.camera, **kwargs)
        write_png(args.out, out.image[0])
        print(f"wrote {args.out} (no photo at {photo_path} to compare with)")


def _hmc_config(args: argparse.Namespace):
    import dataclasses

    from .config import load_yaml
    from .synth.hmc import HmcConfig

    base = load_yaml(HmcConfig, args.config) if args.config else HmcConfig()
    overrides = {k: getattr(args, k) for k in ("views_size", "pose_noise_rot", "pose_noise_trans", "seed", "backend")
                 if getattr(args, k) is not None}
    if args.no_augment:
        overrides["augment"] = False
    return dataclasses.replace(base, **overrides)


def _cmd_hmc(args) -> None:
    from .data.capture import Capture
    from .data.selection import select_frames
    from .synth.hmc_rig import read_rig
    from .synth.hmc_write import write_hmc

    config = _hmc_config(args)
    cap = Capture(args.capture)
    frames = select_frames(cap, args.frames)
    rig = read_rig(args.rig, config.views_size) if args.rig else None
    run = write_hmc(cap, args.out, config, rig=rig, frames=frames, keypoint_camera=args.keypoint_camera,
                    overwrite=args.overwrite, preview=args.preview, progress=not args.no_progress)
    out = args.out or args.capture
    h, w = config.views_size
    rate = f", {run.frames_per_second:.2f} frames/s" if run.written else ""
    print(f"wrote {run.written} frames ({h}x{w}, 3 views) in {run.seconds:.1f} s{rate}; skipped {run.skipped} "
          f"already written; keypoints in camera {run.keypoint_camera}; output in {out}/hmc and {out}/keypoints")
    if run.preview:
        print(f"wrote {run.preview} (rows: frames; columns: frontal photo with keypoints | left eye | right eye | mouth)")


def _cmd_train(args) -> None:
    from .data.capture import Capture
    from .train import load_train_config, train

    if args.config is None and not args.resume:
        raise ValueError("--config: needed unless --resume continues a run")
    if args.out is None:
        if args.config is None:
            raise ValueError("--out: needed with --resume (the run folder to continue)")
        args.out = Path("runs") / args.config.stem
    from .config import parse_overrides

    if args.config is None:  # resume with the config saved in the run's last checkpoint, plus --set
        config, overrides = None, parse_overrides(args.overrides)
    else:
        config, overrides = load_train_config(args.config, args.overrides), None
    result = train(config, Capture(args.capture), args.out, resume=args.resume, overrides=overrides,
                   progress=not args.no_progress)
    print(f"{result.describe()}; "
          f"run folder {result.out} (tensorboard --logdir {result.out / 'tb'})")


def _cmd_export_avatar(args) -> None:
    from .train.export import export_avatar

    avatar, path = export_avatar(args.run, args.capture, args.out)
    print(f"wrote {path}: {avatar}")


def _cmd_fit(args) -> None:
    import dataclasses

    from .fit import FitConfig
    from .fit.job import RECORDED_FIT, FitJob, run_fit_job

    if args.search and (args.lr is not None or args.lambda_latent is not None):
        raise ValueError("--search chooses --lr and --lambda-latent; give either --search or those two")
    if args.smoothness is not None and not args.sequence:
        raise ValueError("--smoothness: only with --sequence (it pulls each frame's code towards the previous one)")
    if args.capture is None and args.hmc_dir is None:
        raise ValueError("--capture: give the capture whose frames are fitted, or recorded HMC views with --hmc-dir")
    settings = dict(RECORDED_FIT) if args.hmc_dir is not None else {}
    for key in ("fit_headset", "lr", "lambda_latent", "steps", "patience", "smoothness", "raster_every", "photometric",
                "shading", "hmc_pixels"):
        if getattr(args, key) is not None:
            settings[key] = getattr(args, key)
    if not settings.get("photometric") and args.shading is None:
        settings["shading"] = False  # shading is part of the photometric model: off with it
    if args.no_antialias:
        settings["antialias"] = False
    config = dataclasses.replace(FitConfig(), **settings)
    optional = lambda path: None if path is None else str(path)  # noqa: E731
    # every recorded frame when only a recording is given, else the job's default (the test split)
    frames = args.frames if args.frames is not None else ("" if args.hmc_dir and args.capture is None
                                                          else _default(FitJob, "frames"))
    job = FitJob(run=str(args.run), capture=optional(args.capture), target=args.target, frames=frames,
                 batch=args.batch, sequence=args.sequence, search=args.search, pose_noise_rot=args.pose_noise_rot,
                 pose_noise_trans=args.pose_noise_trans, seed=args.seed, device=args.device, fit=config,
                 hmc_dir=optional(args.hmc_dir), rig=optional(args.rig))
    import os

    main_process = os.environ.get("RANK", "0") == "0"  # under torchrun, the others print nothing
    report = run_fit_job(job, args.out, overwrite=args.overwrite, progress=not args.no_progress,
                         log=print if main_process else (lambda message: None))
    if not main_process:
        return
    s = report.summary
    print(f"fitted {report.fitted_now} frames now ({s['frames']} in all) with lr {report.config.lr:g}, lambda_L "
          f"{report.config.lambda_latent:g}: {s['seconds_per_frame']:.2f} s/frame, {s['steps_mean']:.1f} steps/frame"
          + (f", {s['failed']} failed (NaN; kept their best code)" if s["failed"] else ""))
    print(_summary_table(s))
    print(f"wrote {report.files['metrics']}, {report.files['fits']}, strips in {report.files['strips']}; "
          f"tensorboard --logdir {report.files['tensorboard']}")


def _fmt(v, spec: str) -> str:
    import math

    return "-" if v is None or (isinstance(v, float) and not math.isfinite(v)) else format(v, spec)


def _summary_table(s: dict) -> str:
    """Before/after rows of a fit summary, as aligned text."""
    rows = [("frontal PSNR (dB)", "psnr", ".2f"), ("frontal SSIM", "ssim", ".4f"), ("frontal L1", "l1", ".4f"),
            ("frontal PSNR, face pixels (dB)", "psnr_face", ".2f"), ("frontal SSIM, face pixels", "ssim_face", ".4f"),
            ("geometry error (mm)", "geom_mm", ".3f"), ("keypoint error (px)", "kpt_px", ".2f"),
            ("headset rotation error (deg)", "headset_deg", ".2f"), ("headset translation error (mm)", "headset_mm", ".2f")]
    lines = [f"  {'':32s}{'prior mean':>12s}{'fitted':>12s}"]
    for label, key, spec in rows:
        if key in s:
            lines.append(f"  {label:32s}{_fmt(s.get(key + '_init'), spec):>12s}{_fmt(s.get(key), spec):>12s}")
    if "jitter_mm" in s:
        lines.append(f"  jitter: fitted {_fmt(s.get('jitter_mm'), '.3f')} mm/frame, tracked meshes "
                     f"{_fmt(s.get('jitter_mm_truth'), '.3f')} mm/frame")
    return "\n".join(lines)


def _cmd_inspect_latents(args) -> None:
    from .inspect import inspect_latents

    report = inspect_latents(args.run, args.capture, args.logdir, inputs=args.inputs, samples=args.samples,
                             frames=args.frames, seed=args.seed)
    s = report.samples
    if not s.conditional:
        print("this run's prior is unconditional (DAM / DAM-Flow): every input samples the same prior")
    print(f"{'input':32s}{'expression (segment)':>24s}{'var P':>10s}{'var Q':>10s}")
    for i, ref in enumerate(report.frames):
        print(f"{s.names[i]:32s}{ref.segment:>24s}{float(s.var_p[i]):10.4f}{float(s.var_q[i]):10.4f}")
    print(f"wrote {args.logdir} ({s.inputs} x {s.samples} samples; PCA in {report.files['pca']}); "
          f"tensorboard --logdir {args.logdir}")


def _cmd_interpolate(args) -> None:
    from ._io import write_png
    from .avatar import Avatar
    from .data.capture import Capture
    from .inspect.interpolate import interpolate_frames, parse_frame

    cap = Capture(args.capture)
    first, second = parse_frame(cap, args.first, "--from"), parse_frame(cap, args.second, "--to")
    if args.steps < 2:
        raise ValueError(f"--steps: expected at least 2 (the two ends), got {args.steps}")
    avatar = Avatar.load(args.run)
    result = interpolate_frames(avatar, cap, first, second, steps=args.steps, space=args.space)
    strip = result.strip()
    write_png(args.out, strip)
    if args.logdir:
        from torch.utils.tensorboard import SummaryWriter

        with SummaryWriter(str(args.logdir)) as writer:
            writer.add_image(f"interpolation/{args.space}/{args.first}->{args.second}", strip, 0)
    space = args.space if avatar.model.prior.flow is not None else "q (no flow: P = Q)"
    print(f"wrote {args.out} ({args.steps} codes in {space}; photo {args.first} | renderings | photo {args.second})")


def _launch_overrides(args) -> dict:
    """The ``launch:`` settings given on the command line."""
    names = ("launcher", "partition", "account", "gpus_per_job", "cpus_per_job", "mem_gb", "time_min",
             "fit_processes")
    found = {n: getattr(args, n) for n in names if getattr(args, n) is not None}
    extra = {}
    for item in args.sbatch:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--sbatch: expected KEY=VALUE (an sbatch parameter without its dashes), got {item!r}")
        extra[key.strip()] = value
    if extra:
        found["sbatch"] = extra
    return found


def _cmd_evaluate(args) -> None:
    import dataclasses

    from .eval.config import load_eval_config
    from .eval.run import run_evaluation

    config = load_eval_config(args.config, {"launch": _launch_overrides(args)})
    if args.jobs is not None:
        if args.jobs < 1:
            raise ValueError(f"--jobs: expected at least 1 process, got {args.jobs}")
        config = dataclasses.replace(config, jobs=args.jobs)
    if args.device is not None:
        config = dataclasses.replace(config, device=args.device)
    result = run_evaluation(config, args.out, subjects=args.subjects, resume=args.resume,
                            tables_only=args.tables_only, progress=not args.no_progress)
    print()
    print((result.out / "tables.md").read_text(encoding="utf-8"))
    print(f"wrote {', '.join(str(f) for f in result.files)} ({result.seconds / 60:.1f} min)")


def _cmd_demo(args) -> None:
    from .demo import demo_table, run_demo

    result = run_demo(args.out, subject=args.subject, seed=args.seed, minutes=args.minutes,
                      progress=not args.no_progress)
    print()
    print("Fitting to the HMC views of test frames: frontal rendering against the photo, mesh against the "
          "tracked mesh")
    print(demo_table(result.summaries))
    out = result.out
    print(f"\ndone in {result.seconds / 60:.1f} min. Look at {result.sheet} (rows: frames; columns: HMC views | photo "
          f"| DAM before | after | LiP-Flow before | after), strips in {out / 'fits' / '*' / 'strips'}; "
          f"tensorboard --logdir {out}")


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``avatarfit`` console script; returns the exit status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    command = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser(command if command in _PARSERS else "")  # "": no command's arguments (top-level help)
    args = parser.parse_args(argv)
    from .errors import AvatarfitError

    commands = {"demo": _cmd_demo, "synth": _cmd_synth, "render": _cmd_render, "hmc": _cmd_hmc, "train": _cmd_train,
                "export-avatar": _cmd_export_avatar, "fit": _cmd_fit,
                "inspect-latents": _cmd_inspect_latents, "interpolate": _cmd_interpolate, "evaluate": _cmd_evaluate}
    try:
        commands[args.command](args)
    except (AvatarfitError, ValueError, OSError) as exc:  # OSError: files and folders (missing, exist, permissions)
        print(f"avatarfit {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"avatarfit {args.command}: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
