#!/usr/bin/env python
"""Rasteriser speed on this machine: avatarfit's bounding-box rasteriser against
PyTorch3D's MeshRasterizer, on the same ~11k-face procedural head, in one run.

Prints the median of --repeats timed runs (after one warm-up) for rasterisation alone
(forward, no grad) and for a textured render with backward (vertices and texture),
and the ratio PyTorch3D / bbox; then the textured render with backward with and without
antialiased outlines on each backend, and their ratio. Targets:
>= 20x at 128^2 and 256^2, >= 1.5x at 64^2; antialiasing: <= 1.25x.

usage: python benchmarks/bench_render.py [--sizes 64 128 256] [--repeats 5] [--device cpu]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from avatarfit.render import look_at, rasterize, render_textured
from avatarfit.synth.procedural import make_procedural_subject


def _median_time(fn, repeats: int, device: torch.device) -> float:
    fn()
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 128, 256])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    device = torch.device(args.device)
    subject = make_procedural_subject(0, texture_size=256)
    verts = subject.verts[None].to(device)
    faces = subject.faces.to(device)
    uvs = subject.verts_uvs.to(device)
    tex = subject.texture[None].to(device)
    R, t = look_at(torch.tensor([[120.0, 40.0, 950.0]]), torch.zeros(1, 3), torch.tensor([0.0, 1.0, 0.0]))
    R, t = R.to(device), t.to(device)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {device}; "
          f"mesh {faces.shape[0]} faces, {verts.shape[1]} vertices; median of {args.repeats} runs")
    print(f"{'size':>8} {'task':>22} {'pytorch3d (s)':>14} {'bbox (s)':>10} {'ratio':>8}")
    for size in args.sizes:
        f = size * 1000.0 / 300.0
        K = torch.tensor([[[f, 0, size / 2], [0, f, size / 2], [0, 0, 1]]], device=device)
        hw = (size, size)

        def raster(backend):
            with torch.no_grad():
                rasterize(verts, faces, K, R, t, hw, backend=backend)

        def render_backward(backend, antialias=True):
            v = verts.clone().requires_grad_(True)
            x = tex.clone().requires_grad_(True)
            out = render_textured(v, faces, uvs, subject.faces_uvs.to(device), x, K, R, t, hw, backend=backend,
                                  antialias=antialias)
            out.image.sum().backward()

        for name, fn in (("rasterise (forward)", raster), ("textured fwd+backward", render_backward)):
            t_p3d = _median_time(lambda: fn("pytorch3d"), args.repeats, device)
            t_bbox = _median_time(lambda: fn("bbox"), args.repeats, device)
            print(f"{size:>4}^2 {name:>26} {t_p3d:>14.4f} {t_bbox:>10.4f} {t_p3d / t_bbox:>7.1f}x")
        for backend in ("bbox", "pytorch3d"):
            hard = _median_time(lambda: render_backward(backend, False), args.repeats, device)
            soft = _median_time(lambda: render_backward(backend, True), args.repeats, device)
            print(f"{size:>4}^2 {'antialias ' + backend:>26}  hard {hard:.4f} s, antialiased {soft:.4f} s: "
                  f"{soft / hard:.2f}x")


if __name__ == "__main__":
    main()
