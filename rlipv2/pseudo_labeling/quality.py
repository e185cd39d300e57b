"""Precision and recall of relational pseudo-labels against known true relations.

Real pseudo-labelled corpora (COCO, Objects365) have no relation ground truth, so the quality of the
R-Tagger's labels is normally unknown. Where the truth exists (the synthetic world's caption set keeps its
true relations aside), this module scores a ``pseudo_relations.json`` (:mod:`rlipv2.pseudo_labeling.writer`
format) against it:

- a pseudo relation (subject box, object box, text, confidence) is **correct** when the true relations of
  that ordered box pair include a relation the text can express (``predicate_texts``: true relation ->
  the free-form texts that express it; "on" can express "ride", "sit on" ...);
- **precision** at a threshold t: correct / all pseudo relations with confidence >= t;
- **recall** at t: true relations that some correct pseudo relation with confidence >= t expresses / all
  true relations (except those in ``ignore``, e.g. "no interaction", which no caption states).

Boxes are matched by value (both files take them from the same detection file), images by ``image_id``.
Only the images present in the pseudo-label file are scored (the pipeline writes every image it processed,
with or without relations), so a run over part of a dataset is scored on that part.

``python -m rlipv2.pseudo_labeling.quality --pseudo-labels P --truth T --predicate-texts M [--threshold 0.2]
[--output-dir D]`` prints the figures, and writes ``pseudo_label_quality.json`` and a precision / recall
curve (PNG) to ``D``.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence

import numpy as np

__all__ = ["score_pseudo_labels", "plot_quality_curve", "DEFAULT_THRESHOLDS"]

DEFAULT_THRESHOLDS = tuple(round(float(t), 2) for t in np.arange(0.05, 0.951, 0.05))


def _box_key(obj: dict, where: str) -> tuple:
    try:
        return tuple(round(float(obj[k]), 1) for k in ("x", "y", "w", "h"))
    except (KeyError, TypeError, ValueError) as e:
        raise ValueError(f"{where}: object {obj.get('object_id')!r} needs numeric x, y, w, h ({e})") from None


def _pairs(entry: dict, where: str) -> list[tuple[tuple, tuple, dict]]:
    boxes = {o["object_id"]: _box_key(o, where) for o in entry.get("objects", [])}
    out = []
    for r in entry.get("relationships", []):
        s, o = boxes.get(r["subject_id"]), boxes.get(r["object_id"])
        if s is None or o is None:
            raise ValueError(f"{where}: image {entry.get('image_id')!r} relation {r.get('relationship_id')!r} "
                             "names an object id that is not among its objects")
        out.append((s, o, r))
    return out


def score_pseudo_labels(
    pseudo: Sequence[dict],
    truth: Sequence[dict],
    predicate_texts: dict[str, Sequence[str]],
    thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
    ignore: Sequence[str] = ("no interaction",),
    at_threshold: float | None = None,
) -> dict:
    """Score pseudo-labels (VG format with ``confidence``) against true relations (VG format).

    Returns ``{"curve": [{"threshold", "precision", "recall", "pseudo_relations", "correct"}, ...],
    "num_true_relations", "num_images", "num_truth_images_not_labelled", "unknown_texts" {text: count},
    "at_threshold": row}`` with precision and recall as fractions (NaN precision when nothing is kept).
    Pseudo-labels of images without truth raise ValueError.
    """
    text_to_verbs: dict[str, set[str]] = {}
    for verb, texts in predicate_texts.items():
        for t in texts:
            text_to_verbs.setdefault(t, set()).add(verb)
    ignore = set(ignore)
    labelled = {e["image_id"] for e in pseudo}
    truth_ids = {e["image_id"] for e in truth}
    if labelled - truth_ids:
        extra = sorted(labelled - truth_ids, key=str)[:5]
        raise ValueError(f"pseudo-labels: {len(labelled - truth_ids)} image(s) have no true relations to compare "
                         f"with, e.g. image_id {extra}")
    true_by_image: dict = {}
    true_ids: dict = {}  # (image, sub box, obj box, verb) -> index
    for e in truth:
        if e["image_id"] not in labelled:
            continue
        rels = {}
        for s, o, r in _pairs(e, "truth"):
            if r["predicate"] in ignore:
                continue
            key = (e["image_id"], s, o, r["predicate"])
            true_ids.setdefault(key, len(true_ids))
            rels.setdefault((s, o), set()).add(r["predicate"])
        true_by_image[e["image_id"]] = rels
    # every pseudo relation: (confidence, index of the true relation it expresses or -1)
    conf, hit = [], []
    unknown: dict[str, int] = {}
    for e in pseudo:
        rels = true_by_image.get(e["image_id"], {})
        for s, o, r in _pairs(e, "pseudo-labels"):
            text = r["predicate"]
            verbs = text_to_verbs.get(text)
            if verbs is None:
                unknown[text] = unknown.get(text, 0) + 1
                verbs = set()
            match = sorted(verbs & rels.get((s, o), set()))
            conf.append(float(r.get("confidence", 1.0)))
            # a text that fits several true relations of the pair (e.g. "on") counts for the first one
            hit.append(true_ids[(e["image_id"], s, o, match[0])] if match else -1)
    conf_a, hit_a = np.asarray(conf, dtype=np.float64), np.asarray(hit, dtype=np.int64)
    n_true = len(true_ids)

    def row(t: float) -> dict:
        keep = conf_a >= t
        kept, correct = int(keep.sum()), int((keep & (hit_a >= 0)).sum())
        recalled = len(np.unique(hit_a[keep & (hit_a >= 0)]))
        return {
            "threshold": float(t),
            "pseudo_relations": kept,
            "correct": correct,
            "precision": correct / kept if kept else float("nan"),
            "recall": recalled / n_true if n_true else float("nan"),
        }

    out = {
        "curve": [row(t) for t in thresholds],
        "num_true_relations": n_true,
        "num_images": len(labelled),
        "num_truth_images_not_labelled": len(truth_ids - labelled),
        "num_pseudo_relations": len(conf),
        "unknown_texts": dict(sorted(unknown.items(), key=lambda kv: -kv[1])),
    }
    if at_threshold is not None:
        out["at_threshold"] = row(at_threshold)
    return out


def plot_quality_curve(result: dict, path: str, title: str = "pseudo-label quality") -> None:
    """Precision and recall against the confidence threshold (PNG at ``path``, written atomically)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..utils.file_io import atomic_open

    ts = [r["threshold"] for r in result["curve"]]
    fig, ax = plt.subplots(figsize=(5, 3.6), dpi=100)
    ax.plot(ts, [100 * r["precision"] for r in result["curve"]], "o-", label="precision", ms=3)
    ax.plot(ts, [100 * r["recall"] for r in result["curve"]], "s-", label="recall", ms=3)
    if "at_threshold" in result:
        ax.axvline(result["at_threshold"]["threshold"], color="grey", ls="--", lw=1, label="threshold used")
    ax.set_xlabel("confidence threshold")
    ax.set_ylabel("%")
    ax.set_ylim(0, 100)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    with atomic_open(path, "wb") as f:
        fig.savefig(f, format="png")
    plt.close(fig)


