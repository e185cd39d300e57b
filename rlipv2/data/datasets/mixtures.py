"""Pre-training mixtures: several relation datasets concatenated under one name and one vocabulary.

As the official ``ConcatDataset`` of ``datasets/mixed_dataset.py``, the vocabularies of the parts
are merged by name with their frequencies summed (``fuse_multi_keep_names_freq``), sorted by
frequency. Every record is re-indexed into the merged vocabulary, so free-form names survive the
mix, and images are sampled uniformly across all parts.
"""

from __future__ import annotations

import copy
import functools

from detectron2.data import DatasetCatalog, MetadataCatalog

from .common import LazyMetadata, new_metadata, register_lazy

_MIX_CACHE: dict[str, tuple[list[str], list[int], list[str], list[int]]] = {}


def _part_vocab(part: str) -> tuple[list[str], list[int], list[str], list[int]]:
    md = MetadataCatalog.get(part)
    objects, predicates = list(md.thing_classes), list(md.predicate_classes)
    ofreq = md.get("object_frequencies") or [0] * len(objects)
    pfreq = md.get("predicate_frequencies") or [0] * len(predicates)
    return objects, list(ofreq), predicates, list(pfreq)


def merge_vocabularies(vocabs: list[tuple[list[str], list[int], list[str], list[int]]]):
    """Merge (objects, object_freq, predicates, predicate_freq) tuples by name, summing counts.

    Returns the merged tuple sorted by frequency (ties in order of first appearance).
    """
    ofreq: dict[str, int] = {}
    pfreq: dict[str, int] = {}
    for objects, of, predicates, pf in vocabs:
        for n, c in zip(objects, of):
            ofreq[n] = ofreq.get(n, 0) + int(c)
        for n, c in zip(predicates, pf):
            pfreq[n] = pfreq.get(n, 0) + int(c)
    o = sorted(ofreq.items(), key=lambda kv: -kv[1])
    p = sorted(pfreq.items(), key=lambda kv: -kv[1])
    return [k for k, _ in o], [v for _, v in o], [k for k, _ in p], [v for _, v in p]


def balance_repeats(sizes: list[int]) -> list[int]:
    """Whole repeat counts that give each part about the same number of entries as the largest one."""
    biggest = max(sizes, default=0)
    return [max(1, round(biggest / n)) if n else 1 for n in sizes]


def _load_mixture(name: str, parts: tuple[str, ...], balanced: bool = False) -> list[dict]:
    all_parts = [(part, DatasetCatalog.get(part)) for part in parts]
    repeats = balance_repeats([len(d) for _, d in all_parts]) if balanced else [1] * len(parts)
    vocabs = [_part_vocab(p) for p, _ in all_parts]
    merged = merge_vocabularies(vocabs)
    _MIX_CACHE[name] = merged
    oidx = {n: i for i, n in enumerate(merged[0])}
    pidx = {n: i for i, n in enumerate(merged[2])}
    out = []
    for (part, dicts), (objects, _, predicates, _), repeat in zip(all_parts, vocabs, repeats):
        for d in [d for d in dicts for _ in range(repeat)] if repeat > 1 else dicts:
            d = copy.copy(d)
            d["annotations"] = [dict(a, category_id=oidx[objects[a["category_id"]]]) for a in d["annotations"]]
            d["relations"] = [dict(r, predicate=pidx[predicates[r["predicate"]]]) for r in d.get("relations", [])]
            d["source_dataset"] = part
            d["dataset_name"] = name
            out.append(d)
    return out


def _mix_field(name, parts, balanced, which):
    if name not in _MIX_CACHE:
        _load_mixture(name, parts, balanced)
    return _MIX_CACHE[name][which]


def register_mixture(name: str, parts: list[str], balanced: bool = False, **metadata) -> LazyMetadata:
    """Register ``name`` as the concatenation of the registered datasets ``parts`` (lazily).

    ``balanced``: repeat the entries of the smaller parts (whole numbers of times, :func:`balance_repeats`) so
    that every part is sampled about as often as the largest, whatever their sizes. The official mixtures are
    plain concatenations (False).
    """
    parts = tuple(parts)
    md = new_metadata(name)
    register_lazy(name, functools.partial(_load_mixture, name, parts, balanced))
    md.set_lazy(
        thing_classes=functools.partial(_mix_field, name, parts, balanced, 0),
        object_frequencies=functools.partial(_mix_field, name, parts, balanced, 1),
        predicate_classes=functools.partial(_mix_field, name, parts, balanced, 2),
        predicate_frequencies=functools.partial(_mix_field, name, parts, balanced, 3),
    )
    md.set(parts=list(parts), balanced=bool(balanced), evaluator_type=metadata.pop("evaluator_type", None))
    md.set(**metadata)
    return md
