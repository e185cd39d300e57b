"""Check a relation dataset in one pass and report every problem with counts.

Usage::

    python -m rlipv2.data.validate hico_det_train                      # a registered name
    python -m rlipv2.data.validate ann.json --format hico --image-root DIR   # a file
    python -m rlipv2.data.validate ann.json --format vg --image-root DIR --decode

Checks: malformed JSON and records, missing / corrupt images (``--decode`` decodes every image
fully; otherwise its header is read), annotated size vs image size, boxes outside the image or
with x2 < x1, relation indices out of range, unknown categories. Exits 1 when there is any
problem, 0 otherwise.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections import Counter

from PIL import Image

from .datasets.common import Problem, ProblemSink, RelationDataError, collect_problems

__all__ = ["validate_dataset", "validate_file", "format_report", "main"]


def _check_images(dicts: list[dict], source: str, sink: ProblemSink, decode: bool) -> None:
    for d in dicts:
        path, image = d["file_name"], d.get("image_id")
        try:
            with Image.open(path) as im:
                w, h = im.size
                if decode:
                    im.load()
        except FileNotFoundError:
            sink.add(Problem("missing_image", source, image, "file_name", f"image file not found: {path}"))
            continue
        except Exception as e:
            sink.add(Problem("corrupt_image", source, image, "file_name", f"cannot read image {path}: {e}"))
            continue
        if "height" in d and (d["height"], d["width"]) != (h, w):
            sink.add(
                Problem(
                    "size_mismatch",
                    source,
                    image,
                    "height/width",
                    f"annotated {d['width']}x{d['height']} but {path} is {w}x{h}",
                )
            )


def validate_dataset(name: str, decode: bool = False) -> tuple[list[Problem], int]:
    """Validate a registered dataset. Returns (problems, number of records that loaded)."""
    from detectron2.data import DatasetCatalog, MetadataCatalog

    md = MetadataCatalog.get(name)
    source = md.get("json_file", name)
    with collect_problems() as sink:
        try:
            dicts = DatasetCatalog.get(name)
        except RelationDataError as e:  # a file-level problem (e.g. malformed JSON)
            sink.problems.append(e.problem)
            dicts = []
        except FileNotFoundError as e:
            sink.problems.append(Problem("missing_file", getattr(e, "path", source), None, "<file>", str(e)))
            dicts = []
        _check_images(dicts, source, sink, decode)
    return sink.problems, len(dicts)


def validate_file(
    json_file: str, format: str, image_root: str, decode: bool = False, **options
) -> tuple[list[Problem], int]:
    """Validate an annotation file in an official format ("hico", "vcoco", "vg", "oi")."""
    from .datasets.register import register_relation_dataset

    name = f"__rlipv2_validate_{abs(hash((json_file, format, image_root)))}"
    register_relation_dataset(name, json_file, image_root, format=format, **options)
    try:
        return validate_dataset(name, decode=decode)
    finally:
        from detectron2.data import DatasetCatalog, MetadataCatalog

        DatasetCatalog.remove(name)
        MetadataCatalog.remove(name)


def format_report(problems: list[Problem], num_ok: int, max_examples: int = 5) -> str:
    """A human-readable report: counts per kind, then up to ``max_examples`` examples each."""
    lines = []
    counts = Counter(p.kind for p in problems)
    if not problems:
        lines.append(f"OK: {num_ok} records, no problems found.")
        return "\n".join(lines)
    lines.append(f"{len(problems)} problem(s) found; {num_ok} record(s) without problems.")
    for kind, c in counts.most_common():
        lines.append(f"  {kind}: {c}")
    for kind in counts:
        ex = [p for p in problems if p.kind == kind][:max_examples]
        lines.append(f"{kind} (first {len(ex)}):")
        lines.extend(f"    {p}" for p in ex)
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m rlipv2.data.validate", description=__doc__.split("\n")[0])
    ap.add_argument("dataset", help="a registered dataset name, or an annotation JSON file")
    ap.add_argument("--format", choices=["hico", "vcoco", "vg", "oi"], help="format of a JSON file")
    ap.add_argument("--image-root", help="folder the file's image names are relative to")
    ap.add_argument("--object-names", help="hico: JSON {name: id} object list (default: HICO-DET's)")
    ap.add_argument("--verb-names", help="hico: 'NNN  verb' list (default: HICO-DET's)")
    ap.add_argument("--categories", help="oi: {'obj': [...], 'rel': [...]} categories file")
    ap.add_argument("--all-categories", help="oi: the 601-class categories_dict.json the file ids index")
    ap.add_argument("--image-source", default="vg", choices=["vg", "coco2017", "o365"], help="vg: image naming")
    ap.add_argument("--decode", action="store_true", help="fully decode every image (slower)")
    ap.add_argument("--max-examples", type=int, default=5)
    args = ap.parse_args(argv)

    import rlipv2  # noqa: F401  (registers the datasets)

    if os.path.isfile(args.dataset) or args.dataset.endswith(".json"):
        if not args.format or args.image_root is None:
            ap.error("a JSON file needs --format and --image-root")
        opts: dict = {}
        if args.format in ("hico", "vcoco"):
            if args.object_names:
                opts["object_names_file"] = args.object_names
            if args.verb_names:
                opts["verb_names_file"] = args.verb_names
        elif args.format == "oi":
            if not args.categories:
                ap.error("--format oi needs --categories")
            opts.update(categories_file=args.categories, all_categories_file=args.all_categories)
        else:
            opts["image_source"] = args.image_source
        problems, n = validate_file(args.dataset, args.format, args.image_root, decode=args.decode, **opts)
    else:
        from detectron2.data import DatasetCatalog

        if args.dataset not in DatasetCatalog:
            ap.error(f"{args.dataset!r} is neither a file nor a registered dataset")
        problems, n = validate_dataset(args.dataset, decode=args.decode)
    print(format_report(problems, n, args.max_examples))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
