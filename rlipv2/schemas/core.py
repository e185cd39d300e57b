"""Building blocks shared by every file schema: the problem record, the error, typed fields, and the
engine that validates a list of records and reports each problem with its file, record and field.

A schema is a pydantic v2 type for one record (types, ranges, missing fields) plus plain-Python
*cross-field checks* (an index inside the box list, an id inside the vocabulary) and *file checks*
(uniqueness). :func:`validate_records` runs all three and returns the records that passed and one
:class:`Problem` per violation. Callers decide the policy: raise on the first problem (CLIs, evaluators),
drop the record (training with ``skip_bad_records``), or report them all (the validator).

Nothing here imports torch or detectron2: the evaluation CLIs and the pseudo-labelling readers use it too.
"""
from __future__ import annotations

import contextlib
import gc
import math
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any

from pydantic import Field, PlainValidator, Strict, TypeAdapter, ValidationError
from pydantic_core import PydanticCustomError

__all__ = [
    "Problem",
    "SchemaError",
    "MAX_CLASS_ID",
    "Id",
    "ClassId",
    "Index",
    "PositiveInt",
    "ZeroOrOne",
    "Confidence",
    "FiniteFloat",
    "BoxXYXY",
    "ImagePath",
    "RecordSchema",
    "ValidationResult",
    "validate_records",
    "raise_first",
    "field_path",
    "check_box_xyxy",
    "check_image_path",
    "path_escapes_root",
    "box_outside_image",
    "short_repr",
    "gc_paused",
]

#: Largest class id a file may use. Sizes of id tables and score matrices are derived from ids, so an id
#: is bounded before any allocation (Open Images has 601 object classes, Objects365 365, VG 150/1600).
MAX_CLASS_ID = 65_535


# ------------------------------------------------------------------------------------------ problems
@dataclass(frozen=True)
class Problem:
    """One problem found in a file: where it is and what is wrong.

    ``kind`` is a short category used to count problems (e.g. ``"box_outside_image"``); ``image`` is
    whatever identifies the record best (its index, file name or id).
    """

    kind: str
    file: str
    image: Any
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}: image {self.image!r}: field '{self.field}': {self.message}"


class SchemaError(ValueError):
    """A file broke a rule of its schema. The message names the file, the record and the field."""

    def __init__(self, problem: Problem | str):
        super().__init__(str(problem))
        self.problem = problem if isinstance(problem, Problem) else None


def raise_first(problems: Sequence[Problem], error: type[Exception] = SchemaError) -> None:
    """Raise ``error(problems[0])`` when there is any problem."""
    if problems:
        raise error(problems[0])


def short_repr(value: Any, limit: int = 80) -> str:
    """``repr(value)``, cut to ``limit`` characters so that one error stays one line."""
    r = repr(value)
    return r if len(r) <= limit else r[: limit - 3] + "..."


# ------------------------------------------------------------------------------------- typed fields
#: Problem kinds raised by this package's validators (anything else from pydantic is "malformed_record").
CUSTOM_KINDS = {"malformed_box", "inverted_box", "malformed_record", "path_outside_root", "unknown_category",
                "relation_index_out_of_range", "out_of_range", "duplicate_record"}


def custom_error(kind: str, message: str) -> PydanticCustomError:
    CUSTOM_KINDS.add(kind)
    # braces in user data must not be read as pydantic message placeholders
    return PydanticCustomError(kind, message.replace("{", "{{").replace("}", "}}"))


def check_box_xyxy(value: Any) -> list[float]:
    """Four finite numbers ``[x1, y1, x2, y2]`` with x1 <= x2 and y1 <= y2 (pydantic validator)."""
    if type(value) not in (list, tuple) or len(value) != 4 or not all(type(v) in _NUMBER for v in value):
        raise custom_error("malformed_box", f"expected 4 numbers [x1, y1, x2, y2], got {short_repr(value)}")
    try:
        x1, y1, x2, y2 = float(value[0]), float(value[1]), float(value[2]), float(value[3])
    except OverflowError:  # an integer beyond the float range
        raise custom_error("malformed_box", f"box has non-finite values {short_repr(value)}") from None
    if not (_isfinite(x1) and _isfinite(y1) and _isfinite(x2) and _isfinite(y2)):
        raise custom_error("malformed_box", f"box has non-finite values {short_repr(value)}")
    if x2 < x1 or y2 < y1:
        raise custom_error("inverted_box", f"box {short_repr(value)} has x2 < x1 or y2 < y1")
    return [x1, y1, x2, y2]


_NUMBER = (int, float)  # exact types: bool (a subclass of int) is not a coordinate
_isfinite = math.isfinite