def format_quality(result: dict) -> str:
    lines = [f"{'threshold':>9}  {'kept':>6}  {'precision':>9}  {'recall':>6}"]
    for r in result["curve"]:
        lines.append(f"{r['threshold']:9.2f}  {r['pseudo_relations']:6d}  {100 * r['precision']:8.1f}%  "
                     f"{100 * r['recall']:5.1f}%")
    if "at_threshold" in result:
        r = result["at_threshold"]
        lines.append(f"at the threshold used ({r['threshold']:.2f}): precision {100 * r['precision']:.1f}%, "
                     f"recall {100 * r['recall']:.1f}% of {result['num_true_relations']} true relations "
                     f"({r['pseudo_relations']} pseudo relations)")
    return "\n".join(lines)


def main(argv=None) -> int:
    from ..utils.file_io import atomic_write_json, json_safe

    p = argparse.ArgumentParser(prog="python -m rlipv2.pseudo_labeling.quality", description=__doc__.split("\n\n")[0])
    p.add_argument("--pseudo-labels", required=True, help="pseudo_relations.json written by tools/pseudo_label.py")
    p.add_argument("--truth", required=True, help="VG-format JSON of the true relations of the same images")
    p.add_argument("--predicate-texts", required=True,
                   help="JSON {true relation: [texts that express it]}")
    p.add_argument("--threshold", type=float, default=0.2,
                   help="the confidence threshold pre-training applies (reported apart; default 0.2)")
    p.add_argument("--output-dir", default=None, help="write pseudo_label_quality.json and the curve PNG here")
    args = p.parse_args(argv)
    if not 0.0 <= args.threshold <= 1.0:
        p.error(f"--threshold must be in [0, 1], got {args.threshold}")
    try:
        data = []
        for flag, path in (("--pseudo-labels", args.pseudo_labels), ("--truth", args.truth),
                           ("--predicate-texts", args.predicate_texts)):
            try:
                with open(path, encoding="utf-8") as f:
                    data.append(json.load(f))
            except (OSError, json.JSONDecodeError) as e:
                raise ValueError(f"{flag} {path}: {e}") from None
        result = score_pseudo_labels(*data, at_threshold=args.threshold)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(format_quality(result))
    if args.output_dir:
        os.makedirs(args.output_dir, exist_ok=True)
        atomic_write_json(os.path.join(args.output_dir, "pseudo_label_quality.json"), json_safe(result))
        plot_quality_curve(result, os.path.join(args.output_dir, "pseudo_label_quality.png"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
