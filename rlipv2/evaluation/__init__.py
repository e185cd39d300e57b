"""Evaluators for HOI detection and scene-graph generation that reproduce the official protocols.

- ``HICOEvaluator`` / ``python -m rlipv2.evaluation.hico``: HICO-DET, ``qpic`` (official RLIPv2 Python
  evaluator) or ``matlab`` (ywchao/ho-rcnn) protocol.
- ``VCOCOEvaluator`` / ``python -m rlipv2.evaluation.vcoco``: V-COCO, s-gupta/v-coco ``vsrl_eval.py``.
- ``OISGGEvaluator`` / ``python -m rlipv2.evaluation.oi``: Open Images v6 SGG, ``rlipv2`` or ``gcl`` protocol.
- ``VGSGGEvaluator``: Visual Genome SGDet recall / mean recall / zero-shot recall.

The Detectron2 evaluator classes are imported lazily (they need torch / detectron2); the scoring
functions and CLIs are numpy-only. See docs/evaluation.md.
"""
import importlib

_LAZY = {
    "HICOEvaluator": ".hico_evaluator",
    "VCOCOEvaluator": ".vcoco_evaluator",
    "OISGGEvaluator": ".sgg_evaluator",
    "VGSGGEvaluator": ".sgg_evaluator",
    "score_hico": ".hico_core",
    "HOICandidates": ".hico_core",
    "HOIGroundTruth": ".hico_core",
    "evaluate_hoi": ".hico_core",
}

__all__ = list(_LAZY)


def __getattr__(name):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
