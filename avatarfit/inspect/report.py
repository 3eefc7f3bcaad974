"""TensorBoard logs and pictures of :class:`~avatarfit.inspect.latents.LatentSamples`:
the embedding projector in P and Q with sprite thumbnails, per-input variance as scalars
and histograms, the PCA scatter of both spaces (also as PNG), the inputs of highest and
lowest variance, and decoded frontal renderings of a few samples per input."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from .latents import LatentSamples, pca_2d

__all__ = ["scatter_image", "thumbnails", "write_latent_logs"]


def thumbnails(views: torch.Tensor, size: int = 32) -> torch.Tensor:
    """``(N, 3, 1, h, w)`` HMC views -> ``(N, 3, size, size)`` sprites (the three views side
    by side, grey); keypoint inputs ``(N, 274, 2)`` (in [-1, 1]) -> their points drawn."""
    if views.ndim == 5:
        row = torch.cat(list(views[:, :, 0].unbind(1)), dim=-1)[:, None]  # (N, 1, h, 3w)
        img = F.interpolate(row.float(), size=(size, size), mode="bilinear", align_corners=False, antialias=True)
        return img.expand(-1, 3, -1, -1).clamp(0, 1)
    img = torch.zeros(views.shape[0], 3, size, size)
    xy = ((views.clamp(-1, 1) + 1) / 2 * (size - 1)).round().long()
    for i in range(views.shape[0]):
        img[i, :, xy[i, :, 1], xy[i, :, 0]] = 1.0
    return img


def scatter_image(samples: LatentSamples, max_legend: int = 20) -> torch.Tensor:
    """PCA of P and Q side by side, a colour per input, the legend listing each input's
    variance in both spaces (LiP-Flow, supplementary Fig. 11): ``(3, H, W)`` in [0, 1]."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    N, S = samples.inputs, samples.samples
    fig, axes = plt.subplots(1, 2, figsize=(11, 5), dpi=80)
    cmap = plt.get_cmap("tab20" if N > 10 else "tab10")
    for ax, space, points in ((axes[0], "P (prior space)", samples.p), (axes[1], "Q (decoder space)", samples.q)):
        xy = pca_2d(points.flatten(0, 1)).view(N, S, 2).numpy()
        for i in range(N):
            label = (f"{samples.names[i]}: {float(samples.var_p[i]):.3g} / {float(samples.var_q[i]):.3g}"
                     if i < max_legend and ax is axes[1] else None)
            ax.scatter(xy[i, :, 0], xy[i, :, 1], s=6, color=cmap(i % cmap.N), label=label, alpha=0.7)
        ax.set_title(f"{space}: PCA of {N} x {S} samples")
        ax.set_xlabel("PC 1")
        ax.set_ylabel("PC 2")
    axes[1].legend(title="input: variance in P / in Q", fontsize=6, title_fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig.tight_layout()
    fig.canvas.draw()
    rgba = torch.frombuffer(bytearray(fig.canvas.buffer_rgba()), dtype=torch.uint8)
    rgba = rgba.view(*reversed(fig.canvas.get_width_height()), 4)[..., :3]
    plt.close(fig)
    return rgba.permute(2, 0, 1).float() / 255.0


def write_latent_logs(samples: LatentSamples, logdir: str | Path, inputs: torch.Tensor | None = None,
                      renders: dict[str, torch.Tensor] | None = None) -> dict[str, Path]:
    """Write the TensorBoard logs of ``samples`` into ``logdir``.

    Args:
        samples: the prior's samples.
        logdir: TensorBoard folder (``pca.png`` is written there too).
        inputs: the N observations (HMC views or keypoints) for sprites and the extreme inputs.
        renders: ``name -> (K, 3, H, W)`` decoded frontal renderings of a few samples per input.

    Returns:
        The files written: ``pca`` (PNG) and ``projector`` (its config).
    """
    from torch.utils.tensorboard import SummaryWriter

    from .._io import write_png

    logdir = Path(logdir)
    logdir.mkdir(parents=True, exist_ok=True)
    S = samples.samples
    labels = [name for name in samples.names for _ in range(S)]
    sprites = thumbnails(inputs).repeat_interleave(S, 0) if inputs is not None else None
    writer = SummaryWriter(str(logdir))
    try:
        writer.add_embedding(samples.p.flatten(0, 1), metadata=labels, label_img=sprites, tag="P")
        writer.add_embedding(samples.q.flatten(0, 1), metadata=labels, label_img=sprites, tag="Q")
        for i, name in enumerate(samples.names):
            writer.add_scalar("variance/P", float(samples.var_p[i]), i)
            writer.add_scalar("variance/Q", float(samples.var_q[i]), i)
            writer.add_scalar("variance/P_analytic", float(samples.var_p_analytic[i]), i)
            writer.add_histogram(f"samples_P/{name}", samples.p[i], 0)
            writer.add_histogram(f"samples_Q/{name}", samples.q[i], 0)
        writer.add_histogram("variance_per_input/P", samples.var_p, 0)
        writer.add_histogram("variance_per_input/Q", samples.var_q, 0)
        scatter = scatter_image(samples)
        writer.add_image("pca_P_Q", scatter, 0)
        if inputs is not None and inputs.ndim == 5 and samples.conditional:
            hi, lo = int(samples.var_q.argmax()), int(samples.var_q.argmin())
            for tag, i in (("highest_variance", hi), ("lowest_variance", lo)):
                views = torch.cat(list(inputs[i, :, 0].unbind(0)), dim=-1)[None]
                writer.add_image(f"inputs/{tag}/{samples.names[i]}", views.expand(3, -1, -1).clamp(0, 1), 0)
        for name, images in (renders or {}).items():
            writer.add_image(f"decoded/{name}", torch.cat(list(images.unbind(0)), dim=-1).clamp(0, 1), 0)
    finally:
        writer.close()
    pca = logdir / "pca.png"
    write_png(pca, scatter)
    return {"pca": pca, "projector": logdir / "projector_config.pbtxt"}
