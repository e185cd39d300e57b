"""Stage 3: matching caption entities to detection categories and building candidate box pairs.

RLIPv2 (``transform_BLIP_sngs_to_verb_tagger_input_format`` with ``match_strategy='paraphrases'``):

1. **Entity matching.** An entity span matches a category present in the image if any human-written
   paraphrase of the category is a *substring* of the span ("skateboarder" in "a young skateboarder"
   matches "person"). The image's categories are tried in order of first appearance among its boxes and
   the *last* matching one wins (the official loop overwrites earlier matches).
2. **Triplet filter.** A parsed relation is kept only if its subject and object entities both match.
   Kept triplets ``(subject category, relation text, object category)`` are de-duplicated per image.
3. **Candidates.** Every ordered pair (i, j), i != j, of the image's boxes (``itertools.permutations``
   order) whose categories equal a kept triplet's becomes a candidate with that triplet's relation text;
   a pair appears once per matching triplet.
4. **Grouping.** Candidates are chunked into groups of 100 (half the tagger's 200 queries). Each group is
   ``[pairs, relation_texts]`` with the group's relation texts de-duplicated in order of appearance.

Paraphrase lists: ``coco`` (``hico_obj_paraphrase.json``, matched to the detection categories by name),
``o365`` (``o365_obj_paraphrase.json``, matched by *position*: the i-th category by id <-> the i-th key,
because 15 keys are spelling-corrected names) or a user's JSON ``{category name: [paraphrases]}``
(matched by name, case-insensitive, or by position with ``match_by="position"``).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from itertools import permutations
from typing import Sequence

from .io import IssueLog, read_json
from .parsing import CaptionGraph

__all__ = [
    "BUILTIN_PARAPHRASES",
    "GROUP_SIZE",
    "load_paraphrases",
    "CategoryVocabulary",
    "match_entity",
    "match_image_triplets",
    "build_candidate_pairs",
    "group_candidates",
]

GROUP_SIZE = 100
_METADATA_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data", "metadata")
BUILTIN_PARAPHRASES = {
    "coco": ("hico_obj_paraphrase.json", "name"),
    "o365": ("o365_obj_paraphrase.json", "position"),
}


def load_paraphrases(source: str) -> tuple[dict[str, list[str]], str]:
    """Load a paraphrase dict ``{category name: [paraphrase, ...]}`` (key order preserved).

    ``source`` is ``"coco"``, ``"o365"`` or a path to a JSON file. Returns the dict and the default
    way to match it to detection categories (``"name"`` or ``"position"``).
    """
    if source in BUILTIN_PARAPHRASES:
        fname, match_by = BUILTIN_PARAPHRASES[source]
        path = os.path.join(_METADATA_DIR, fname)
    else:
        path, match_by = source, "name"
    data = read_json(path, "paraphrase file")
    if not isinstance(data, dict):
        raise ValueError(f"{path}: a paraphrase file must be a JSON object {{category name: [paraphrases]}}")
    for k, v in data.items():
        if not isinstance(v, list) or not all(isinstance(p, str) and p for p in v):
            raise ValueError(f"{path}: paraphrases of '{k}' must be a list of non-empty strings")
    return data, match_by


def _norm(name: str) -> str:
    return " ".join(name.strip().lower().split())


@dataclass
class CategoryVocabulary:
    """The detection categories with their label texts and paraphrases.

    Attributes:
        category_ids: detection-file category ids, in the file's category order.
        names: label text of each category (the paraphrase file's key where one matched, else the
            lower-cased detection name). These are the object texts written to the pseudo-label file and
            given to the tagger.
        paraphrases: paraphrase list of each category.
        missing: indices of categories that had no paraphrase entry (their name is used as the only
            paraphrase; reported as ``category_without_paraphrase``).
    """

    category_ids: list
    names: list[str]
    paraphrases: list[list[str]]
    missing: list[int]

    @property
    def id_to_index(self) -> dict:
        return {cid: i for i, cid in enumerate(self.category_ids)}

    @classmethod
    def build(cls, categories: Sequence[dict], source: str = "coco", match_by: str | None = None) -> CategoryVocabulary:
        """Attach paraphrases to detection categories (``[{"id", "name"}]``).

        ``match_by="position"`` pairs the categories sorted by id with the paraphrase keys in file order
        and requires equal counts; ``"name"`` compares lower-cased, whitespace-normalised names.
        """
        para, default_by = load_paraphrases(source)
        match_by = match_by or default_by
        ids = [c["id"] for c in categories]
        det_names = [c["name"] for c in categories]
        names, paras, missing = [], [], []
        if match_by == "position":
            keys = list(para.keys())
            if len(keys) != len(categories):
                raise ValueError(
                    f"paraphrase source '{source}' has {len(keys)} categories but the detection file has "
                    f"{len(categories)}; position matching needs equal counts (use match_by='name')"
                )
            order = sorted(range(len(categories)), key=lambda i: ids[i])
            key_of = {ci: keys[pos] for pos, ci in enumerate(order)}
            for i in range(len(categories)):
                names.append(key_of[i])
                paras.append(list(para[key_of[i]]))
        elif match_by == "name":
            normed = {_norm(k): k for k in para}
            for i, n in enumerate(det_names):
                key = normed.get(_norm(n))
                if key is None:
                    names.append(_norm(n))
                    paras.append([_norm(n)])
                    missing.append(i)
                else:
                    names.append(key)
                    paras.append(list(para[key]))
        else:
            raise ValueError(f"match_by must be 'name' or 'position', got {match_by!r}")
        return cls(ids, names, paras, missing)

    def report_missing(self, issues: IssueLog, det_categories: Sequence[dict]) -> None:
        for i in self.missing:
            c = det_categories[i]
            issues.add(
                "category_without_paraphrase",
                f"category id {c['id']} '{c['name']}' (its lower-cased name is used as its only paraphrase)",
            )

    def to_json(self) -> dict:
        return {"category_ids": self.category_ids, "names": self.names, "paraphrases": self.paraphrases,
                "missing": self.missing}

    @classmethod
    def from_json(cls, d: dict) -> CategoryVocabulary:
        return cls(d["category_ids"], d["names"], d["paraphrases"], d["missing"])


def match_entity(span: str, candidates: Sequence[int], paraphrases: Sequence[Sequence[str]]) -> int | None:
    """Category index matched by entity ``span`` among ``candidates`` (the image's categories, in order).

    A category matches if any of its paraphrases is a substring of the span; the last matching
    candidate is returned (official semantics), None if none matches.
    """
    matched = None
    for c in candidates:
        if any(p in span for p in paraphrases[c]):
            matched = c
    return matched


def match_image_triplets(
    box_categories: Sequence[int], graphs: Sequence[CaptionGraph], vocab: CategoryVocabulary
) -> tuple[list[tuple[int, str, int]], dict]:
    """Kept triplets of one image: ``[(subject category index, relation text, object category index)]``.

    Args:
        box_categories: category index (into ``vocab``) of each box of the image.
        graphs: parsed captions of the image.
    Returns:
        the de-duplicated triplets in caption order, and counts
        ``{"parsed_relations", "kept_relations"}`` (before de-duplication).
    """
    candidates = list(dict.fromkeys(box_categories))  # unique, order of first appearance
    triplets: dict[tuple[int, str, int], None] = {}
    parsed = kept = 0
    for g in graphs:
        ent_cat = [match_entity(span, candidates, vocab.paraphrases) for span in g.entities]
        for s, o, rel in g.relations:
            parsed += 1
            cs, co = ent_cat[s], ent_cat[o]
            if cs is None or co is None:
                continue
            kept += 1
            triplets[(cs, rel, co)] = None
    return list(triplets), {"parsed_relations": parsed, "kept_relations": kept}


def build_candidate_pairs(
    box_categories: Sequence[int], triplets: Sequence[tuple[int, str, int]]
) -> tuple[list[list[int]], list[str]]:
    """Ordered candidate box pairs and their relation texts (one entry per pair x matching triplet)."""
    pairs, texts = [], []
    if not triplets:
        return pairs, texts
    by_cats: dict[tuple[int, int], list[str]] = {}
    for cs, rel, co in triplets:
        by_cats.setdefault((cs, co), []).append(rel)
    for i, j in permutations(range(len(box_categories)), 2):
        for rel in by_cats.get((box_categories[i], box_categories[j]), ()):
            pairs.append([i, j])
            texts.append(rel)
    return pairs, texts


def group_candidates(pairs: Sequence, texts: Sequence[str], group_size: int = GROUP_SIZE) -> list[list]:
    """Chunk candidates into groups ``[pairs, relation_texts]`` of at most ``group_size`` pairs.

    Each group's relation texts are the de-duplicated texts of its pairs (order of first appearance).
    No group is made when there are no candidates (the official code emits a trailing empty group, which
    produces no relation).
    """
    groups = []
    for start in range(0, len(pairs), group_size):
        g_pairs = [list(p) for p in pairs[start:start + group_size]]
        g_texts = list(dict.fromkeys(texts[start:start + group_size]))
        groups.append([g_pairs, g_texts])
    return groups


