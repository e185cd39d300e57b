"""One schema per file format: the single place where the rules of every input file live.

The dataset loaders, ``python -m rlipv2.data.validate``, the evaluation CLIs, the pseudo-labelling
readers and the checkpoint loaders all validate through these modules, so one file is accepted or
refused the same way everywhere, with one line naming the file, the record and the field.

=================================  ====================================================================
format                             module
=================================  ====================================================================
HICO-DET JSON (and V-COCO train)   :mod:`rlipv2.schemas.hico`
Open Images SGG JSON, categories   :mod:`rlipv2.schemas.oi`
Visual Genome JSON, pseudo labels  :mod:`rlipv2.schemas.vg`
V-COCO evaluation files            :mod:`rlipv2.schemas.vcoco`
COCO detections and captions       :mod:`rlipv2.schemas.coco`
vocabulary files (labels, ids)     :mod:`rlipv2.schemas.vocabulary`
prediction JSON and ``.npz``       :mod:`rlipv2.schemas.predictions`
checkpoints                        :mod:`rlipv2.schemas.checkpoint`
shared field types, the engine     :mod:`rlipv2.schemas.core`
=================================  ====================================================================

Record schemas are pydantic v2 types (types, ranges, missing fields) plus plain cross-field checks
(indices inside the box list, ids inside the vocabulary) and file checks (uniqueness); arrays are
checked by dtype and shape with numpy. Nothing here imports torch or detectron2.
"""
from .core import MAX_CLASS_ID, Problem, RecordSchema, SchemaError, ValidationResult, validate_records
from .vocabulary import Vocabulary, packaged_vocabulary, read_vocabulary

__all__ = ["MAX_CLASS_ID", "Problem", "RecordSchema", "SchemaError", "ValidationResult", "validate_records",
           "Vocabulary", "packaged_vocabulary", "read_vocabulary"]
