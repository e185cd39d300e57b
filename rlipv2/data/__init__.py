"""Relation data for RLIPv2: dataset registration, the mapper, augmentations, label sequences,
few/zero-shot splits and the synthetic relation world.

Importing this package registers every official dataset name (lazily) in Detectron2's catalogs.
"""

from . import datasets  # noqa: F401
from .datasets import (
    MissingDatasetFileError,
    RelationDataError,
    register_mixture,
    register_relation_dataset,
    registered_dataset,
    registered_mixture,
    skip_bad_records,
)
from .datasets import builtin as _builtin  # noqa: F401  (registers the official names)
from .label_sequence import NO_OBJECTS, LabelSequence, LabelSequenceBuilder, build_label_sequence
from .loading import get_relation_dataset_dicts
from .relation_dataset_mapper import RelationDatasetMapper, filter_images_without_relations, remap_relations
from .synthetic import SyntheticWorldConfig, ensure_world, register_synthetic_world
from .transforms import build_relation_augmentations

__all__ = [
    "MissingDatasetFileError",
    "RelationDataError",
    "register_mixture",
    "register_relation_dataset",
    "registered_dataset",
    "registered_mixture",
    "skip_bad_records",
    "NO_OBJECTS",
    "LabelSequence",
    "LabelSequenceBuilder",
    "build_label_sequence",
    "get_relation_dataset_dicts",
    "RelationDatasetMapper",
    "filter_images_without_relations",
    "remap_relations",
    "SyntheticWorldConfig",
    "ensure_world",
    "register_synthetic_world",
    "build_relation_augmentations",
]
