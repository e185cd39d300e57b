#!/usr/bin/env python
"""Benchmark the compiled ops of rlipv2._C against their pure-PyTorch paths.

Multi-scale deformable attention at RLIPv2 shapes (N=1, M=8 heads, D=32, L=4 levels of an 800x1066
image at strides 8/16/32/64, P=4 points, offsets of about 2 pixels): the encoder (Lq = S = 17821
queries, each sampling around its own pixel) and the decoder (Lq = 200 queries anywhere in the image).
For each case, forward and forward+backward are timed with the runs of the two backends interleaved
(alternating which goes first); the median time of each and the median of the per-run ratios are
printed, with the largest difference between the backends' results.

    python tools/benchmark_ops.py                    # pytorch vs cpu, float32
    python tools/benchmark_ops.py --repeats 3        # fewer repeats
    python tools/benchmark_ops.py --device cuda --dtype float32 bfloat16   # pytorch vs cuda kernel
"""
from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from rlipv2.layers import ms_deform_attn  # noqa: E402
from rlipv2.layers.multi_scale_deform_attn import resolve_backend  # noqa: E402
from rlipv2.utils.extension import extension_info  # noqa: E402

IMAGE_HW = (800, 1066)
STRIDES = (8, 16, 32, 64)


def level_shapes(image_hw=IMAGE_HW, strides=STRIDES):
    """Feature-map sizes of a ResNet + extra stride-64 level: ceil(H / stride) at each level."""
    return [(math.ceil(image_hw[0] / s), math.ceil(image_hw[1] / s)) for s in strides]


def make_inputs(lq, dtype, device, n=1, m=8, d=32, p=4, seed=0, image_hw=IMAGE_HW):
    gen = torch.Generator().manual_seed(seed)
    shapes = level_shapes(image_hw)
    L = len(shapes)
    spatial_shapes = torch.tensor(shapes, dtype=torch.int64)
    starts = torch.cat([spatial_shapes.new_zeros(1), (spatial_shapes[:, 0] * spatial_shapes[:, 1]).cumsum(0)[:-1]])
    S = int((spatial_shapes[:, 0] * spatial_shapes[:, 1]).sum())
    lq = S if lq is None else lq
    value = torch.randn(n, S, m, d, generator=gen)
    if lq == S:
        # Encoder: each query is a pixel of some level and samples around its own centre (as the
        # Deformable-DETR encoder does), so consecutive queries read neighbouring memory.
        centres = []
        for h, w in shapes:
            ys, xs = torch.meshgrid((torch.arange(h) + 0.5) / h, (torch.arange(w) + 0.5) / w, indexing="ij")
            centres.append(torch.stack([xs.reshape(-1), ys.reshape(-1)], -1))
        ref = torch.cat(centres).view(1, S, 1, 1, 1, 2).expand(n, -1, -1, -1, -1, -1)
    else:
        # Decoder: object queries with reference points anywhere in the image.
        ref = torch.rand(n, lq, 1, 1, 1, 2, generator=gen)
    # Offsets of about 2 pixels of each level (some points fall outside the map).
    wh = spatial_shapes.flip(-1).to(torch.float32).view(1, 1, 1, L, 1, 2)
    loc = ref + torch.randn(n, lq, m, L, p, 2, generator=gen) * 2.0 / wh
    attn = torch.rand(n, lq, m, L, p, generator=gen)
    attn = attn / attn.sum((-1, -2), keepdim=True)
    to = dict(device=device)
    return (value.to(dtype=dtype, **to), spatial_shapes.to(**to), starts.to(**to), loc.to(dtype=dtype, **to),
            attn.to(dtype=dtype, **to))


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_once(fn, device):
    _sync(device)
    t0 = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - t0


