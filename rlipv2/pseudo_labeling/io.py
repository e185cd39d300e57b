"""File plumbing of the pseudo-labelling pipeline: atomic JSON writes, shard files and issue logs.

Every stage writes one JSON file per shard, ``<output_dir>/<stage>/shard_00012.json``::

    {"meta": {"stage": "parse", "shard": 12, "num_images": 1000, "complete": true,
              "issues": {"empty_caption": 3}, "issue_examples": {"empty_caption": ["image 42, caption 7"]},
              "stats": {...}},
     "data": {...}}

Files are written to a temporary file in the same directory and moved into place with ``os.replace``,
so a shard file either exists complete or not at all: a re-run skips every shard whose file exists and
says ``complete``.
"""
from __future__ import annotations

import json
import os
from collections import Counter
from typing import Any, Iterable

from rlipv2.utils import file_io

__all__ = [
    "atomic_write_json",
    "read_json",
    "shard_path",
    "read_shard",
    "is_shard_complete",
    "IssueLog",
]


def atomic_write_json(path: str, obj: Any, indent: int | None = None) -> None:
    """Write ``obj`` as standard JSON to ``path`` atomically (:func:`rlipv2.utils.file_io.atomic_write_json`):
    NaN or inf raise ``ValueError`` instead of writing a file other readers reject."""
    file_io.atomic_write_json(path, obj, indent=indent, ensure_ascii=False)


def read_json(path: str, what: str = "JSON file") -> Any:
    """Read a JSON file, turning a missing file or bad JSON into an error that names the file."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{what} not found: {path}")
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        raise ValueError(f"{what} {path} is not valid JSON: {e}") from e


def shard_path(output_dir: str, stage: str, shard: int) -> str:
    """Path of the file of shard ``shard`` of stage ``stage``."""
    return os.path.join(output_dir, stage, f"shard_{shard:05d}.json")


def read_shard(output_dir: str, stage: str, shard: int, expect: dict | None = None) -> dict:
    """Read a complete shard file; raise a clear error if it is missing, incomplete, or its ``meta``
    differs from ``expect`` (e.g. ``{"num_images": 1000, "images_crc": ...}``: made from another index)."""
    path = shard_path(output_dir, stage, shard)
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"shard {shard} of stage '{stage}' is missing ({path}); run the '{stage}' stage first"
        )
    content = read_json(path, f"shard file of stage '{stage}'")
    if not is_shard_content_complete(content):
        raise ValueError(f"shard file {path} is incomplete (meta.complete is not true); re-run stage '{stage}'")
    for key, value in (expect or {}).items():
        if content["meta"].get(key) != value:
            raise ValueError(
                f"shard file {path} has meta.{key} = {content['meta'].get(key)!r}, expected {value!r}: it was made "
                f"from another index; re-run stage '{stage}' with --overwrite"
            )
    return content


def is_shard_content_complete(content: Any, expect: dict | None = None) -> bool:
    """True for a parsed shard file marked complete whose ``meta`` agrees with ``expect``."""
    if not isinstance(content, dict) or not isinstance(content.get("meta"), dict) or "data" not in content:
        return False
    meta = content["meta"]
    if meta.get("complete") is not True:
        return False
    return all(meta.get(k) == v for k, v in (expect or {}).items())


def is_shard_complete(output_dir: str, stage: str, shard: int, expect: dict | None = None) -> bool:
    """True if the shard file exists, parses, is marked complete and its ``meta`` agrees with ``expect``."""
    path = shard_path(output_dir, stage, shard)
    if not os.path.isfile(path):
        return False
    try:
        with open(path, encoding="utf-8") as f:
            content = json.load(f)
    except (OSError, json.JSONDecodeError):
        return False
    return is_shard_content_complete(content, expect)


class IssueLog:
    """Counts bad-input events by kind and keeps the first few examples of each for the summary."""

    def __init__(self, max_examples: int = 20):
        self.counts: Counter = Counter()
        self.examples: dict[str, list[str]] = {}
        self.max_examples = max_examples

    def add(self, kind: str, example: str, count: int = 1) -> None:
        self.counts[kind] += count
        ex = self.examples.setdefault(kind, [])
        if len(ex) < self.max_examples:
            ex.append(example)

    def update(self, counts: dict, examples: dict | None = None) -> None:
        """Merge counts/examples read from another log (e.g. a shard file's meta)."""
        for kind, n in counts.items():
            self.counts[kind] += int(n)
        for kind, exs in (examples or {}).items():
            ex = self.examples.setdefault(kind, [])
            ex.extend(exs[: max(0, self.max_examples - len(ex))])

    def to_meta(self) -> dict:
        return {"issues": dict(self.counts), "issue_examples": self.examples}

    def __len__(self) -> int:
        return sum(self.counts.values())


def merge_counters(dicts: Iterable[dict]) -> dict:
    """Sum a sequence of ``{key: number}`` dicts."""
    total: Counter = Counter()
    for d in dicts:
        for k, v in d.items():
            total[k] += v
    return dict(total)
