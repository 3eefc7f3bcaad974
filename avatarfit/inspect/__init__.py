"""Inspecting trained priors: samples of the predicted priors in the prior's and the
decoder's latent spaces, their variance, TensorBoard projector logs (LiP-Flow, supplementary Fig. 11)."""

from .job import InspectReport, input_frames, inspect_latents
from .latents import LatentSamples, pca_2d, sample_latents
from .report import scatter_image, thumbnails, write_latent_logs

__all__ = ["InspectReport", "LatentSamples", "inspect_latents", "pca_2d", "sample_latents", "scatter_image",
           "input_frames", "thumbnails", "write_latent_logs"]
