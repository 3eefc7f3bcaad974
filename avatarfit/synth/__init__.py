"""Synthetic subjects, expression rig, capture dome and capture generation."""

from .dome import FRONTAL_CAMERA, make_dome
from .generate import SynthConfig, generate_capture, load_subject
from .subject import CONTROLS, ExpressionRig, Subject

__all__ = [
    "CONTROLS", "ExpressionRig", "FRONTAL_CAMERA", "Subject", "SynthConfig", "generate_capture", "load_subject",
    "make_dome",
]
