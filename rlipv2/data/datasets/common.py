"""Shared pieces of the relation-dataset loaders: errors that name the file, image and field, the
policy for bad records, lazily computed metadata, and readers for the packaged label files.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import os
from collections.abc import Callable, Iterator
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.data.catalog import Metadata

from ...schemas.core import Problem, SchemaError, box_outside_image, gc_paused
from ...schemas.vocabulary import read_vocabulary

logger = logging.getLogger(__name__)

METADATA_DIR = Path(__file__).resolve().parent.parent / "metadata"

# The 80 COCO category ids (COCO-91 numbering) in COCO order; HICO-DET and V-COCO files use them.
COCO80_IDS = (
    1,
    2,
    3,
    4,
    5,
    6,
    7,
    8,
    9,
    10,
    11,
    13,
    14,
    15,
    16,
    17,
    18,
    19,
    20,
    21,
    22,
    23,
    24,
    25,
    27,
    28,
    31,
    32,
    33,
    34,
    35,
    36,
    37,
    38,
    39,
    40,
    41,
    42,
    43,
    44,
    46,
    47,
    48,
    49,
    50,
    51,
    52,
    53,
    54,
    55,
    56,
    57,
    58,
    59,
    60,
    61,
    62,
    63,
    64,
    65,
    67,
    70,
    72,
    73,
    74,
    75,
    76,
    77,
    78,
    79,
    80,
    81,
    82,
    84,
    85,
    86,
    87,
    88,
    89,
    90,
)


def datasets_root() -> str:
    """Root of all datasets: ``$DETECTRON2_DATASETS``, default ``./datasets``."""
    return os.path.expanduser(os.getenv("DETECTRON2_DATASETS", "datasets"))


# ----------------------------------------------------------------------------------------------
# Errors
# ----------------------------------------------------------------------------------------------
class RelationDataError(SchemaError):
    """A bad annotation or image. The message names the file, the image and the field."""

    def __init__(self, problem: Problem):
        super().__init__(problem)


class MissingDatasetFileError(FileNotFoundError):
    """A dataset file is not on disk. The message says what to download and where to put it."""

    def __init__(self, path: str | os.PathLike, what: str = ""):
        msg = f"Dataset file not found: {path}."
        if what:
            msg += f" {what}"
        msg += " See datasets/README.md for the expected layout under $DETECTRON2_DATASETS."
        super().__init__(msg)
        self.path = str(path)


def require_file(path: str | os.PathLike, what: str = "") -> str:
    """Return ``path`` as a string, raising :class:`MissingDatasetFileError` if it does not exist."""
    if not os.path.exists(path):
        raise MissingDatasetFileError(path, what)
    return str(path)


def load_json(path: str | os.PathLike, what: str = "") -> Any:
    """Read a JSON file; a missing file or malformed JSON gives an error naming the file."""
    require_file(path, what)
    try:
        with open(path, encoding="utf-8") as f, gc_paused():
            return json.load(f)
    except json.JSONDecodeError as e:
        raise RelationDataError(Problem("malformed_json", str(path), None, "<file>", f"malformed JSON: {e}")) from e


# ----------------------------------------------------------------------------------------------
# Bad-record policy (raise by default; the training loader may skip with a logged warning)
# ----------------------------------------------------------------------------------------------
_SKIP_BAD = contextvars.ContextVar("rlipv2_skip_bad_records", default=None)
_COLLECT = contextvars.ContextVar("rlipv2_collect_problems", default=None)


def skip_bad_records_enabled() -> bool:
    """Whether loaders skip bad records (with a warning) instead of raising.

    Set by :func:`skip_bad_records` (a context manager) or the ``RLIPV2_SKIP_BAD_RECORDS=1``
    environment variable.
    """
    v = _SKIP_BAD.get()
    if v is not None:
        return v
    return os.getenv("RLIPV2_SKIP_BAD_RECORDS", "0").lower() in ("1", "true", "yes")


@contextlib.contextmanager
def skip_bad_records(enabled: bool = True) -> Iterator[None]:
    """Context manager: loaders called inside skip bad records with a warning instead of failing."""
    tok = _SKIP_BAD.set(enabled)
    try:
        yield
    finally:
        _SKIP_BAD.reset(tok)


class ProblemSink:
    """Collects problems while a file is parsed.

    In ``"raise"`` mode the first problem raises :class:`RelationDataError`; in ``"skip"`` mode
    problems are logged and the record is dropped; in ``"collect"`` mode (validation) every
    problem is kept.

    ``tolerate`` lists problem kinds that the official loaders pass over silently in the official
    files (e.g. HICO-DET training images with a relation index out of range are dropped, VG boxes
    overshooting the image are clamped): outside validation they are handled that way, counted
    and summarised in one warning (:meth:`warn_tolerated`), instead of raising.
    """

    def __init__(self, mode: str = "raise", tolerate: tuple[str, ...] | set[str] = ()):
        assert mode in ("raise", "skip", "collect"), mode
        self.mode = mode
        self.problems: list[Problem] = []
        self.tolerate = set(tolerate)
        self.tolerated: dict[str, int] = {}

    def tolerates(self, kind: str) -> bool:
        return self.mode != "collect" and kind in self.tolerate

    def note_tolerated(self, kind: str) -> None:
        self.tolerated[kind] = self.tolerated.get(kind, 0) + 1

    def warn_tolerated(self, file: str) -> None:
        if self.tolerated:
            logger.warning(
                "%s: passed over as the official loader does: %s",
                file,
                ", ".join(f"{k}: {v}" for k, v in sorted(self.tolerated.items())),
            )

    @classmethod
    def default(cls, tolerate: tuple[str, ...] = ()) -> ProblemSink:
        collecting = _COLLECT.get()
        if collecting is not None:
            return collecting
        return cls("skip" if skip_bad_records_enabled() else "raise", tolerate)

    def add(self, problem: Problem) -> None:
        if self.tolerates(problem.kind):  # the record is dropped, quietly
            self.note_tolerated(problem.kind)
            self.problems.append(problem)
            return
        if self.mode == "raise":
            raise RelationDataError(problem)
        self.problems.append(problem)
        if self.mode == "skip":
            logger.warning("Skipping bad record: %s", problem)

    def summary(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for p in self.problems:
            counts[p.kind] = counts.get(p.kind, 0) + 1
        return counts


@contextlib.contextmanager
def collect_problems() -> Iterator[ProblemSink]:
    """Context manager: loaders called inside report every problem into the yielded sink
    (and drop the bad records) instead of raising; used by ``python -m rlipv2.data.validate``."""
    sink = ProblemSink("collect")
    tok = _COLLECT.set(sink)
    try:
        yield sink
    finally:
        _COLLECT.reset(tok)


def check_box(
    box: Any, width: int | None, height: int | None, where: tuple[str, Any, str], sink: ProblemSink
) -> list[float] | None:
    """Validate one XYXY box; returns it clamped to the image, or None after reporting a problem.

    Overshoots of at most max(2 px, 1% of the side) are clamped silently (official files have a
    few); larger ones, x2 < x1 / y2 < y1, or non-numbers are reported.
    """
    file, image, field = where
    try:
        x1, y1, x2, y2 = (float(v) for v in box)
    except (TypeError, ValueError, OverflowError):
        sink.add(Problem("malformed_box", file, image, field, f"expected 4 numbers [x1, y1, x2, y2], got {box!r}"))
        return None
    if not all(np.isfinite([x1, y1, x2, y2])):
        sink.add(Problem("malformed_box", file, image, field, f"box has non-finite values {box!r}"))
        return None
    if x2 < x1 or y2 < y1:
        sink.add(Problem("inverted_box", file, image, field, f"box {box!r} has x2 < x1 or y2 < y1"))
        return None
    if width is not None and height is not None:
        outside = box_outside_image((x1, y1, x2, y2), width, height)
        if outside and sink.tolerates("box_outside_image"):
            sink.note_tolerated("box_outside_image")  # clamped below, as the official loader does
        elif outside:
            sink.add(
                Problem("box_outside_image", file, image, field, f"box {box!r} lies outside the {width}x{height} image")
            )
            return None
        x1, x2 = min(max(x1, 0.0), width), min(max(x2, 0.0), width)
        y1, y2 = min(max(y1, 0.0), height), min(max(y2, 0.0), height)
    return [x1, y1, x2, y2]


# ----------------------------------------------------------------------------------------------
# Lazily computed metadata
# ----------------------------------------------------------------------------------------------
class LazyMetadata(Metadata):
    """A Detectron2 ``Metadata`` whose listed fields are computed on first access.

    Used for fields that need the annotation files (free-form vocabularies, rare triplets from
    training counts, correct-mats on disk), so that registration reads nothing.
    """

    def __getattr__(self, key):
        lazy = self.__dict__.get("_lazy_fields")
        if lazy and key in lazy:
            value = lazy[key]()
            lazy.pop(key, None)
            # (set directly: Metadata.__setattr__ would call getattr again)
            self.__dict__.setdefault(key, value)
            return self.__dict__[key]
        return super().__getattr__(key)

    def set_lazy(self, **fields: Callable[[], Any]) -> LazyMetadata:
        lazy = self.__dict__.setdefault("_lazy_fields", {})
        lazy.update(fields)
        return self

    def as_dict(self):
        d = {k: v for k, v in self.__dict__.items() if k != "_lazy_fields"}
        return d


def new_metadata(name: str) -> LazyMetadata:
    """Create (replacing any previous one) the metadata of ``name`` as a :class:`LazyMetadata`."""
    if name in MetadataCatalog:
        MetadataCatalog.pop(name)
    md = LazyMetadata(name=name)
    MetadataCatalog[name] = md
    return md


def register_lazy(name: str, loader: Callable[[], list[dict]]) -> None:
    """Register ``loader`` under ``name`` in the DatasetCatalog, replacing any previous entry."""
    if name in DatasetCatalog:
        DatasetCatalog.remove(name)
    DatasetCatalog.register(name, loader)


# ----------------------------------------------------------------------------------------------
# Packaged label files
# ----------------------------------------------------------------------------------------------
def read_verb_list(path: str | os.PathLike) -> list[str]:
    """Label texts, in file order, of a vocabulary file (``NNN  label words`` lines, see
    :mod:`rlipv2.schemas.vocabulary`): multi-word labels stay whole, underscores become spaces."""
    require_file(path)
    return list(read_vocabulary(path, "predicate").names)


def read_object_dict(path: str | os.PathLike) -> tuple[list[str], list[int]]:
    """(label texts, dataset ids) of an object vocabulary file (a JSON ``{label: id}`` dict in label order,
    or any other format of :mod:`rlipv2.schemas.vocabulary`)."""
    require_file(path)
    v = read_vocabulary(path, "object")
    return list(v.names), list(v.ids)


@cache
def hico_object_classes() -> tuple[list[str], list[int]]:
    """The 80 HICO-DET/COCO object texts and their COCO-91 ids, in label order."""
    return read_object_dict(METADATA_DIR / "hico_object_names.txt")


@cache
def hico_verb_classes() -> list[str]:
    """The 117 HICO-DET verb texts (underscores turned into spaces), in id order (file id - 1)."""
    return read_verb_list(METADATA_DIR / "hico_verb_names.txt")


@cache
def hico_correct_mat() -> np.ndarray:
    """[117 verbs, 80 objects] validity mask of HICO-DET (1 = one of the 600 HOI classes)."""
    return np.load(METADATA_DIR / "corre_hico.npy")


@cache
def hico_hoi_list() -> list[tuple[int, int]]:
    """The 600 HICO-DET HOI classes in standard order, as (verb, object) contiguous ids."""
    objects = hico_object_classes()[0]
    verbs_raw = []
    with open(METADATA_DIR / "hico_verb_names.txt", encoding="utf-8") as f:
        verbs_raw = [ln.split()[-1] for ln in f if ln.strip()]
    out = []
    with open(METADATA_DIR / "hico_verb_obj_pair.txt", encoding="utf-8") as f:
        for ln in f:
            parts = ln.split()
            if len(parts) < 3:
                continue
            obj = parts[1].replace("_", " ")
            out.append((verbs_raw.index(parts[2]), objects.index(obj)))
    assert len(out) == 600
    return out


@cache
def hico_zero_shot_settings() -> dict[str, list[int]]:
    """Unseen 0-based HOI ids per zero-shot setting ("UC-RF", "UC-NF", "UO", "UV")."""
    d = load_json(METADATA_DIR / "hico_zero_shot_unseen.json")
    return {k: list(v["unseen_hoi_ids"]) for k, v in d["settings"].items()}


def hico_zero_shot_triplets(setting: str) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """(unseen, seen) lists of (verb, object) contiguous ids for a HICO-DET zero-shot setting."""
    hois = hico_hoi_list()
    unseen_ids = hico_zero_shot_settings()[setting]
    unseen_set = set(unseen_ids)
    return [hois[i] for i in unseen_ids], [hois[i] for i in range(len(hois)) if i not in unseen_set]


@cache
def hico_standard_rare_triplets() -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """The standard 138 rare / 462 non-rare HICO-DET triplets as (verb, object) contiguous ids."""
    d = load_json(METADATA_DIR / "hico_rare_hois.json")
    hois = hico_hoi_list()
    return [hois[i] for i in d["rare"]], [hois[i] for i in d["non_rare"]]


@cache
def vcoco_classes() -> tuple[list[str], list[str]]:
    """V-COCO label texts: 81 objects (80 COCO + "missing objects") and 29 verbs."""
    d = load_json(METADATA_DIR / "vcoco_names_v3.json")
    return list(d["object_names"]), list(d["verb_names"])


def rare_triplets_from_counts(
    dicts: list[dict], num_predicates: int | None = None, threshold: int = 10
) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """Rare (< ``threshold`` training instances) and non-rare (predicate, object) triplets.

    Counts every relation of the training dicts once (as the official ``set_rare_hois``).
    Relations without an object (V-COCO's -1) are counted with object -1.
    """
    counts: dict[tuple[int, int], int] = {}
    for d in dicts:
        anns = d["annotations"]
        for r in d.get("relations", []):
            o = r["object"]
            key = (int(r["predicate"]), int(anns[o]["category_id"]) if o >= 0 else -1)
            counts[key] = counts.get(key, 0) + 1
    rare = sorted(k for k, c in counts.items() if c < threshold)
    non_rare = sorted(k for k, c in counts.items() if c >= threshold)
    return rare, non_rare