def bench_case(name, lq, dtype, device, kernel, repeats, warmup=1, image_hw=IMAGE_HW):
    inputs = make_inputs(lq, dtype, device, image_hw=image_hw)
    value, shapes, starts, loc, attn = inputs
    S = value.shape[1]
    print(f"\n== {name}: image {image_hw[0]}x{image_hw[1]}, N=1 M=8 D=32 L=4 P=4 S={S} Lq={loc.shape[1]} "
          f"dtype={str(dtype).replace('torch.', '')} device={device.type} ==")

    def forward(backend):
        with torch.no_grad():
            return ms_deform_attn(value, shapes, starts, loc, attn, backend=backend)

    leaves = [t.detach().clone().requires_grad_() for t in (value, loc, attn)]
    grad_out = torch.randn(forward("pytorch").shape, dtype=dtype, device=device)

    def fwd_bwd(backend):
        for t in leaves:
            t.grad = None
        out = ms_deform_attn(leaves[0], shapes, starts, leaves[1], leaves[2], backend=backend)
        out.backward(grad_out)
        return [t.grad for t in leaves]

    # Equal results first.
    ref, got = forward("pytorch").float(), forward(kernel).float()
    diff = (ref - got).abs().max().item()
    g_ref = [g.float() for g in fwd_bwd("pytorch")]
    g_got = [g.float() for g in fwd_bwd(kernel)]
    gdiff = [(a - b).abs().max().item() for a, b in zip(g_ref, g_got)]
    print(f"max |pytorch - {kernel}|: output {diff:.2e}; grads value {gdiff[0]:.2e} loc {gdiff[1]:.2e} "
          f"attn {gdiff[2]:.2e}")

    results = {}
    for label, fn in (("forward", forward), ("fwd+bwd", fwd_bwd)):
        for _ in range(warmup):
            fn("pytorch"), fn(kernel)
        times = {"pytorch": [], kernel: []}
        ratios = []
        for r in range(repeats):
            order = ("pytorch", kernel) if r % 2 == 0 else (kernel, "pytorch")
            t = {b: time_once(lambda b=b, fn=fn: fn(b), device) for b in order}
            for b in order:
                times[b].append(t[b])
            ratios.append(t["pytorch"] / t[kernel])
        tp, tk, ratio = statistics.median(times["pytorch"]), statistics.median(times[kernel]), statistics.median(ratios)
        results[label] = ratio
        print(f"{label:8s} pytorch {tp * 1e3:9.2f} ms | {kernel} {tk * 1e3:9.2f} ms | "
              f"median ratio {ratio:6.2f}x  (runs {repeats})")
    return results


def main(argv=None):
    from rlipv2.utils.cli import positive_int

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--dtype", nargs="+", default=["float32"], choices=("float32", "float64", "float16",
                                                                             "bfloat16"))
    parser.add_argument("--repeats", type=positive_int, default=7, help="timed runs per backend and case (default 7)")
    parser.add_argument("--quick", action="store_true", help="3 repeats")
    parser.add_argument("--cases", nargs="+", default=["encoder", "decoder"], choices=("encoder", "decoder"))
    parser.add_argument("--image", default=f"{IMAGE_HW[0]}x{IMAGE_HW[1]}",
                        help="input image HxW whose feature levels are used (default %(default)s)")
    parser.add_argument("--threads", type=positive_int, default=None, help="torch.set_num_threads (default: torch's)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    repeats = 3 if args.quick else args.repeats
    try:
        image_hw = tuple(int(v) for v in args.image.lower().split("x"))
        assert len(image_hw) == 2 and min(image_hw) > 0
    except (ValueError, AssertionError):
        parser.error(f"--image must look like 800x1066, got {args.image!r}")
    device = torch.device(args.device)
    kernel = resolve_backend("auto", device)
    if kernel == "pytorch":
        print(f"rlipv2._C has no {args.device} kernel ({extension_info()}); build it first (docs/ops.md).")
        return 1
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, rlipv2._C {extension_info()}")
    summary = []
    for dtype_name in args.dtype:
        dtype = getattr(torch, dtype_name)
        for case in args.cases:
            lq = None if case == "encoder" else 200
            res = bench_case(case, lq, dtype, device, kernel, repeats, image_hw=image_hw)
            summary.append((case, dtype_name, res["forward"], res["fwd+bwd"]))
    print(f"\nSummary (median pytorch / {kernel} time ratio):")
    for case, dtype_name, f, fb in summary:
        print(f"  {case:8s} {dtype_name:9s} forward {f:6.2f}x   forward+backward {fb:6.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
