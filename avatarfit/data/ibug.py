"""The groups of the iBUG 68-point facial landmarks (the order of a capture's
``landmarks.txt`` and of the first 68 keypoints): 0-based indices."""

__all__ = ["BROWS", "EYES", "INNER_LOWER", "INNER_UPPER", "JAW", "MOUTH", "NOSE"]

JAW = list(range(0, 17))
BROWS = (list(range(17, 22)), list(range(22, 27)))
NOSE = list(range(27, 36))
#: The two eyes' outlines (36-41, 42-47).
EYES = (list(range(36, 42)), list(range(42, 48)))
MOUTH = list(range(48, 68))
INNER_UPPER = [61, 62, 63]
INNER_LOWER = [65, 66, 67]
