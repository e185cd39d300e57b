"""Check a relation dataset in one pass and report every problem with counts.

Usage::

    python -m rlipv2.data.validate hico_det_train                      # a registered name
    python -m rlipv2.data.validate ann.json --format hico --image-root DIR   # a file
    python -m rlipv2.data.validate ann.json --format vg --image-root DIR --decode

Checks every rule of the file's schema (``rlipv2/schemas/``: types, finite and ordered boxes, ids inside
the vocabulary, relation indices inside the box list, confidences in [0, 1], unique file names / image
ids, image paths under the image root), then the images: missing / corrupt (``--decode`` decodes every
image fully; otherwise its header is read), annotated size vs image size, boxes outside the image.

The report starts with the vocabulary used, its size and its source. A HICO-format file checked without
``--object-names`` / ``--verb-names`` is checked against the packaged HICO-DET vocabulary, and the report
says so: give your own vocabulary files for a dataset of your own. Exits 1 when there is any problem,
0 otherwise, 2 on bad arguments.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections import Counter

from PIL import Image

from ..schemas.core import SchemaError
from ..utils.cli import nonnegative_int
from .datasets.common import Problem, ProblemSink, collect_problems

__all__ = ["validate_dataset", "validate_file", "format_report", "describe_vocabulary", "main"]


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
        except SchemaError as e:  # a file-level problem (e.g. malformed JSON, a bad vocabulary file)
            sink.problems.append(e.problem or Problem("malformed_file", source, None, "<file>", str(e)))
            dicts = []
        except FileNotFoundError as e:
            sink.problems.append(Problem("missing_file", getattr(e, "path", source), None, "<file>", str(e)))
            dicts = []
        _check_images(dicts, source, sink, decode)
    return sink.problems, len(dicts)


def validate_file(
    json_file: str, format: str, image_root: str, decode: bool = False, with_vocabulary: bool = False, **options
):
    """Validate an annotation file in an official format ("hico", "vcoco", "vg", "oi").

    Returns (problems, number of records that loaded), plus the vocabulary lines of
    :func:`describe_vocabulary` with ``with_vocabulary=True``.
    """
    from .datasets.register import register_relation_dataset

    name = f"__rlipv2_validate_{abs(hash((json_file, format, image_root)))}"
    register_relation_dataset(name, json_file, image_root, format=format, **options)
    try:
        problems, n = validate_dataset(name, decode=decode)
        return (problems, n, describe_vocabulary(name)) if with_vocabulary else (problems, n)
    finally:
        from detectron2.data import DatasetCatalog, MetadataCatalog

        DatasetCatalog.remove(name)
        MetadataCatalog.remove(name)


def describe_vocabulary(name: str) -> list[str]:
    """Lines naming the vocabulary of a registered dataset: its size and where it comes from."""
    from detectron2.data import MetadataCatalog

    md = MetadataCatalog.get(name)
    sources = md.get("vocabulary_sources", None)
    if sources:
        return [f"vocabulary: {kind}: {desc}" for kind, desc in sources.items()]
    try:
        objects, predicates = md.thing_classes, md.predicate_classes
    except (AttributeError, KeyError, OSError, ValueError):  # the file could not be read: reported below
        return ["vocabulary: unknown (the dataset could not be loaded)"]
    if md.get("annotation_format", None) == "vg" and not md.get("vocab_file", None):
        src = f"the labels of {md.get('json_file', name)}"
    else:
        src = md.get("categories_file", None) or f"the metadata of dataset {name!r}"
    return [f"vocabulary: objects: {len(objects)} object classes from {src}",
            f"vocabulary: predicates: {len(predicates)} predicate classes from {src}"]


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
    ap.add_argument("--object-names", help="hico/vcoco: object vocabulary file: 'NNN label words' lines, plain "
                    "label lines (ids from 1), a JSON {label: id} dict or list (default: the packaged "
                    "HICO-DET / V-COCO one)")
    ap.add_argument("--verb-names",
                    help="hico/vcoco: predicate vocabulary file, same formats (default: the packaged one)")
    ap.add_argument("--categories", help="oi: {'obj': [...], 'rel': [...]} categories file")
    ap.add_argument("--all-categories", help="oi: the 601-class categories_dict.json the file ids index")
    ap.add_argument("--image-source", default="vg", choices=["vg", "coco2017", "o365"], help="vg: image naming")
    ap.add_argument("--allow-outside-root", action="store_true",
                    help="accept image paths that are absolute or contain '..' (refused by default)")
    ap.add_argument("--decode", action="store_true", help="fully decode every image (slower)")
    ap.add_argument("--max-examples", type=nonnegative_int, default=5)
    args = ap.parse_args(argv)

    import rlipv2  # noqa: F401  (registers the datasets)

    if os.path.isfile(args.dataset) or args.dataset.endswith(".json"):
        if not args.format or args.image_root is None:
            ap.error("a JSON file needs --format and --image-root")
        opts: dict = {"allow_outside_root": args.allow_outside_root}
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
        problems, n, vocab = validate_file(args.dataset, args.format, args.image_root, decode=args.decode,
                                           with_vocabulary=True, **opts)
        if args.format in ("hico", "vcoco") and not (args.object_names and args.verb_names):
            vocab.append(f"note: checked against the packaged {'V-COCO' if args.format == 'vcoco' else 'HICO-DET'} "
                         "vocabulary for the classes without --object-names / --verb-names; give your own "
                         "vocabulary files for a dataset of your own")
    else:
        from detectron2.data import DatasetCatalog

        if args.dataset not in DatasetCatalog:
            ap.error(f"{args.dataset!r} is neither a file nor a registered dataset")
        problems, n = validate_dataset(args.dataset, decode=args.decode)
        vocab = describe_vocabulary(args.dataset)
    print("\n".join(vocab))
    print(format_report(problems, n, args.max_examples))
    return 1 if problems else 0


if __name__ == "__main__":
    from ..utils.cli import run_cli

    sys.exit(run_cli(main, "python -m rlipv2.data.validate"))
