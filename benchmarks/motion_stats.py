"""How much a capture's faces move: the scale the evaluation's geometry errors are read against.

For each capture: the mean vertex distance of the frames' tracked meshes from the mean mesh
(what the evaluation's "motion explained" divides by), its 99th percentile over every
(frame, vertex), the travel of the chin (iBUG landmark 8) and of the lower-lip centre
(landmark 57) from their mean positions, all in mm and relative to the inter-ocular
distance (between the eye centres, landmarks 36-41 and 42-47, on the mean mesh), and the
same per segment with its dominant expression (the segment name).

    python benchmarks/motion_stats.py CAPTURE [CAPTURE ...]
"""

from __future__ import annotations

import argparse
from collections import defaultdict

import torch

from avatarfit.data.capture import Capture
from avatarfit.render.mesh_ops import surface_points
from avatarfit.synth.rig import landmark_groups

CHIN, LOWER_LIP = 8, 57


def capture_motion(path: str) -> dict:
    """Motion statistics of one capture (mm; ``*_iod``: divided by the inter-ocular distance)."""
    cap = Capture(path)
    refs = cap.frames()
    verts = torch.stack([cap.vertices(r.segment, r.frame) for r in refs])  # (N, V, 3) head-local mm
    mean = verts.mean(0, keepdim=True)
    lm = cap.landmarks
    faces = cap.topology.faces
    points = surface_points(torch.cat([mean, verts]), faces, lm.faces, lm.bary)  # (1 + N, 68, 3)
    g = landmark_groups(points[0])
    iod = float((g["eye_left"] - g["eye_right"]).norm())
    dist = (verts - mean).norm(dim=-1)  # (N, V)
    travel = (points[1:] - points[:1]).norm(dim=-1)  # (N, 68)
    by_segment = defaultdict(list)
    for i, r in enumerate(refs):
        by_segment[r.segment].append(i)
    segments = {s: {"mean_mm": float(dist[idx].mean()), "chin_max_mm": float(travel[idx, CHIN].max()),
                    "lip_max_mm": float(travel[idx, LOWER_LIP].max())} for s, idx in by_segment.items()}
    return {"frames": len(refs), "iod_mm": iod, "mean_mm": float(dist.mean()),
            "p99_mm": float(torch.quantile(dist.flatten()[::7], 0.99)),
            "chin_max_mm": float(travel[:, CHIN].max()), "lip_max_mm": float(travel[:, LOWER_LIP].max()),
            "segments": segments}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("captures", nargs="+")
    args = p.parse_args()
    print("| capture | frames | inter-ocular mm | mean vertex distance from the mean mesh mm | 99th percentile mm "
          "| chin travel max mm (/ IOD) | lower-lip travel max mm (/ IOD) |")
    print("|---|---|---|---|---|---|---|")
    stats = {c: capture_motion(c) for c in args.captures}
    for c, s in stats.items():
        print(f"| {c} | {s['frames']} | {s['iod_mm']:.1f} | {s['mean_mm']:.3f} | {s['p99_mm']:.3f} | "
              f"{s['chin_max_mm']:.2f} ({s['chin_max_mm'] / s['iod_mm']:.3f}) | "
              f"{s['lip_max_mm']:.2f} ({s['lip_max_mm'] / s['iod_mm']:.3f}) |")
    for c, s in stats.items():
        print(f"\n{c}: per segment (mean vertex distance mm, chin / lower-lip travel max mm)")
        for seg, v in s["segments"].items():
            print(f"- {seg}: {v['mean_mm']:.3f}, {v['chin_max_mm']:.2f} / {v['lip_max_mm']:.2f}")


if __name__ == "__main__":
    main()
