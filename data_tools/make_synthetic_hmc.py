#!/usr/bin/env python
"""Synthetic head-mounted-camera views and keypoints for a capture (same as ``avatarfit hmc``).

    python data_tools/make_synthetic_hmc.py --capture CAP --out CAP --preview

Run with ``--help`` for every option and the files written.
"""

import sys

from avatarfit.cli import main

if __name__ == "__main__":
    sys.exit(main(["hmc", *sys.argv[1:]]))
