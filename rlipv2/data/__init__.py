"""Relation data for RLIPv2: dataset registration, the mapper, augmentations, label sequences,
few/zero-shot splits and the synthetic relation world.

Importing this package registers every official dataset name (lazily) in Detectron2's catalogs.
"""
from . import datasets  # noqa: F401
from .datasets import RelationDataError, register_relation_dataset, skip_bad_records
from .datasets import builtin as _builtin  # noqa: F401  (registers the official names)
from .synthetic import SyntheticWorldConfig, ensure_world, register_synthetic_world

__all__ = [
    "RelationDataError", "register_relation_dataset", "skip_bad_records", "SyntheticWorldConfig", "ensure_world",
    "register_synthetic_world",
]