def path_escapes_root(path: str) -> bool:
    """True for a path that is absolute (POSIX, UNC or a drive letter) or has a ``..`` component."""
    return (path.startswith(("/", "\\")) or os.path.isabs(path) or (len(path) > 1 and path[1] == ":")
            or (".." in path and ".." in path.replace("\\", "/").split("/")))


def check_image_path(value: Any, info) -> str:
    """A relative path that stays under its image root (no absolute path, no ``..``), unless the
    validation context has ``allow_outside_root=True``."""
    if not isinstance(value, str) or not value:
        raise custom_error("malformed_record", f"must be a non-empty string, got {short_repr(value)}")
    ctx = info.context or {}
    if not ctx.get("allow_outside_root", False) and path_escapes_root(value):
        raise custom_error(
            "path_outside_root",
            f"image path {value!r} escapes the image root (absolute or '..'); "
            "allow it explicitly with allow_outside_root=True (--allow-outside-root)",
        )
    return value


#: An integer id: JSON integers only (0.9 or true are refused, never truncated).
Id = Annotated[int, Strict()]
#: A class id, an integer in [0, MAX_CLASS_ID].
ClassId = Annotated[int, Strict(), Field(ge=0, le=MAX_CLASS_ID)]
#: An index into a list (-1 allowed where the schema says so: checked by the cross-field rules).
Index = Annotated[int, Strict()]
def check_positive_int(value: Any) -> int:
    """A positive integer (an image side): 480 or 480.0, not 480.5, "480" or true (pydantic validator)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or value != int(value) or value <= 0:
        raise custom_error("malformed_record", f"must be a positive integer, got {short_repr(value)}")
    return int(value)


#: A positive integer (an image side); 480.0 is accepted, 480.5 and "480" are not.
PositiveInt = Annotated[Any, PlainValidator(check_positive_int)]


def check_zero_or_one(value: Any) -> int:
    """A 0/1 flag (COCO ``iscrowd``, ``ignore``): 0, 1, false or true (pydantic validator)."""
    if value in (0, 1) and not isinstance(value, float):
        return int(value)
    raise custom_error("malformed_record", f"must be 0 or 1, got {short_repr(value)}")


#: A 0/1 flag.
ZeroOrOne = Annotated[Any, PlainValidator(check_zero_or_one)]
#: A finite number (a JSON number: "3" or true are refused).
FiniteFloat = Annotated[float, Strict(), Field(allow_inf_nan=False)]
#: A confidence or score: a finite number in [0, 1].
Confidence = Annotated[float, Strict(), Field(ge=0.0, le=1.0, allow_inf_nan=False)]
#: An absolute box [x1, y1, x2, y2]: finite, ordered.
BoxXYXY = Annotated[list, PlainValidator(check_box_xyxy)]
#: An image path relative to its image root.
ImagePath = Annotated[str, PlainValidator(check_image_path)]


def box_outside_image(box: Sequence[float], width: float, height: float) -> bool:
    """True when an XYXY box overshoots the image by more than max(2 px, 1 % of the side).

    Official files have a few boxes that overshoot by a pixel; loaders clamp those.
    """
    tx, ty = max(2.0, 0.01 * width), max(2.0, 0.01 * height)
    x1, y1, x2, y2 = box
    return x1 < -tx or y1 < -ty or x2 > width + tx or y2 > height + ty


# ------------------------------------------------------------------------------------------ engine
def field_path(loc: Iterable[Any]) -> str:
    """('annotations', 1, 'bbox') -> 'annotations[1].bbox'."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "<entry>"


# pydantic's own error types -> problem kinds (the custom kinds raised by the validators here pass through)
_PYDANTIC_KINDS = {"finite_number": "non_finite_value", "greater_than": "out_of_range",
                   "greater_than_equal": "out_of_range", "less_than": "out_of_range",
                   "less_than_equal": "out_of_range"}
_MESSAGES = {
    "missing": "missing required field",
    "int_type": "must be an integer (a JSON number without a fraction), got {input}",
    "int_parsing": "must be an integer, got {input}",
    "int_from_float": "must be an integer, got {input}",
    "float_type": "must be a number, got {input}",
    "float_parsing": "must be a number, got {input}",
    "finite_number": "must be a finite number, got {input}",
    "string_type": "must be a string, got {input}",
    "list_type": "must be a list, got {input}",
    "dict_type": "must be an object, got {input}",
    "model_type": "must be an object, got {input}",
    "typed_dict_type": "must be an object, got {input}",
    "bool_type": "must be true or false, got {input}",
}


