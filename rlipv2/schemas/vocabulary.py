"""Vocabulary files: the label texts of object and predicate classes, and the ids a data file uses for them.

RLIPv2 classifies by the similarity with label *texts*, so a label must survive parsing whole:
``001 type on`` is the label "type on" (id 1), never "on". Accepted formats, for objects and predicates
alike:

* text, one class per line, ``NNN label words`` (the HICO-DET ``hico_verb_names.txt`` layout): the id
  is the leading integer, the label is the rest of the line;
* text, one class per line, ``label words`` (no ids): the classes are numbered from 1 in file order;
* JSON ``{"label": id, ...}`` (the HICO-DET ``hico_object_names.txt`` layout), in label order;
* JSON ``["label", ...]``: numbered from 1 in file order.

Underscores become spaces ("no_interaction" -> "no interaction"), runs of spaces become one. A file
mixing lines with and without ids, a repeated id or label, or an id outside [0, MAX_CLASS_ID] is refused
with the file and line named.

A :class:`Vocabulary` knows where it came from: loaders and ``python -m rlipv2.data.validate`` print
:meth:`Vocabulary.describe` (size and source) and refuse ids outside it (:meth:`Vocabulary.contiguous`).
"""
from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from .core import MAX_CLASS_ID, SchemaError

__all__ = ["Vocabulary", "normalize_label", "parse_label_lines", "read_vocabulary", "packaged_vocabulary",
           "METADATA_DIR"]

METADATA_DIR = Path(__file__).resolve().parent.parent / "data" / "metadata"
_INT = re.compile(r"^[+-]?\d+$")


def normalize_label(text: str) -> str:
    """"no_interaction" / " type   on " -> "no interaction" / "type on"."""
    return " ".join(text.replace("_", " ").split())


@dataclass(frozen=True)
class Vocabulary:
    """The classes of one kind ("object" or "predicate"): label texts in contiguous order, the id the
    data files use for each, and the source they came from (a file path or a description)."""

    kind: str
    names: tuple[str, ...]
    ids: tuple[int, ...]
    source: str

    def __post_init__(self):
        if len(self.names) != len(self.ids):
            raise ValueError(f"{self.source}: {len(self.names)} labels but {len(self.ids)} ids")

    def __len__(self) -> int:
        return len(self.names)

    @cached_property
    def id_to_contiguous(self) -> dict[int, int]:
        """{dataset id: contiguous 0-based class index}."""
        return {d: k for k, d in enumerate(self.ids)}

    def describe(self) -> str:
        """E.g. "117 predicate classes from rlipv2/data/metadata/hico_verb_names.txt (ids 1..117)"."""
        span = f"ids {min(self.ids)}..{max(self.ids)}" if self.ids else "empty"
        return f"{len(self)} {self.kind} classes from {self.source} ({span})"

    def contiguous(self, dataset_id, where: str) -> int:
        """The class index of ``dataset_id``; :class:`SchemaError` naming ``where`` when it is not a class."""
        k = self.id_to_contiguous.get(dataset_id) if isinstance(dataset_id, int) else None
        if k is None or isinstance(dataset_id, bool):
            raise SchemaError(f"{where}: {self.kind} id {dataset_id!r} is not in the vocabulary ({self.describe()})")
        return k

    @classmethod
    def from_names(cls, kind: str, names: Sequence[str], source: str, ids: Iterable[int] | None = None,
                   first_id: int = 0) -> Vocabulary:
        """A vocabulary from label texts (ids ``first_id``, ``first_id + 1``, ... unless given)."""
        names = tuple(str(n) for n in names)
        ids = tuple(ids) if ids is not None else tuple(range(first_id, first_id + len(names)))
        return cls(kind, names, ids, source)


