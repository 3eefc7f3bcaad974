#!/usr/bin/env python
"""Check a capture folder in the Multiface layout: read every listed file once.

usage: python data_tools/check_capture.py CAPTURE [--no-photos] [--no-textures]
"""

from __future__ import annotations

import argparse
import sys

from avatarfit.data import Capture
from avatarfit.errors import AvatarfitError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("capture", help="capture folder")
    parser.add_argument("--no-photos", action="store_true", help="skip reading photos")
    parser.add_argument("--no-textures", action="store_true", help="skip reading average textures")
    args = parser.parse_args(argv)
    try:
        cap = Capture(args.capture)
        cap.validate(photos=not args.no_photos, textures=not args.no_textures)
    except (AvatarfitError, ValueError) as exc:
        print(f"check_capture: {exc}", file=sys.stderr)
        return 1
    print(f"ok: {cap}; {cap.topology.num_verts} vertices, {cap.topology.faces.shape[0]} faces, "
          f"textures {cap.texture_size}x{cap.texture_size}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
