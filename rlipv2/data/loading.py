"""``get_relation_dataset_dicts``: Detectron2's ``get_detection_dataset_dicts`` for relation data."""

from __future__ import annotations

import logging

from detectron2.data import DatasetCatalog

from .datasets.common import skip_bad_records
from .relation_dataset_mapper import filter_images_without_relations

logger = logging.getLogger(__name__)


def get_relation_dataset_dicts(
    names: str | list[str],
    *,
    filter_no_relations: bool = False,
    skip_bad: bool = False,
) -> list[dict]:
    """Load and concatenate registered relation datasets (usable as a LazyConfig node).

    Args:
        names: dataset name(s). Records keep a ``dataset_name`` key, so the mapper finds each
            record's own vocabulary even when datasets with different vocabularies are mixed
            (use a registered mixture to share one vocabulary).
        filter_no_relations: drop images without relations (official pre-training behaviour).
        skip_bad: skip bad records with a logged warning instead of raising.
    """
    if isinstance(names, str):
        names = [names]
    out: list[dict] = []
    with skip_bad_records(skip_bad):
        for n in names:
            dicts = DatasetCatalog.get(n)
            if not dicts:
                raise ValueError(f"Dataset '{n}' is empty")
            for d in dicts:
                d.setdefault("dataset_name", n)
            out.extend(dicts)
    if filter_no_relations:
        out = filter_images_without_relations(out)
    logger.info("Loaded %d images from %s", len(out), ", ".join(names))
    return out
