"""The vocabulary of the synthetic world: objects, verbs and which (verb, object) combinations exist.

Shared by ``rlipv2.data.synthetic`` (images and annotations) and ``rlipv2.data.synthetic_captions``
(captions): both import it, neither imports the other at module level.
"""
from __future__ import annotations

__all__ = [
    "OBJECTS",
    "VERBS",
    "VALID_COMBINATIONS",
    "UNSEEN_COMBINATIONS",
    "PRETRAINING_ONLY_VERBS",
    "OBJECT_RELATIONS",
    "PRETRAINING_COMBINATIONS",
    "PRETRAINING_VERBS",
    "STACKS",
    "STACK_PROBABILITY",
]

OBJECTS = ["person", "ball", "bicycle", "horse", "chair", "cup", "kite", "box", "umbrella", "dog"]
VERBS = ["ride", "hold", "kick", "carry", "sit on", "look at", "next to", "no interaction"]
_ALL_OBJ = [o for o in OBJECTS if o != "person"]
VALID_COMBINATIONS: dict[str, list[str]] = {
    "ride": ["bicycle", "horse"],
    "hold": ["ball", "cup", "kite", "box", "umbrella", "dog"],
    "kick": ["ball", "box"],
    "carry": ["box", "ball", "chair", "dog"],
    "sit on": ["chair", "box"],
    "look at": list(_ALL_OBJ),
    "next to": list(_ALL_OBJ),
    "no interaction": list(_ALL_OBJ),
}
# valid combinations held out of training (zero-shot evaluation)
UNSEEN_COMBINATIONS: list[tuple[str, str]] = [
    ("kick", "box"),
    ("carry", "chair"),
    ("sit on", "box"),
    ("hold", "umbrella"),
]


# The pre-training sets (relation set and caption set) have more relation types than the downstream HOI
# set: four more person-object verbs and an object-object relation, which never appear downstream.
PRETRAINING_ONLY_VERBS = ["push", "throw", "stand on", "walk"]
OBJECT_RELATIONS = ["on"]  # an object resting on another one (subject: the upper object)
PRETRAINING_COMBINATIONS: dict[str, list[str]] = {
    **VALID_COMBINATIONS,
    "push": ["box", "chair", "bicycle"],
    "throw": ["ball", "box", "cup"],
    "stand on": ["box", "chair"],
    "walk": ["dog", "horse"],
}
PRETRAINING_VERBS = list(PRETRAINING_COMBINATIONS)
# (upper object, lower object) pairs of the "on" relation
STACKS: list[tuple[str, str]] = [("cup", "box"), ("ball", "box"), ("cup", "chair"), ("box", "chair"), ("ball", "chair")]
STACK_PROBABILITY = 0.35
