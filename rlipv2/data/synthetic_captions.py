"""Captions of the synthetic world's caption set ("COCO-like"), and the words behind them.

The caption set stands in for COCO or Objects365 in RLIPv2's pseudo-labelling: images with boxes and
object labels, and captions, but no relation annotations. Captions are written from templates, as a
captioner would describe the image, with the imperfections that matter to the pipeline:

- synonyms and plurals of the object names ("a guy riding a bike", "two women holding umbrellas"), some of
  them absent from the paraphrase lists the matcher uses ("a kid", "a pony"), so that matching loses them;
- several phrasings of each relation ("riding", "rides", "is riding", "on"), which a scene-graph parser
  sometimes shortens ("looking at" -> "at");
- sentences about things that are not in the image ("a man holding a frisbee"), and wrong relations
  between things that are ("a man riding a horse" for a man standing next to one);
- sentences without any relation ("a woman in a park").

The true relations of the caption set are written aside (``annotations/hidden/``) and are only used to
score pseudo-labels (:mod:`rlipv2.pseudo_labeling.quality`) with :data:`PREDICATE_TEXTS`, the relation
texts a parse of these captions can give for each true relation.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "OBJECT_WORDS",
    "VERB_PHRASES",
    "PREDICATE_TEXTS",
    "caption_paraphrases",
    "ABSENT_OBJECTS",
    "captions_for_image",
    "predicate_to_verbs",
]

# object -> [(singular, plural)]; the first entries are in the matcher's paraphrase lists, those marked
# "# unmatched" are not (a captioner's words that the official lists miss)
OBJECT_WORDS: dict[str, list[tuple[str, str]]] = {
    "person": [
        ("man", "men"), ("woman", "women"), ("person", "people"), ("boy", "boys"), ("girl", "girls"),
        ("guy", "guys"), ("player", "players"),
        ("kid", "kids"), ("child", "children"),  # unmatched
    ],
    "ball": [("ball", "balls"), ("soccer ball", "soccer balls")],
    "bicycle": [("bicycle", "bicycles"), ("bike", "bikes")],
    "horse": [("horse", "horses"), ("mare", "mares"), ("pony", "ponies")],  # pony: unmatched
    "chair": [("chair", "chairs"), ("armchair", "armchairs")],
    "cup": [("cup", "cups"), ("mug", "mugs")],  # mug: unmatched
    "kite": [("kite", "kites")],
    "box": [("box", "boxes"), ("crate", "crates"), ("carton", "cartons")],
    "umbrella": [("umbrella", "umbrellas")],
    "dog": [("dog", "dogs"), ("puppy", "puppies")],
}

# the paraphrase lists handed to the pseudo-labelling matcher (a user's JSON, as for a custom dataset):
# the official HICO/COCO lists where the category exists there, the user's own words otherwise
_OFFICIAL = ("person", "bicycle", "horse", "chair", "cup", "kite", "umbrella", "dog")
_OWN_PARAPHRASES = {"ball": ["ball", "sports ball"], "box": ["box", "crate", "carton", "package"]}

# verb -> (singular phrases, plural phrases): how a caption says it
VERB_PHRASES: dict[str, tuple[list[str], list[str]]] = {
    "ride": (["riding", "rides", "is riding", "on"], ["riding", "ride", "are riding", "on"]),
    "hold": (["holding", "holds", "is holding"], ["holding", "hold", "are holding"]),
    "kick": (["kicking", "kicks", "is kicking"], ["kicking", "kick", "are kicking"]),
    "carry": (["carrying", "carries", "is carrying", "lifting"], ["carrying", "carry", "are carrying"]),
    "sit on": (["sitting on", "sits on", "is sitting on", "seated on"], ["sitting on", "sit on"]),
    "look at": (["looking at", "looks at", "watching", "is watching"], ["looking at", "watching", "look at"]),
    "next to": (["standing next to", "next to", "beside", "near", "standing beside"],
                ["standing next to", "next to", "beside"]),
    "push": (["pushing", "pushes", "is pushing"], ["pushing", "push"]),
    "throw": (["throwing", "throws", "tossing", "is throwing"], ["throwing", "throw", "tossing"]),
    "stand on": (["standing on", "stands on", "is standing on"], ["standing on", "stand on"]),
    "walk": (["walking", "walks", "is walking"], ["walking", "walk"]),
    "on": (["on", "sitting on", "resting on", "on top of"], ["on", "sitting on"]),
}

# verb -> the relation texts that SceneGraphParser returns for the phrases above (measured on every
# template; tests/data/test_synthetic_pretraining.py checks that this table covers them)
PREDICATE_TEXTS: dict[str, list[str]] = {
    "ride": ["riding", "rides", "ride", "on"],
    "hold": ["holding", "holds", "hold"],
    "kick": ["kicking", "kicks", "kick"],
    "carry": ["carrying", "carries", "carry", "lifting"],
    "sit on": ["sitting on", "sits on", "sit on", "seated on", "on"],
    "look at": ["looking at", "looks at", "look at", "watching", "watch", "at"],
    "next to": ["standing next to", "next to", "beside", "near", "standing beside", "stands next to", "to"],
    "push": ["pushing", "pushes", "push"],
    "throw": ["throwing", "throws", "throw", "tossing"],
    "stand on": ["standing on", "stands on", "stand on", "on"],
    "walk": ["walking", "walks", "walk"],
    "on": ["on", "sitting on", "resting on", "on top of", "sit on"],
}

ABSENT_OBJECTS = ["frisbee", "skateboard", "surfboard", "motorcycle", "laptop", "cat", "bench", "car", "tennis racket"]
_PLACES = ["", "", "", " in a park", " on the grass", " in a field", " on the street", " at the beach"]
_SCENES = [
    "{a} {s}{place}", "a picture of {a} {s}", "{a} {s} and {a2} {o}", "{a2} {o} in the sun",
    "a colorful picture of {a2} {o}", "{a} {s} standing{place}",
]


def caption_paraphrases(official: dict[str, list[str]]) -> dict[str, list[str]]:
    """The matcher's paraphrase lists for the world's categories, from the official ``official`` lists."""
    from .synthetic_vocabulary import OBJECTS

    out = {}
    for name in OBJECTS:
        out[name] = list(official[name]) if name in _OFFICIAL else list(_OWN_PARAPHRASES[name])
    return out


def predicate_to_verbs() -> dict[str, list[str]]:
    """Inverse of :data:`PREDICATE_TEXTS`: relation text -> the world's verbs it can express."""
    out: dict[str, list[str]] = {}
    for verb, texts in PREDICATE_TEXTS.items():
        for t in texts:
            out.setdefault(t, []).append(verb)
    return out


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def _np(rng, word: str) -> str:
    """A noun phrase for a singular noun: "a man", "the man", "an umbrella"."""
    return f"{'the' if rng.random() < 0.25 else _article(word)} {word}"


