"""SceneGraphParser on sample captions (skipped with a reason when sng_parser or the spaCy model is missing)."""
import pytest

from rlipv2.pseudo_labeling.parsing import get_parser, parse_caption


@pytest.fixture(scope="module")
def parser():
    try:
        return get_parser()
    except ImportError as e:
        pytest.skip(f"SceneGraphParser/spaCy model unavailable: {e}")


def _triplets(caption, parser):
    return [(s.split()[-1], r, o.split()[-1]) for s, r, o in parse_caption(caption, parser).triplets()]


def test_riding_horse_on_beach(parser):
    g = parse_caption("A man is riding a horse on the beach.", parser)
    assert g.entities == ["a man", "a horse", "the beach"]  # spans lower-cased, as in RLIPv2
    assert _triplets("A man is riding a horse on the beach.", parser) == [
        ("man", "riding", "horse"), ("man", "on", "beach")]


def test_multiword_relation_and_entity(parser):
    assert _triplets("A woman holds a cup next to a laptop.", parser) == [
        ("woman", "holds", "cup"), ("woman", "next to", "laptop")]
    g = parse_caption("person kick sports ball", parser)
    assert g.triplets() == [("person", "kick", "sports ball")]


def test_capitalised_spans_are_lower_cased(parser):
    g = parse_caption("Two Dogs playing with a Frisbee in the park", parser)
    assert "two dogs" in g.entities and "a frisbee" in g.entities
    assert ("two dogs", "playing with", "a frisbee") in g.triplets()


def test_empty_caption_has_no_relations(parser):
    g = parse_caption("", parser)
    assert g.entities == [] and g.relations == []


def test_parser_is_loaded_once():
    try:
        assert get_parser() is get_parser()
    except ImportError as e:
        pytest.skip(str(e))


def test_missing_spacy_model_gives_clear_error():
    with pytest.raises(ImportError, match="could not be loaded|not installed"):
        get_parser("no_such_spacy_model_xyz")


def test_batched_parsing_equals_one_by_one(parser):
    from rlipv2.pseudo_labeling.parsing import parse_captions

    caps = ["A man is riding a horse on the beach.", "", "Two Dogs playing with a Frisbee in the park",
            "a woman holds a cup next to a laptop", "A man is riding a horse on the beach."]
    batched = parse_captions(caps, parser, batch_size=2)
    assert [g.to_json() for g in batched] == [parse_caption(c, parser).to_json() for c in caps]
    assert parser.unwrapped.nlp.__class__.__name__ != "_PreparsedDocs"  # the real pipeline is restored