def parse_label_lines(lines: Iterable[str], source: str, kind: str = "class") -> Vocabulary:
    """Parse text lines ``NNN label words`` or ``label words`` (see the module docstring)."""
    rows = []  # (line number, id or None, label)
    for lineno, raw in enumerate(lines, 1):
        parts = raw.split()
        if not parts:
            continue
        if len(parts) > 1 and _INT.match(parts[0]):
            rows.append((lineno, int(parts[0]), normalize_label(" ".join(parts[1:]))))
        else:
            rows.append((lineno, None, normalize_label(" ".join(parts))))
    with_ids = [r for r in rows if r[1] is not None]
    if with_ids and len(with_ids) != len(rows):
        lineno = next(r[0] for r in rows if r[1] is None)
        raise SchemaError(f"{source}: line {lineno}: no leading id, but other lines have one ('NNN label' on "
                          "every line, or on none)")
    ids = [r[1] for r in rows] if with_ids else list(range(1, len(rows) + 1))
    return _checked(kind, [r[2] for r in rows], ids, source, [r[0] for r in rows])


def _checked(kind, names, ids, source, linenos=None) -> Vocabulary:
    where = (lambda k: f"line {linenos[k]}") if linenos else (lambda k: f"entry {k}")
    seen_ids, seen_names = {}, {}
    for k, (name, i) in enumerate(zip(names, ids)):
        if not name:
            raise SchemaError(f"{source}: {where(k)}: empty label")
        if isinstance(i, bool) or not isinstance(i, int) or not 0 <= i <= MAX_CLASS_ID:
            raise SchemaError(f"{source}: {where(k)}: id {i!r} must be an integer in [0, {MAX_CLASS_ID}]")
        if i in seen_ids:
            raise SchemaError(f"{source}: {where(k)}: id {i} is also the id of {seen_ids[i]!r}")
        if name in seen_names:
            raise SchemaError(f"{source}: {where(k)}: label {name!r} appears twice")
        seen_ids[i], seen_names[name] = name, k
    return Vocabulary(kind, tuple(names), tuple(ids), source)


def read_vocabulary(path: str | os.PathLike, kind: str = "class") -> Vocabulary:
    """Read a vocabulary file in any format of the module docstring."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{kind} vocabulary file not found: {path}")
    with open(path, encoding="utf-8") as f:
        text = f.read()
    stripped = text.lstrip()
    if stripped.startswith(("{", "[")):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise SchemaError(f"{path}: malformed JSON: {e}") from None
        if isinstance(data, dict):
            names = list(data.keys())
            return _checked(kind, [normalize_label(n) for n in names], list(data.values()), path)
        if isinstance(data, list):
            if not all(isinstance(n, str) for n in data):
                k = next(k for k, n in enumerate(data) if not isinstance(n, str))
                raise SchemaError(f"{path}: entry {k}: a label must be a string, got {data[k]!r}")
            return _checked(kind, [normalize_label(n) for n in data], list(range(1, len(data) + 1)), path)
        raise SchemaError(f"{path}: expected a JSON {{label: id}} object or a list of labels")
    return parse_label_lines(text.splitlines(), path, kind)


def _rel(path: Path) -> str:
    return f"packaged {path.relative_to(METADATA_DIR.parent.parent.parent)}"


def packaged_vocabulary(name: str) -> Vocabulary:
    """The packaged vocabularies: "hico_objects" (80, COCO-91 ids), "hico_verbs" (117, ids 1..117),
    "vcoco_objects" (81: COCO's 80 + "missing objects"), "vcoco_verbs" (29, ids 0..28)."""
    if name == "hico_objects":
        v = read_vocabulary(METADATA_DIR / "hico_object_names.txt", "object")
        return Vocabulary("object", v.names, v.ids, _rel(METADATA_DIR / "hico_object_names.txt"))
    if name == "hico_verbs":
        v = read_vocabulary(METADATA_DIR / "hico_verb_names.txt", "predicate")
        return Vocabulary("predicate", v.names, v.ids, _rel(METADATA_DIR / "hico_verb_names.txt"))
    if name in ("vcoco_objects", "vcoco_verbs"):
        path = METADATA_DIR / "vcoco_names_v3.json"
        with open(path, encoding="utf-8") as f:
            d = json.load(f)
        if name == "vcoco_objects":
            coco = packaged_vocabulary("hico_objects").ids  # the 80 COCO-91 ids, in COCO order
            # the 81st text, "missing objects", has no id in the files (their relations say object_id -1)
            return Vocabulary("object", tuple(d["object_names"]), tuple(coco) + (-1,), _rel(path))
        return Vocabulary.from_names("predicate", d["verb_names"], _rel(path), first_id=0)
    raise KeyError(f"unknown packaged vocabulary {name!r}")

