"""avatarfit: fit personalised face avatars to partial observations (LiP-Flow).

Subpackages, one per stage of the data flow (see the README):

- :mod:`avatarfit.data`: captures in the Multiface layout, normalisation statistics.
- :mod:`avatarfit.render`: OpenCV cameras, rasterisers and textured rendering through PyTorch3D.
- :mod:`avatarfit.synth`: synthetic subjects, expression rig and capture generation.

Importing this package does no work: import the subpackage you need.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
