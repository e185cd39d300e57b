#!/usr/bin/env python
"""Convert an official RLIPv2 checkpoint to this implementation's state dict.

    python tools/convert_official_checkpoint.py IN.pth OUT.pth [--variant parseda|parsed|tagger]
        [--num-queries 128 [--truncation paired|official]]

The input is loaded safely (``torch.load(weights_only=True)`` with ``argparse.Namespace`` allow-listed,
no arbitrary pickles). The output is ``{"model": state_dict, "official_args": dict}``, written atomically;
load it with Detectron2's ``DetectionCheckpointer`` (``train.init_checkpoint=OUT.pth``). Every key
that could not be mapped is listed; the exit status is 1 if any remains (0 otherwise).
"""
from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # this checkout's rlipv2


def load_official(path: str) -> dict:
    from rlipv2.engine.checkpoint import safe_torch_load

    ckpt = safe_torch_load(path)  # weights_only=True, argparse.Namespace allowed; refuses code with a clear error
    if not isinstance(ckpt, dict):
        raise ValueError(f"{path}: expected a dict checkpoint, got {type(ckpt).__name__}")
    return ckpt


def main(argv=None) -> int:
    import torch

    from rlipv2.modeling.checkpoint_conversion import convert_official_state_dict, truncate_queries
    from rlipv2.utils.cli import positive_int
    from rlipv2.utils.file_io import atomic_torch_save

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("input")
    p.add_argument("output")
    p.add_argument("--variant", default="parseda", choices=["parseda", "parsed", "tagger"],
                   help="parseda: RLIPv2-ParSeDA (all released models); parsed: RLIPv2-ParSeD; "
                        "tagger: R-Tagger (RTagger, configs/common/models/rtagger_r50.py)")
    p.add_argument("--num-queries", type=positive_int, default=None,
                   help="keep this many entity queries (e.g. 128 to fine-tune from a 200-query model)")
    p.add_argument("--truncation", default="paired", choices=["paired", "official"],
                   help="'official' keeps rows 0..N-1 like the official code (breaks pairs); 'paired' keeps pairs")
    args = p.parse_args(argv)

    ckpt = load_official(args.input)
    sd = ckpt.get("model", ckpt)
    if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise ValueError(f"{args.input}: 'model' is not a state dict of tensors")
    sd = {k[len("module."):] if k.startswith("module.") else k: v for k, v in sd.items()}
    new, unmapped, dropped = convert_official_state_dict(sd, args.variant)
    if args.num_queries is not None:
        new = truncate_queries(new, args.num_queries, args.truncation)
    official_args = vars(ckpt["args"]) if isinstance(ckpt.get("args"), argparse.Namespace) else {}
    official_args = {k: v for k, v in official_args.items() if isinstance(v, (int, float, str, bool, type(None)))}
    atomic_torch_save({"model": new, "official_args": official_args}, args.output)  # keeps the umask's mode
    print(f"converted {len(new)} tensors, dropped {len(dropped)} (aliases, position_ids), "
          f"unmapped {len(unmapped)} -> {args.output}")
    for k in unmapped:
        print(f"  unmapped: {k}")
    return 1 if unmapped else 0


def _cli() -> int:
    from rlipv2.engine.checkpoint import UnsafeCheckpointError

    try:
        return main()
    except (UnsafeCheckpointError, ValueError, OSError, RuntimeError) as e:  # bad input: a clear one-line error
        print(f"convert_official_checkpoint: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(_cli())