def _problem_from_error(err: dict, file: str, image: Any) -> Problem:
    typ = err["type"]
    if typ in _MESSAGES:
        msg = _MESSAGES[typ].format(input=short_repr(err.get("input")))
    elif typ in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        msg = f"{err['msg'][0].lower()}{err['msg'][1:]}, got {short_repr(err.get('input'))}"
    else:
        msg = err["msg"]
    kind = typ if typ in CUSTOM_KINDS else _PYDANTIC_KINDS.get(typ, "malformed_record")
    return Problem(kind, file, image, field_path(err["loc"]), msg)


#: A cross-field check: (record, context) -> yields (kind, field, message) per problem.
CrossCheck = Callable[[dict, dict], Iterator[tuple[str, str, str]]]


@dataclass
class RecordSchema:
    """The rules of one file format whose content is a list of records.

    Args:
        name: the format, for messages ("HICO-DET JSON").
        record_type: the pydantic type of one record (a TypedDict).
        checks: cross-field checks run on each record that passed ``record_type``.
        record_label: (index, raw record) -> what identifies the record in messages.
        unique: a record field that must be unique in the file (e.g. "file_name"), or None.
    """

    name: str
    record_type: Any
    checks: Sequence[CrossCheck] = ()
    record_label: Callable[[int, Any], Any] = lambda i, r: i
    unique: str | None = None
    _one: TypeAdapter = field(init=False, repr=False)
    _many: TypeAdapter = field(init=False, repr=False)

    def __post_init__(self):
        self._one = TypeAdapter(self.record_type)
        self._many = TypeAdapter(list[self.record_type])

    def validate(self, entries: Any, file: str, context: dict | None = None) -> ValidationResult:
        return validate_records(self, entries, file, context)


@dataclass
class ValidationResult:
    """Records that passed every rule (``(index in the file, validated record)``) and the problems."""

    records: list[tuple[int, dict]]
    problems: list[Problem]
    bad: set[int]

    def raise_first(self, error: type[Exception] = SchemaError) -> None:
        raise_first(self.problems, error)


def validate_records(schema: RecordSchema, entries: Any, file: str, context: dict | None = None) -> ValidationResult:
    """Validate a list of records against ``schema``; see :class:`RecordSchema`.

    The whole list goes through pydantic in one call (fast path); only when that fails is each record
    validated on its own, so that the good ones are kept and every bad one is reported. The garbage
    collector is paused meanwhile: validation allocates millions of small objects and nothing cyclic, and
    full collections over a 40k-image file otherwise cost as much as the validation itself.
    """
    with gc_paused():
        return _validate_records(schema, entries, file, context)


@contextlib.contextmanager
def gc_paused():
    """Pause the garbage collector (reading or validating a big file creates millions of acyclic objects)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _validate_records(schema: RecordSchema, entries: Any, file: str, context: dict | None) -> ValidationResult:
    file = str(file)
    ctx = dict(context or {})
    if not isinstance(entries, list):
        p = Problem("malformed_json", file, None, "<file>",
                    f"expected a JSON list of {schema.name} records, got {type(entries).__name__}")
        return ValidationResult([], [p], set())
    found: list[tuple[int, Problem]] = []  # (record index, problem): sorted into file order at the end
    try:
        pairs = list(enumerate(schema._many.validate_python(entries, context=ctx)))
    except ValidationError:
        pairs = []
        for i, raw in enumerate(entries):
            try:
                pairs.append((i, schema._one.validate_python(raw, context=ctx)))
            except ValidationError as e:
                label = schema.record_label(i, raw)
                found.extend((i, _problem_from_error(err, file, label)) for err in e.errors(include_url=False))
    bad = set(range(len(entries))) - {i for i, _ in pairs}
    good = []
    for i, rec in pairs:
        errs = [(k, f, m) for check in schema.checks for k, f, m in check(rec, ctx)]
        if errs:
            label = schema.record_label(i, entries[i])
            found.extend((i, Problem(k, file, label, f, m)) for k, f, m in errs)
            bad.add(i)
        else:
            good.append((i, rec))
    if schema.unique is not None:
        seen: dict[Any, int] = {}
        keep = []
        for i, rec in good:
            key = rec.get(schema.unique)
            if key in seen:
                found.append((i, Problem("duplicate_record", file, schema.record_label(i, entries[i]), schema.unique,
                                         f"{schema.unique} {key!r} is also record {seen[key]}'s")))
                bad.add(i)
            else:
                seen[key] = i
                keep.append((i, rec))
        good = keep
    found.sort(key=lambda t: t[0])
    problems = [p for _, p in found]
    return ValidationResult(good, problems, bad)
