#!/usr/bin/env python
"""Write the HICO-DET few-shot and zero-shot training files from the full training file.

    python datasets/prepare_hico_splits.py [--root $DETECTRON2_DATASETS/hico_20160224_det] [--seed 0]

Writes ``annotations/trainval_hico_{1percent,10percent,UC-RF,UC-NF,UO,UV}.json`` next to
``trainval_hico.json`` (existing files, e.g. the official released ones, are left alone unless
``--overwrite``). The registered datasets ``hico_det_train_1pct`` ... derive the same splits on the
fly when these files are absent, so this script is only needed to share or inspect them.
"""

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from rlipv2.data.splits import few_shot_entries, hico_unseen_file_pairs, zero_shot_entries  # noqa: E402


def main(argv=None):
    from rlipv2.utils.cli import nonnegative_int

    default_root = os.path.join(os.getenv("DETECTRON2_DATASETS", "datasets"), "hico_20160224_det")
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--root", default=default_root)
    ap.add_argument("--seed", type=nonnegative_int, default=0)
    ap.add_argument("--overwrite", action="store_true")
    args = ap.parse_args(argv)
    ann = os.path.join(args.root, "annotations")
    with open(os.path.join(ann, "trainval_hico.json")) as f:
        entries = json.load(f)
    outputs = {
        "trainval_hico_1percent.json": lambda: few_shot_entries(entries, 0.01, args.seed),
        "trainval_hico_10percent.json": lambda: few_shot_entries(entries, 0.10, args.seed),
    }
    for setting in ("UC-RF", "UC-NF", "UO", "UV"):
        outputs[f"trainval_hico_{setting}.json"] = lambda s=setting: zero_shot_entries(
            entries, hico_unseen_file_pairs(s)
        )
    for name, make in outputs.items():
        path = os.path.join(ann, name)
        if os.path.exists(path) and not args.overwrite:
            print(f"exists, kept: {path}")
            continue
        data = make()
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(data, f)
        os.replace(tmp, path)
        n_rel = sum(len(e["hoi_annotation"]) for e in data)
        print(f"wrote {path}: {len(data)} images, {n_rel} relations")
    return 0


if __name__ == "__main__":
    sys.exit(main())
