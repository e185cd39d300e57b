"""Relation datasets in Detectron2's catalogs (registered lazily on import, see ``builtin.py``)."""

from .common import (
    MissingDatasetFileError,
    Problem,
    ProblemSink,
    RelationDataError,
    datasets_root,
    skip_bad_records,
)
from .hico import register_hico_format
from .mixtures import merge_vocabularies, register_mixture
from .open_images import register_open_images
from .register import register_relation_dataset, registered_dataset, registered_mixture
from .visual_genome import register_pseudo_labels, register_vg_format

__all__ = [
    "MissingDatasetFileError",
    "Problem",
    "ProblemSink",
    "RelationDataError",
    "datasets_root",
    "skip_bad_records",
    "register_hico_format",
    "merge_vocabularies",
    "register_mixture",
    "register_open_images",
    "register_relation_dataset",
    "registered_dataset",
    "registered_mixture",
    "register_pseudo_labels",
    "register_vg_format",
]
