"""Relational pseudo-labelling (RLIPv2 §3.2): detection datasets + captions -> VG-style relation labels.

Stages (each sharded, resumable and data-parallel; see :mod:`.pipeline` and ``tools/pseudo_label.py``):

1. :mod:`.captions` — captions from a JSON file or a :class:`~.captions.Captioner` (BLIP via transformers);
2. :mod:`.parsing` — SceneGraphParser triplets;
3. :mod:`.matching` — paraphrase matching and candidate pair groups;
4. :mod:`.tagging` — scores from a :class:`~.tagging.RelationTagger` (the R-Tagger);
5. :mod:`.writer` — VG-style JSON, merge and summary.
"""
from .captions import CAPTIONER_REGISTRY, BlipCaptioner, Captioner, TemplateCaptioner, load_captions_json
from .matching import CategoryVocabulary, build_candidate_pairs, group_candidates, match_entity
from .pipeline import STAGES, PipelineConfig, PseudoLabelPipeline, run_pipeline
from .tagging import (
    RELATION_TAGGER_REGISTRY,
    ModuleRelationTagger,
    RandomRelationTagger,
    RelationTagger,
    build_relation_tagger,
)

__all__ = [
    "CAPTIONER_REGISTRY",
    "BlipCaptioner",
    "Captioner",
    "TemplateCaptioner",
    "load_captions_json",
    "CategoryVocabulary",
    "build_candidate_pairs",
    "group_candidates",
    "match_entity",
    "STAGES",
    "PipelineConfig",
    "PseudoLabelPipeline",
    "run_pipeline",
    "RELATION_TAGGER_REGISTRY",
    "ModuleRelationTagger",
    "RandomRelationTagger",
    "RelationTagger",
    "build_relation_tagger",
]