def _word(rng, kind: str, plural: bool = False) -> str:
    words = OBJECT_WORDS[kind]
    # the official-list words first most of the time: a captioner mostly says "man", "bike", "dog"
    pick = words[rng.integers(len(words))] if rng.random() < 0.5 else words[rng.integers(min(2, len(words)))]
    return pick[1] if plural else pick[0]


def _relation_caption(rng, sub_kind: str, verb: str, obj_kind: str, plural: bool = False) -> str:
    place = _PLACES[rng.integers(len(_PLACES))]
    sing, plur = VERB_PHRASES[verb]
    if plural:
        vp = plur[rng.integers(len(plur))]
        s = _word(rng, sub_kind, plural=True)
        o = _word(rng, obj_kind, plural=True)
        lead = ["two ", "", "a group of "][rng.integers(3)] if sub_kind == "person" else "two "
        return f"{lead}{s} {vp} {o}{place}"
    vp = sing[rng.integers(len(sing))]
    s, o = _np(rng, _word(rng, sub_kind)), _np(rng, _word(rng, obj_kind))
    form = rng.integers(4)
    if form == 0:
        return f"{s} {vp} {o}{place}"
    if form == 1:
        return f"a picture of {s} {vp} {o}"
    if form == 2:
        return f"there is {s} {vp} {o}{place}"
    return f"{s} {vp} {o}"


def captions_for_image(
    objects: list[tuple[str, list[float]]],
    relations: list[tuple[int, int, str]],
    rng: np.random.Generator,
    num_captions: int = 5,
) -> list[str]:
    """``num_captions`` captions of one image, given its objects [(name, box)] and true relations
    [(subject index, object index, verb)] (the verbs of :data:`PRETRAINING_COMBINATIONS` and ``on``).

    Each caption is, with these probabilities: a true relation (0.55; in the plural when two people share
    the verb and object kind), a sentence without relation (0.15), a wrong relation between a person and an
    object of the image (0.15), or a relation with an object that is not in the image (0.15).
    """
    from .synthetic_vocabulary import PRETRAINING_COMBINATIONS

    true = [(s, o, v) for s, o, v in relations if v in VERB_PHRASES]
    groups: dict[tuple[str, str, str], int] = {}
    for s, o, v in true:
        key = (objects[s][0], v, objects[o][0])
        groups[key] = groups.get(key, 0) + 1
    people = [k for k, (n, _) in enumerate(objects) if n == "person"]
    things = [k for k, (n, _) in enumerate(objects) if n != "person"]
    pair_verbs: dict[tuple[int, int], set[str]] = {}
    for s, o, v in relations:
        pair_verbs.setdefault((s, o), set()).add(v)
    out = []
    for _ in range(num_captions):
        u = rng.random()
        if true and u < 0.55:
            s, o, v = true[rng.integers(len(true))]
            key = (objects[s][0], v, objects[o][0])
            plural = groups[key] > 1 and rng.random() < 0.7
            out.append(_relation_caption(rng, objects[s][0], v, objects[o][0], plural=plural))
        elif people and things and u < 0.85 and rng.random() < 0.5:
            # a wrong relation between a person and an object of the image
            s, o = people[rng.integers(len(people))], things[rng.integers(len(things))]
            kind = objects[o][0]
            wrong = [v for v, objs in PRETRAINING_COMBINATIONS.items()
                     if kind in objs and v in VERB_PHRASES and v not in pair_verbs.get((s, o), set())]
            if wrong:
                out.append(_relation_caption(rng, "person", wrong[rng.integers(len(wrong))], kind))
            else:
                out.append(_scene_caption(rng, objects))
        elif u < 0.85:
            out.append(_scene_caption(rng, objects))
        else:
            # something that is not in the image
            absent = ABSENT_OBJECTS[rng.integers(len(ABSENT_OBJECTS))]
            verb = ["holding", "riding", "next to", "looking at", "carrying"][rng.integers(5)]
            subject = _np(rng, _word(rng, "person")) if people else "a dog"
            out.append(f"{subject} {verb} {_np(rng, absent)}")
    return out


def _scene_caption(rng, objects) -> str:
    names = [n for n, _ in objects]
    s_kind = "person" if "person" in names else names[0]
    others = [n for n in names if n != s_kind] or [s_kind]
    o_kind = others[rng.integers(len(others))]
    s, o = _word(rng, s_kind), _word(rng, o_kind)
    tmpl = _SCENES[rng.integers(len(_SCENES))]
    return tmpl.format(a=_article(s), s=s, a2=_article(o), o=o, place=_PLACES[rng.integers(len(_PLACES))])
