#!/usr/bin/env python
"""Convert an official RLIPv2 checkpoint to this implementation's state dict.

    python tools/convert_official_checkpoint.py IN.pth OUT.pth [--variant parseda|parsed|tagger]
        [--num-queries 128 [--truncation paired|official]]

The input is loaded safely (``torch.load(weights_only=True)`` with ``argparse.Namespace`` allow-listed,
no arbitrary pickles). The output is ``{"model": state_dict, "official_args": dict}``, written atomically;
load it with Detectron2's ``DetectionCheckpointer`` (``train.init_checkpoint=OUT.pth``).

A checkpoint that is not an official one of the chosen variant (a key without an official name, e.g.
a checkpoint of this implementation, or no weights at all) is refused: nothing is written, one line
on stderr says why (and which ``--variant`` would fit, or that the file is converted already), and
the exit status is 2.
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


# First name components of this implementation's state dicts (an already converted checkpoint).
_CONVERTED_PREFIXES = ("neck.", "encoder.", "decoder.", "head.", "text_encoder.model.", "queries.")


def check_official(sd: dict, new: dict, unmapped: list[str], variant: str, path: str) -> None:
    """Raise ValueError (one line) unless ``sd`` converted completely as an official ``variant`` checkpoint."""
    from rlipv2.modeling.checkpoint_conversion import convert_official_state_dict

    if new and not unmapped:
        return
    if not sd:
        raise ValueError(f"{path}: the checkpoint holds no weights; nothing written")
    ours = sum(k.startswith(_CONVERTED_PREFIXES) or k.startswith("backbone.res") for k in sd)
    if ours >= len(sd) / 2:
        raise ValueError(
            f"{path}: not an official RLIPv2 checkpoint: {ours} of its {len(sd)} keys already have this "
            f"implementation's names (e.g. '{sorted(sd)[0]}'); it needs no conversion: use it as "
            "train.init_checkpoint directly; nothing written"
        )
    fits = [v for v in ("parseda", "parsed", "tagger") if v != variant and not convert_official_state_dict(sd, v)[1]]
    hint = f"; it converts completely with --variant {fits[0]}" if fits else ""
    example = f" (e.g. '{unmapped[0]}')" if unmapped else ""
    raise ValueError(
        f"{path}: not an official RLIPv2 {variant} checkpoint: {len(unmapped)} of its {len(sd)} keys have no "
        f"official name{example}{hint}; nothing written"
    )


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
    check_official(sd, new, unmapped, args.variant, args.input)
    if args.num_queries is not None:
        new = truncate_queries(new, args.num_queries, args.truncation)
    official_args = vars(ckpt["args"]) if isinstance(ckpt.get("args"), argparse.Namespace) else {}
    official_args = {k: v for k, v in official_args.items() if isinstance(v, (int, float, str, bool, type(None)))}
    atomic_torch_save({"model": new, "official_args": official_args}, args.output)
    print(f"converted {len(new)} tensors, dropped {len(dropped)} (aliases, position_ids), "
          f"unmapped {len(unmapped)} -> {args.output}")
    return 0


def _cli() -> int:
    from rlipv2.engine.checkpoint import UnsafeCheckpointError

    try:
        return main()
    except (UnsafeCheckpointError, ValueError, OSError, RuntimeError) as e:  # bad input: a clear one-line error
        print(f"convert_official_checkpoint: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(_cli())
