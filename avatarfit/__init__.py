"""avatarfit: fit personalised face avatars to partial observations (LiP-Flow).

Rooms, one per stage of the data flow (lowest first; each imports only rooms below it;
the README's development section has the table):

- :mod:`avatarfit.metrics`: image, geometry, keypoint and latent-code metrics.
- :mod:`avatarfit.data`: captures in the Multiface layout, statistics, frame splits.
- :mod:`avatarfit.render`: OpenCV cameras, rasterisers and textured rendering.
- :mod:`avatarfit.models`: DAM, prior encoders, latent flows, model variants.
- :mod:`avatarfit.synth`: synthetic subjects, capture generation, the synthetic HMC tool.
- :mod:`avatarfit.avatar`: a trained avatar (decode, render, encode, the prior's mean).
- :mod:`avatarfit.observe`: capture frames into targets, observations and ground truth.
- :mod:`avatarfit.fit`: inference-time fitting, scoring, the search, fit jobs.
- :mod:`avatarfit.train`: training every variant.
- :mod:`avatarfit.inspect`: latent samples, variance and interpolation.
- :mod:`avatarfit.eval`: the paper's Tables 6-9.

Importing this package does no work: import the subpackage you need.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
