"""Evaluators for HOI detection and scene-graph generation that reproduce the official protocols.

- ``HICOEvaluator`` / ``python -m rlipv2.evaluation.hico``: HICO-DET, ``qpic`` (official RLIPv2 Python
  evaluator) or ``matlab`` (ywchao/ho-rcnn) protocol.
- ``VCOCOEvaluator`` / ``python -m rlipv2.evaluation.vcoco``: V-COCO, s-gupta/v-coco ``vsrl_eval.py``.
- ``OISGGEvaluator`` / ``python -m rlipv2.evaluation.oi``: Open Images v6 SGG, ``rlipv2`` or ``gcl`` protocol.
- ``VGSGGEvaluator``: Visual Genome SGDet recall / mean recall / zero-shot recall.
See docs/evaluation.md.
"""
from .hico import HICOEvaluator, score_hico
from .hico_core import HOICandidates, HOIGroundTruth, evaluate_hoi

__all__ = ["HICOEvaluator", "score_hico", "HOICandidates", "HOIGroundTruth", "evaluate_hoi"]
