"""A synthetic relation world: the embedded default data for ``make demo`` and end-to-end tests.

Deterministic from a seed, it draws real JPEG images of stick-figure people and simple objects
(balls, bicycles, horses, chairs, cups, kites, boxes, umbrellas, dogs) on varied backgrounds, with
occluders, and annotates who does what to which object. Relations follow from the drawn geometry:

- ``ride``: the person sits astride the object (hips on its top, legs down both sides);
- ``sit on``: hips on the object's top, thighs forward, shins down to the ground;
- ``hold``: one arm stretched sideways, the object at the hand;
- ``carry``: both arms up, the object above the head;
- ``kick``: one leg stretched forward, the object at the foot;
- ``look at``: the face (hair behind it) turned towards an object at a distance, an arm raised
  towards it; also added to ``hold`` when the held object is raised to face height and the face
  turned to it (a multi-label pair);
- ``next to``: the object on the ground right beside a person facing the viewer;
- ``no interaction``: the object at a distance from a person who faces away from it or faces the viewer.

Some verb-object combinations are valid but never appear in training (nor in the VG-format
pre-training variant): the zero-shot held-out set, present in the test split only.

Files (HICO-DET format and a VG-format variant), under ``<root>/<tag>/``::

    images/{train,test,vg}/*.jpg
    annotations/{trainval_hoi.json, test_hoi.json, test_unseen_hoi.json, vg_scene_graphs.json,
                 object_names.json, verb_names.txt, corre_mat.npy, world.json}

Registered as ``synthetic_hoi_train``, ``synthetic_hoi_test``, ``synthetic_hoi_test_unseen`` and
``synthetic_vg_train``; generated on first use and cached.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import multiprocessing as mp
import os
import shutil
import time
from dataclasses import asdict, dataclass

import numpy as np
from PIL import Image, ImageDraw

from .synthetic_vocabulary import (  # noqa: F401  (part of this module's API)
    _ALL_OBJ,
    OBJECT_RELATIONS,
    OBJECTS,
    PRETRAINING_COMBINATIONS,
    PRETRAINING_ONLY_VERBS,
    PRETRAINING_VERBS,
    STACK_PROBABILITY,
    STACKS,
    UNSEEN_COMBINATIONS,
    VALID_COMBINATIONS,
    VERBS,
)

logger = logging.getLogger(__name__)

WORLD_VERSION = 5


def correct_mat() -> np.ndarray:
    """[num_verbs, num_objects] float mask of the valid verb-object combinations."""
    m = np.zeros((len(VERBS), len(OBJECTS)), dtype=np.float64)
    for v, objs in VALID_COMBINATIONS.items():
        for o in objs:
            m[VERBS.index(v), OBJECTS.index(o)] = 1.0
    return m


def unseen_triplets() -> list[tuple[int, int]]:
    """The held-out combinations as (verb, object) contiguous ids."""
    return [(VERBS.index(v), OBJECTS.index(o)) for v, o in UNSEEN_COMBINATIONS]


def seen_combinations() -> dict[str, list[str]]:
    held = set(UNSEEN_COMBINATIONS)
    return {v: [o for o in objs if (v, o) not in held] for v, objs in VALID_COMBINATIONS.items()}


@dataclass(frozen=True)
class SyntheticWorldConfig:
    """Parameters of a synthetic world; the world is a pure function of them.

    ``image_size`` is the side of the square images in pixels (128-256 suits a tiny CPU model).
    ``unseen_fraction`` of the test images contain a held-out combination.

    ``pretraining_sets`` turns the ``vg`` split into the *relation set* of relational pre-training
    (VG-like: every valid combination, four more person-object verbs and the object-object ``on``, up to
    ``pretraining_max_people`` people) and adds ``num_coco`` images of the *caption set* (COCO-like: boxes,
    object labels and ``captions_per_image`` captions; the true relations are written aside, for scoring
    pseudo-labels only). Without it the ``vg`` split holds HOI scenes of the training combinations.
    """

    seed: int = 0
    image_size: int = 192
    num_train: int = 1500
    num_test: int = 300
    num_vg: int = 500
    max_people: int = 2
    unseen_fraction: float = 0.3
    jpeg_quality: int = 90
    pretraining_sets: bool = False
    num_coco: int = 0
    pretraining_max_people: int = 2
    captions_per_image: int = 5

    def __post_init__(self):
        if self.num_coco and not self.pretraining_sets:
            raise ValueError("SyntheticWorldConfig: num_coco (the caption set) needs pretraining_sets=True")

    @classmethod
    def from_env(cls) -> SyntheticWorldConfig:
        """Defaults overridden by ``RLIPV2_SYNTHETIC_{SEED,IMAGE_SIZE,NUM_TRAIN,NUM_TEST,NUM_VG,MAX_PEOPLE}``
        (used for the default registered world)."""
        kw = {}
        for field in ("seed", "image_size", "num_train", "num_test", "num_vg", "max_people"):
            v = os.getenv(f"RLIPV2_SYNTHETIC_{field.upper()}")
            if v:
                kw[field] = int(v)
        return cls(**kw)

    @property
    def tag(self) -> str:
        tag = (
            f"v{WORLD_VERSION}_seed{self.seed}_{self.image_size}px_"
            f"{self.num_train}-{self.num_test}-{self.num_vg}_p{self.max_people}_u{self.unseen_fraction:g}"
            f"_q{self.jpeg_quality}"
        )
        if self.pretraining_sets:  # worlds without the pre-training sets keep their earlier tags
            tag += f"_pt{self.num_coco}-p{self.pretraining_max_people}-c{self.captions_per_image}"
        return tag


# ----------------------------------------------------------------------------------------------
# Drawing
# ----------------------------------------------------------------------------------------------
class _Painter:
    """Draws each entity on the image and on the entity's own mask, so its box is exact (amodal)."""

    def __init__(self, img: Image.Image):
        self.img = img
        self.draw = ImageDraw.Draw(img)
        self.mask: Image.Image | None = None
        self.mdraw: ImageDraw.ImageDraw | None = None

    def begin(self):
        self.mask = Image.new("L", self.img.size, 0)
        self.mdraw = ImageDraw.Draw(self.mask)

    def end(self) -> list[float] | None:
        bb = self.mask.getbbox()
        self.mask = self.mdraw = None
        return None if bb is None else [float(b) for b in bb]

    def _both(self, fn, *args, fill=None, **kw):
        getattr(self.draw, fn)(*args, fill=fill, **kw)
        if self.mdraw is not None:
            kw2 = dict(kw)
            if "outline" in kw2 and kw2["outline"] is not None:
                kw2["outline"] = 255
            getattr(self.mdraw, fn)(*args, fill=255 if fill is not None else None, **kw2)

    def ellipse(self, box, fill=None, outline=None, width=1):
        x0, y0, x1, y1 = box
        self._both(
            "ellipse",
            [min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)],
            fill=fill,
            outline=outline,
            width=max(1, int(width)),
        )

    def circle(self, cx, cy, r, fill=None, outline=None, width=1):
        self.ellipse([cx - r, cy - r, cx + r, cy + r], fill=fill, outline=outline, width=width)

    def line(self, pts, fill, width):
        self._both("line", [tuple(p) for p in pts], fill=fill, width=max(1, int(round(width))))
        w = max(1, int(round(width)))
        if w >= 3:  # round joints / caps
            for p in pts:
                self.circle(p[0], p[1], w / 2.0, fill=fill)

    def polygon(self, pts, fill, outline=None):
        self._both("polygon", [tuple(p) for p in pts], fill=fill, outline=outline)

    def rect(self, box, fill, outline=None, width=1):
        x0, y0, x1, y1 = box
        self._both(
            "rectangle",
            [min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)],
            fill=fill,
            outline=outline,
            width=max(1, int(width)),
        )

    def pieslice(self, box, start, end, fill):
        self._both("pieslice", box, start, end, fill=fill)


def _col(rng, lo=0, hi=255):
    return tuple(int(v) for v in rng.integers(lo, hi + 1, size=3))


def _jit(rng, c, d=25):
    return tuple(int(np.clip(v + rng.integers(-d, d + 1), 0, 255)) for v in c)


SKIN = [(255, 219, 172), (241, 194, 125), (224, 172, 105), (198, 134, 66), (141, 85, 36), (92, 58, 30)]
HAIR = [(20, 20, 20), (70, 45, 20), (120, 80, 40), (200, 170, 90), (150, 150, 150)]


def _background(rng, s: int) -> tuple[Image.Image, float]:
    """Sky/wall above a ground band, with a gradient, blotches and stripes. Returns (image, horizon y)."""
    horizon = s * rng.uniform(0.3, 0.55)
    top = np.array(_col(rng, 60, 255), dtype=np.float32)
    top2 = np.array(_jit(rng, tuple(top), 60), dtype=np.float32)
    ground = np.array(_col(rng, 30, 200), dtype=np.float32)
    ground2 = np.array(_jit(rng, tuple(ground), 50), dtype=np.float32)
    y = np.arange(s, dtype=np.float32)[:, None, None]
    t_top = y / max(horizon, 1)
    t_gr = (y - horizon) / max(s - horizon, 1)
    arr = np.where(y < horizon, top * (1 - t_top) + top2 * t_top, ground * (1 - t_gr) + ground2 * t_gr)
    arr = np.broadcast_to(arr, (s, s, 3)).copy()
    arr += rng.normal(0, rng.uniform(2, 10), size=(s, s, 1)).astype(np.float32)  # grain
    img = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "RGB")
    d = ImageDraw.Draw(img)
    for _ in range(rng.integers(0, 6)):  # blotches (clouds, patches)
        cx, cy = rng.uniform(0, s), rng.uniform(0, s)
        rx, ry = rng.uniform(0.03, 0.15) * s, rng.uniform(0.02, 0.08) * s
        base = tuple(int(v) for v in (top if cy < horizon else ground))
        d.ellipse([cx - rx, cy - ry, cx + rx, cy + ry], fill=_jit(rng, base, 35))
    if rng.random() < 0.4:  # stripes (fence / tiles)
        c = _jit(rng, tuple(int(v) for v in ground), 40)
        step = int(rng.integers(8, 24))
        for x in range(int(rng.integers(0, step)), s, step):
            d.line([(x, horizon), (x + rng.uniform(-10, 10), s)], fill=c, width=1)
    return img, horizon


class _Person:
    """Geometry of a stick-figure person standing with feet at (x, ground), height ``h``."""

    def __init__(self, x, ground, h, facing, rng):
        self.x, self.ground, self.h, self.facing = x, ground, h, facing
        self.head_r = 0.115 * h
        self.top = ground - h
        self.neck = self.top + 2 * self.head_r
        self.shoulder = self.neck + 0.04 * h
        self.hip = self.top + 0.56 * h
        self.skin = SKIN[rng.integers(len(SKIN))]
        self.hair = HAIR[rng.integers(len(HAIR))]
        self.shirt = _col(rng, 0, 255)
        self.pants = _col(rng, 0, 200)
        self.limb = max(2.0, 0.055 * h)
        self.torso_w = 0.2 * h
        # default pose: arms down, legs straight
        self.arms = [self._arm_down(-1), self._arm_down(1)]
        self.legs = [
            [(x - 0.05 * h, self.hip), (x - 0.07 * h, ground)],
            [(x + 0.05 * h, self.hip), (x + 0.07 * h, ground)],
        ]

    def _arm_down(self, side):
        sx = self.x + side * self.torso_w / 2
        return [
            (sx, self.shoulder),
            (sx + side * 0.06 * self.h, self.shoulder + 0.2 * self.h),
            (sx + side * 0.07 * self.h, self.shoulder + 0.38 * self.h),
        ]

    def point(self, side):
        """Arm raised diagonally towards ``side`` (pointing at something in the distance)."""
        sx = self.x + side * self.torso_w / 2
        hand = (sx + side * 0.3 * self.h, self.shoulder - 0.28 * self.h)
        self.arms[0 if side < 0 else 1] = [
            (sx, self.shoulder),
            (sx + side * 0.16 * self.h, self.shoulder - 0.13 * self.h),
            hand,
        ]

    def hand_reach(self, side, dy=0.0):
        """Arm stretched sideways (towards ``side``); returns the hand position."""
        sx = self.x + side * self.torso_w / 2
        hand = (sx + side * 0.42 * self.h, self.shoulder + dy * self.h)
        self.arms[0 if side < 0 else 1] = [
            (sx, self.shoulder),
            ((sx + hand[0]) / 2, (self.shoulder + hand[1]) / 2),
            hand,
        ]
        return hand

    def arms_up(self):
        for k, side in enumerate((-1, 1)):
            sx = self.x + side * self.torso_w / 2
            self.arms[k] = [
                (sx, self.shoulder),
                (sx + side * 0.08 * self.h, self.shoulder - 0.16 * self.h),
                (sx + side * 0.05 * self.h, self.top - 0.08 * self.h),
            ]
        return self.top - 0.08 * self.h  # y of the hands

    def straddle(self, seat_y, obj_w, ground):
        """Ride: hips at seat_y (person lifted), legs down both sides of the object (feet above ground)."""
        self._lift(seat_y)
        spread = min(0.22 * self.h, obj_w * 0.3)
        leg = max(0.1 * self.h, min(0.4 * self.h, ground - self.hip - 0.04 * self.h))
        self.legs = [
            [
                (self.x - 0.05 * self.h, self.hip),
                (self.x - spread, self.hip + 0.55 * leg),
                (self.x - spread * 0.9, self.hip + leg),
            ],
            [
                (self.x + 0.05 * self.h, self.hip),
                (self.x + spread, self.hip + 0.55 * leg),
                (self.x + spread * 0.9, self.hip + leg),
            ],
        ]
        for k, side in enumerate((-1, 1)):  # hands forward on the reins/handlebar
            sx = self.x + side * self.torso_w / 2
            hx = self.x + self.facing * 0.3 * self.h
            self.arms[k] = [
                (sx, self.shoulder),
                ((sx + hx) / 2, self.shoulder + 0.12 * self.h),
                (hx, self.shoulder + 0.2 * self.h),
            ]

    def sit(self, seat_y, ground):
        self._lift(seat_y)
        f = self.facing if self.facing != 0 else 1
        knee = (self.x + f * 0.24 * self.h, self.hip)
        self.legs = [
            [(self.x, self.hip), knee, (knee[0] + f * 0.02 * self.h, ground)],
            [
                (self.x + f * 0.03 * self.h, self.hip),
                (knee[0] + f * 0.03 * self.h, self.hip + 0.01 * self.h),
                (knee[0] + f * 0.05 * self.h, ground),
            ],
        ]

    def kick(self, side):
        """One leg stretched towards ``side``; returns the foot position."""
        foot = (self.x + side * 0.4 * self.h, self.ground - 0.1 * self.h)
        self.legs[1] = [
            (self.x + side * 0.05 * self.h, self.hip),
            ((self.x + foot[0]) / 2, (self.hip + foot[1]) / 2 + 0.02 * self.h),
            foot,
        ]
        self.legs[0] = [(self.x - side * 0.03 * self.h, self.hip), (self.x - side * 0.05 * self.h, self.ground)]
        return foot

    def push(self, side):
        """Both arms stretched horizontally towards ``side`` (pushing); returns the hands' position."""
        hand = (self.x + side * (self.torso_w / 2 + 0.36 * self.h), self.shoulder + 0.14 * self.h)
        for k, s in enumerate((-1, 1)):
            sx = self.x + s * self.torso_w / 2
            hx = hand[0] - side * (0.03 * self.h if s == side else 0.0)
            self.arms[k] = [(sx, self.shoulder), ((sx + hx) / 2, self.shoulder + 0.1 * self.h), (hx, hand[1])]
        return hand

    def throw(self, side):
        """One arm flung up and forward towards ``side`` (throwing); returns the hand position."""
        sx = self.x + side * self.torso_w / 2
        hand = (sx + side * 0.22 * self.h, self.shoulder - 0.34 * self.h)
        elbow = (sx + side * 0.06 * self.h, self.shoulder - 0.18 * self.h)
        self.arms[0 if side < 0 else 1] = [(sx, self.shoulder), elbow, hand]
        return hand

    def _lift(self, seat_y):
        dy = seat_y - self.hip
        self.top += dy
        self.neck += dy
        self.shoulder += dy
        self.hip += dy

    def draw(self, p: _Painter):
        h = self.h
        for leg in self.legs:
            p.line(leg, self.pants, self.limb * 1.15)
        tw = self.torso_w
        p.polygon(
            [
                (self.x - tw / 2, self.shoulder - 0.02 * h),
                (self.x + tw / 2, self.shoulder - 0.02 * h),
                (self.x + tw * 0.42, self.hip + 0.02 * h),
                (self.x - tw * 0.42, self.hip + 0.02 * h),
            ],
            self.shirt,
        )
        for arm in self.arms:
            p.line(arm[:2], self.shirt, self.limb)
            p.line(arm[1:], self.skin, self.limb * 0.9)
        # head: face skin, hair at the back (side view) or on top (front view)
        r = self.head_r
        cx, cy = self.x, self.top + r
        p.circle(cx, cy, r, fill=self.skin)
        if self.facing == 0:
            p.pieslice([cx - r, cy - r, cx + r, cy + r], 180, 360, fill=self.hair)
            for ex in (-0.4, 0.4):
                p.circle(cx + ex * r, cy + 0.1 * r, max(1.0, 0.14 * r), fill=(10, 10, 10))
        else:
            start, end = (270, 450) if self.facing < 0 else (90, 270)  # hair on the side away from the face
            p.pieslice([cx - r, cy - r, cx + r, cy + r], start, end, fill=self.hair)
            p.circle(cx + self.facing * 0.55 * r, cy, max(1.0, 0.15 * r), fill=(10, 10, 10))
            p.polygon(
                [
                    (cx + self.facing * r * 0.9, cy + 0.1 * r),
                    (cx + self.facing * r * 1.3, cy + 0.35 * r),
                    (cx + self.facing * r * 0.9, cy + 0.5 * r),
                ],
                self.skin,
            )


def _object_size(kind, h, rng):
    """(width, height) of an object relative to the person height ``h``."""
    u = rng.uniform(0.85, 1.15)
    return {
        "ball": (0.22 * h * u, 0.22 * h * u),
        "bicycle": (0.85 * h * u, 0.5 * h * u),
        "horse": (1.05 * h * u, 0.72 * h * u),
        "chair": (0.38 * h * u, 0.6 * h * u),
        "cup": (0.15 * h * u, 0.18 * h * u),
        "kite": (0.3 * h * u, 0.38 * h * u),
        "box": (0.34 * h * u, 0.3 * h * u),
        "umbrella": (0.6 * h * u, 0.55 * h * u),
        "dog": (0.5 * h * u, 0.34 * h * u),
    }[kind]


def _draw_object(p: _Painter, kind, cx, bottom, w, hgt, facing, rng):
    """Draw an object whose box is centred on ``cx`` and ends at ``bottom``; returns its seat height (y)."""
    x0, x1, y0, y1 = cx - w / 2, cx + w / 2, bottom - hgt, bottom
    f = facing if facing != 0 else (1 if rng.random() < 0.5 else -1)
    c = _col(rng, 20, 255)
    if kind == "ball":
        p.circle(cx, (y0 + y1) / 2, w / 2, fill=c)
        p.line([(x0 + w * 0.15, (y0 + y1) / 2), (x1 - w * 0.15, (y0 + y1) / 2)], _jit(rng, c, 120), max(1, w * 0.08))
        return y0
    if kind == "bicycle":
        r = hgt * 0.42
        lw = max(2, w * 0.04)
        wheel = _col(rng, 0, 90)
        p.circle(x0 + r, y1 - r, r, outline=wheel, width=lw)
        p.circle(x1 - r, y1 - r, r, outline=wheel, width=lw)
        seat = (cx - f * w * 0.08, y0 + hgt * 0.18)
        bar = (cx + f * w * 0.3, y0)
        back, front = (cx - f * (w / 2 - r), y1 - r), (cx + f * (w / 2 - r), y1 - r)
        crank = (cx, y1 - r * 0.9)
        p.line([back, seat, crank, back], c, max(2, w * 0.045))
        p.line([seat, (bar[0], bar[1] + hgt * 0.12), front], c, max(2, w * 0.045))
        p.line([crank, (bar[0], bar[1] + hgt * 0.12)], c, max(2, w * 0.045))
        p.line(
            [(bar[0] - f * w * 0.05, bar[1]), (bar[0] + f * w * 0.03, bar[1] + hgt * 0.1)],
            (30, 30, 30),
            max(2, w * 0.04),
        )
        return y0 + hgt * 0.18
    if kind == "horse":
        coat = [(110, 70, 40), (160, 110, 60), (60, 40, 25), (230, 225, 215), (120, 120, 120), (30, 25, 20)][
            rng.integers(6)
        ]
        coat = _jit(rng, coat, 15)
        body_t, body_b = y0 + hgt * 0.3, y0 + hgt * 0.62
        bx0, bx1 = x0 + w * 0.12, x1 - w * 0.12
        leg_w = max(2, w * 0.06)
        for lx in (bx0 + w * 0.05, bx0 + w * 0.15, bx1 - w * 0.15, bx1 - w * 0.05):
            p.line([(lx, body_b - hgt * 0.05), (lx, y1)], coat, leg_w)
        p.ellipse([bx0, body_t, bx1, body_b], fill=coat)
        nx = bx1 if f > 0 else bx0
        head = (x1 - w * 0.06, y0 + hgt * 0.08) if f > 0 else (x0 + w * 0.06, y0 + hgt * 0.08)
        p.line([(nx - f * w * 0.05, body_t + hgt * 0.08), head], coat, max(3, w * 0.1))
        p.ellipse([head[0] - w * 0.07, head[1] - hgt * 0.08, head[0] + w * 0.07, head[1] + hgt * 0.08], fill=coat)
        tail_x = bx0 if f > 0 else bx1
        p.line(
            [(tail_x, body_t + hgt * 0.05), (tail_x - f * w * 0.1, body_t + hgt * 0.35)],
            _jit(rng, coat, 40),
            max(2, w * 0.04),
        )
        return body_t
    if kind == "chair":
        seat_y = y0 + hgt * 0.5
        lw = max(2, w * 0.09)
        back_x = x0 + w * 0.1 if f > 0 else x1 - w * 0.1
        p.line([(back_x, y0), (back_x, y1)], c, lw)
        p.rect([x0, seat_y - hgt * 0.06, x1, seat_y + hgt * 0.04], c)
        p.line(
            [(x1 - w * 0.1 if f > 0 else x0 + w * 0.1, seat_y), (x1 - w * 0.1 if f > 0 else x0 + w * 0.1, y1)], c, lw
        )
        return seat_y - hgt * 0.06
    if kind == "cup":
        p.polygon([(x0, y0), (x1 - w * 0.25, y0), (x1 - w * 0.35, y1), (x0 + w * 0.1, y1)], c)
        p.ellipse([x1 - w * 0.4, y0 + hgt * 0.2, x1, y0 + hgt * 0.65], outline=c, width=max(1, w * 0.12))
        return y0
    if kind == "kite":
        my = y0 + hgt * 0.4
        p.polygon([(cx, y0), (x1, my), (cx, y0 + hgt * 0.8), (x0, my)], c)
        p.line([(cx, y0), (cx, y0 + hgt * 0.8)], _jit(rng, c, 100), 1)
        p.line(
            [(cx, y0 + hgt * 0.8), (cx + w * 0.15, y0 + hgt * 0.9), (cx - w * 0.1, y1)],
            _jit(rng, c, 100),
            max(1, w * 0.05),
        )
        return y0
    if kind == "box":
        card = _jit(rng, [(190, 150, 100), (160, 120, 70), (220, 190, 140), (120, 90, 60)][rng.integers(4)], 15)
        if rng.random() < 0.3:
            card = c
        p.rect([x0, y0, x1, y1], card, outline=_jit(rng, card, 60), width=max(1, w * 0.04))
        p.line([(cx, y0), (cx, y1)], _jit(rng, card, 70), max(1, w * 0.08))
        return y0
    if kind == "umbrella":
        can_b = y0 + hgt * 0.45
        p.pieslice([x0, y0, x1, y0 + hgt * 0.9], 180, 360, fill=c)
        p.line([(cx, can_b - hgt * 0.02), (cx, y1 - hgt * 0.08)], (40, 40, 40), max(2, w * 0.04))
        p.line(
            [(cx, y1 - hgt * 0.08), (cx + w * 0.06, y1), (cx + w * 0.1, y1 - hgt * 0.06)],
            (40, 40, 40),
            max(2, w * 0.04),
        )
        return y0
    if kind == "dog":
        fur = _jit(rng, [(140, 100, 60), (230, 220, 200), (40, 35, 30), (190, 150, 90)][rng.integers(4)], 15)
        bt, bb = y0 + hgt * 0.3, y0 + hgt * 0.72
        bx0, bx1 = x0 + w * 0.12, x1 - w * 0.18 if f > 0 else x1 - w * 0.12
        if f < 0:
            bx0 = x0 + w * 0.18
        for lx in (bx0 + w * 0.06, bx1 - w * 0.06):
            p.line([(lx, bb - hgt * 0.05), (lx, y1)], fur, max(2, w * 0.08))
        p.ellipse([bx0, bt, bx1, bb], fill=fur)
        hx = x1 - w * 0.12 if f > 0 else x0 + w * 0.12
        p.circle(hx, y0 + hgt * 0.25, hgt * 0.22, fill=fur)
        p.circle(hx + f * hgt * 0.12, y0 + hgt * 0.2, max(1.0, hgt * 0.04), fill=(10, 10, 10))
        tx = bx0 if f > 0 else bx1
        p.line([(tx, bt + hgt * 0.05), (tx - f * w * 0.12, y0 + hgt * 0.05)], fur, max(2, w * 0.05))
        return bt
    raise ValueError(kind)


def _occluder(p_img: ImageDraw.ImageDraw, rng, s):
    """A foreground bush / rock / post partly covering the scene (drawn last, not annotated)."""
    kind = rng.integers(3)
    cx, base = rng.uniform(0, s), rng.uniform(0.85, 1.05) * s
    if kind == 0:
        c = _jit(rng, (40, 120, 40), 30)
        for _ in range(rng.integers(3, 6)):
            r = rng.uniform(0.05, 0.1) * s
            x, y = cx + rng.uniform(-0.1, 0.1) * s, base - rng.uniform(0, 0.12) * s
            p_img.ellipse([x - r, y - r, x + r, y + r], fill=_jit(rng, c, 20))
    elif kind == 1:
        c = _jit(rng, (120, 120, 120), 40)
        r = rng.uniform(0.06, 0.12) * s
        p_img.ellipse([cx - 1.4 * r, base - r, cx + 1.4 * r, base + r], fill=c)
    else:
        c = _col(rng, 60, 200)
        w = rng.uniform(0.02, 0.05) * s
        p_img.rectangle([cx - w, base - rng.uniform(0.25, 0.5) * s, cx + w, s], fill=c)


# ----------------------------------------------------------------------------------------------
# Scenes
# ----------------------------------------------------------------------------------------------
def _pick_combination(rng, unseen: bool) -> tuple[str, str]:
    if unseen:
        return UNSEEN_COMBINATIONS[rng.integers(len(UNSEEN_COMBINATIONS))]
    seen = seen_combinations()
    verb = VERBS[rng.integers(len(VERBS))]
    objs = seen[verb]
    return verb, objs[rng.integers(len(objs))]


def _pick_pretraining_combination(rng) -> tuple[str, str]:
    verb = PRETRAINING_VERBS[rng.integers(len(PRETRAINING_VERBS))]
    objs = PRETRAINING_COMBINATIONS[verb]
    return verb, objs[rng.integers(len(objs))]


def render_scene(seed_seq: tuple, s: int, max_people: int, unseen: bool, pretraining: bool = False):
    """Render one image. Returns (PIL image, objects [(name, box)], relations [(sub, obj, verb)]).

    ``pretraining`` draws a scene of the pre-training sets (relation set, caption set): every valid
    combination of :data:`PRETRAINING_COMBINATIONS` (the downstream held-out ones included, as they are
    only unseen in the downstream training data), people of a two-person scene sharing their verb and
    object kind half of the time, and sometimes an object resting ``on`` another one in the background.
    """
    rng = np.random.default_rng(list(seed_seq))
    img, horizon = _background(rng, s)
    painter = _Painter(img)
    n_people = 1 if max_people <= 1 or rng.random() < 0.6 else int(rng.integers(2, max_people + 1))
    slot_w = s / n_people
    objects: list[tuple[str, list[float]]] = []
    relations: list[tuple[int, int, str]] = []
    if pretraining and rng.random() < STACK_PROBABILITY:
        ents, rels = _render_stack(painter, rng, s, horizon)
        objects.extend(ents)
        relations.extend(rels)
    unseen_slot = int(rng.integers(n_people)) if unseen else -1
    plans = []
    shared = pretraining and n_people > 1 and rng.random() < 0.5
    for k in range(n_people):
        if pretraining:
            verb, obj = plans[0][:2] if shared and plans else _pick_pretraining_combination(rng)
        else:
            verb, obj = _pick_combination(rng, k == unseen_slot)
        h = s * (rng.uniform(0.42, 0.58) if n_people == 1 else rng.uniform(0.32, 0.45))
        ground = rng.uniform(max(horizon + 0.3 * h, 0.78 * s), 0.96 * s)
        plans.append((verb, obj, h, ground))
    # draw back to front: farther (smaller ground y) first
    order = sorted(range(n_people), key=lambda k: plans[k][3])
    drawn: dict[int, list] = {}
    for k in order:
        verb, obj, h, ground = plans[k]
        slot0 = k * slot_w
        # with several people, distant objects (look at / no interaction) go to the outer side, so that
        # no one faces another group's object without a label
        outer = None if n_people == 1 else (-1 if k == 0 else 1 if k == n_people - 1 else None)
        ents, rels = _render_interaction(painter, rng, verb, obj, h, ground, slot0, slot_w, s, outer)
        drawn[k] = (ents, rels)
    # distractor object without relations
    if rng.random() < 0.15:
        kind = _ALL_OBJ[rng.integers(len(_ALL_OBJ))]
        h = s * rng.uniform(0.25, 0.35)
        w, hh = _object_size(kind, h, rng)
        cx = rng.uniform(w / 2, s - w / 2)
        bottom = rng.uniform(horizon + 0.05 * s, horizon + 0.2 * s) if kind != "kite" else rng.uniform(0.1 * s, horizon)
        painter.begin()
        _draw_object(painter, kind, cx, bottom, w, hh, 0, rng)
        box = painter.end()
        extra = [(kind, box)] if box is not None and (box[2] - box[0]) > 2 and (box[3] - box[1]) > 2 else []
    else:
        extra = []
    for _ in range(rng.integers(0, 3) if rng.random() < 0.35 else 0):
        _occluder(painter.draw, rng, s)
    for k in range(n_people):
        ents, rels = drawn[k]
        base = len(objects)
        objects.extend(ents)
        relations.extend((base + a, base + b, v) for a, b, v in rels)
    objects.extend(extra)
    return img, objects, relations


def _render_interaction(p: _Painter, rng, verb, obj, h, ground, slot0, slot_w, s, outer_side=None):
    """Draw one person and one object in ``verb`` relation inside the slot [slot0, slot0 + slot_w)."""
    w, oh = _object_size(obj, h, rng)
    side = 1 if rng.random() < 0.5 else -1  # where the object is relative to the person
    if outer_side is not None and verb in ("look at", "no interaction"):
        side = outer_side
    verbs = [verb]
    margin = 0.12 * h
    lo, hi = slot0 + margin, slot0 + slot_w - margin

    def px_for(span_left, span_right):
        # choose person x so that [x - span_left, x + span_right] fits the slot (as far as possible)
        a, b = lo + span_left, hi - span_right
        return rng.uniform(a, b) if b > a else (lo + hi) / 2 + (span_left - span_right) / 2

    if verb in ("ride", "sit on"):
        facing = side
        if verb == "ride":
            x = px_for(w / 2, w / 2)
            person = _Person(x, ground, h, facing, rng)
            ocx = x - facing * 0.05 * w
        else:
            x = px_for(max(w / 2, 0.1 * h), 0.35 * h)
            person = _Person(x, ground, h, facing, rng)
            ocx = x - facing * 0.05 * w
        p.begin()
        seat = _draw_object(p, obj, ocx, ground, w, oh, facing, rng)
        obox = p.end()
        if verb == "ride":
            person.straddle(seat + 0.02 * h, w, ground)
        else:
            person.sit(seat, ground)
        p.begin()
        person.draw(p)
        pbox = p.end()
    elif verb == "hold":
        toward = rng.random() < 0.6
        facing = side if toward else 0
        if obj == "umbrella":
            x = px_for(w / 2, w / 2)
            person = _Person(x, ground, h, facing, rng)
            hand_y = person.arms_up()
            # one arm up holding the stick, the other down
            person.arms[0 if side > 0 else 1] = person._arm_down(-side)
            ocx, obot = x + side * 0.05 * h, hand_y + 0.1 * h
        else:
            x = px_for(0.25 * h if side > 0 else 0.45 * h + w, 0.45 * h + w if side > 0 else 0.25 * h)
            person = _Person(x, ground, h, facing, rng)
            # looking at the held object: raised to face height; otherwise held low, face to the viewer
            dy = rng.uniform(-0.13, -0.07) if toward else rng.uniform(0.08, 0.16)
            hand = person.hand_reach(side, dy=dy)
            ocx, obot = hand[0] + side * w * 0.3, hand[1] + oh * 0.5
        p.begin()
        person.draw(p)
        pbox = p.end()
        p.begin()
        _draw_object(p, obj, ocx, obot, w, oh, side, rng)
        obox = p.end()
        if toward and obj != "umbrella":
            verbs.append("look at")
    elif verb == "carry":
        x = px_for(max(w / 2, 0.25 * h), max(w / 2, 0.25 * h))
        person = _Person(x, ground, h, 0 if rng.random() < 0.5 else side, rng)
        hand_y = person.arms_up()
        p.begin()
        person.draw(p)
        pbox = p.end()
        p.begin()
        _draw_object(p, obj, x, hand_y + 0.02 * h, w, oh, side, rng)
        obox = p.end()
    elif verb == "kick":
        toward = rng.random() < 0.6
        x = px_for(0.25 * h if side > 0 else 0.45 * h + w, 0.45 * h + w if side > 0 else 0.25 * h)
        person = _Person(x, ground, h, side if toward else 0, rng)
        foot = person.kick(side)
        p.begin()
        person.draw(p)
        pbox = p.end()
        p.begin()
        _draw_object(p, obj, foot[0] + side * w * 0.5, ground, w, oh, side, rng)
        obox = p.end()
    elif verb in ("look at", "no interaction"):
        dist = rng.uniform(0.55, 0.9) * h + w / 2
        x = px_for(0.25 * h if side > 0 else dist + w / 2, dist + w / 2 if side > 0 else 0.25 * h)
        # no interaction: face away from the object, or (with other people around) the viewer
        facing = side if verb == "look at" else (-side if outer_side is None else 0)
        person = _Person(x, ground, h, facing, rng)
        if verb == "look at":
            person.point(side)
        if obj == "kite":
            obot = ground - h * rng.uniform(0.6, 1.0)
        else:
            obot = ground - rng.uniform(0, 0.08) * h
        p.begin()
        _draw_object(p, obj, x + side * dist, obot, w, oh, facing, rng)
        obox = p.end()
        p.begin()
        person.draw(p)
        pbox = p.end()
    elif verb == "next to":
        gap = rng.uniform(0.05, 0.15) * h
        off = 0.18 * h + gap + w / 2
        x = px_for(0.25 * h if side > 0 else off + w / 2, off + w / 2 if side > 0 else 0.25 * h)
        person = _Person(x, ground, h, 0, rng)
        p.begin()
        _draw_object(p, obj, x + side * off, ground, w, oh, side, rng)
        obox = p.end()
        p.begin()
        person.draw(p)
        pbox = p.end()
    elif verb == "push":
        x = px_for(0.25 * h if side > 0 else 0.6 * h + w, 0.6 * h + w if side > 0 else 0.25 * h)
        person = _Person(x, ground, h, side, rng)
        hand = person.push(side)
        p.begin()
        _draw_object(p, obj, hand[0] + side * w * 0.45, ground, w, oh, side, rng)
        obox = p.end()
        p.begin()
        person.draw(p)
        pbox = p.end()
    elif verb == "throw":
        x = px_for(0.25 * h if side > 0 else 0.45 * h + w, 0.45 * h + w if side > 0 else 0.25 * h)
        person = _Person(x, ground, h, side, rng)
        hand = person.throw(side)
        gap = rng.uniform(0.04, 0.1) * h
        p.begin()
        person.draw(p)
        pbox = p.end()
        p.begin()
        _draw_object(p, obj, hand[0] + side * (w / 2 + gap), hand[1] - 0.02 * h, w, oh, side, rng)
        obox = p.end()
    elif verb == "stand on":
        h = 0.85 * h  # a smaller person, so that person and object fit the image
        x = px_for(max(w / 2, 0.2 * h), max(w / 2, 0.2 * h))
        p.begin()
        top = _draw_object(p, obj, x, ground, w, oh, side, rng)
        obox = p.end()
        person = _Person(x + rng.uniform(-0.1, 0.1) * w, top + 0.01 * h, h, 0 if rng.random() < 0.5 else side, rng)
        p.begin()
        person.draw(p)
        pbox = p.end()
    elif verb == "walk":
        dist = rng.uniform(0.3, 0.45) * h + w / 2
        x = px_for(0.25 * h if side > 0 else dist + w / 2, dist + w / 2 if side > 0 else 0.25 * h)
        person = _Person(x, ground, h, side, rng)
        hand = person.hand_reach(side, dy=rng.uniform(0.12, 0.2))
        ocx = x + side * dist
        p.begin()
        _draw_object(p, obj, ocx, ground, w, oh, side, rng)
        obox = p.end()
        p.begin()
        person.draw(p)
        pbox = p.end()
        if obox is not None:  # the lead (not part of either box) from the hand to the animal's neck
            neck = (ocx + side * 0.3 * w, obox[1] + 0.3 * (obox[3] - obox[1]))
            p.draw.line([hand, neck], fill=(30, 30, 30), width=max(1, int(round(0.02 * h))))
    else:
        raise ValueError(verb)
    ents, rels = [], []
    if pbox is None or obox is None or min(obox[2] - obox[0], obox[3] - obox[1]) < 2:
        return ents, rels  # the object fell outside the image: no annotation for this group
    ents = [("person", pbox), (obj, obox)]
    rels = [(0, 1, v) for v in verbs]
    return ents, rels


def _render_stack(p: _Painter, rng, s, horizon):
    """An object resting ``on`` another one, small, in the background (drawn before the people).

    Returns ``([(bottom name, box), (top name, box)], [(1, 0, "on")])``, or empty lists when a box is degenerate.
    """
    top_kind, bottom_kind = STACKS[rng.integers(len(STACKS))]
    h = s * rng.uniform(0.3, 0.4)  # sizes as beside a person of this height
    bw, bh = _object_size(bottom_kind, h, rng)
    tw, th = _object_size(top_kind, h, rng)
    cx = rng.uniform(bw / 2, s - bw / 2)
    ground = rng.uniform(horizon + 0.08 * s, horizon + 0.22 * s)
    p.begin()
    seat = _draw_object(p, bottom_kind, cx, ground, bw, bh, 0, rng)
    bbox = p.end()
    p.begin()
    _draw_object(p, top_kind, cx + rng.uniform(-0.2, 0.2) * (bw - tw), seat + 0.01 * h, tw, th, 0, rng)
    tbox = p.end()
    boxes = (bbox, tbox)
    if any(b is None or min(b[2] - b[0], b[3] - b[1]) < 2 for b in boxes):
        return [], []
    return [(bottom_kind, bbox), (top_kind, tbox)], [(1, 0, "on")]


# ----------------------------------------------------------------------------------------------
# World generation
# ----------------------------------------------------------------------------------------------
_SPLIT_IDS = {"train": 1, "test": 2, "vg": 3, "coco": 4}
# the caption set's files under annotations/ (``hidden/``: never read by training, only to score pseudo-labels)
COCO_FILES = {
    "detections": "coco_instances.json",
    "captions": "coco_captions.json",
    "paraphrases": "coco_paraphrases.json",
    "true_relations": "hidden/coco_true_relations.json",
    "predicate_texts": "hidden/predicate_texts.json",
}


def _image_file_name(split: str, index: int) -> str:
    if split == "vg":
        return f"{index + 1}.jpg"
    if split == "coco":
        return f"{index + 1:012d}.jpg"
    return f"synthetic_{split}_{index:06d}.jpg"


def _render_job(args):
    split, index, cfg, out_dir = args
    rng = np.random.default_rng([cfg.seed, _SPLIT_IDS[split], index, 7])
    unseen = split == "test" and rng.random() < cfg.unseen_fraction
    pretraining = cfg.pretraining_sets and split in ("vg", "coco")
    people = cfg.pretraining_max_people if pretraining else cfg.max_people
    img, objects, relations = render_scene(
        (cfg.seed, _SPLIT_IDS[split], index), cfg.image_size, people, unseen, pretraining=pretraining
    )
    fname = _image_file_name(split, index)
    img.save(os.path.join(out_dir, fname), quality=cfg.jpeg_quality)
    captions = None
    if split == "coco":
        from .synthetic_captions import captions_for_image

        cap_rng = np.random.default_rng([cfg.seed, _SPLIT_IDS[split], index, 11])
        captions = captions_for_image(objects, relations, cap_rng, cfg.captions_per_image)
    return split, index, fname, objects, relations, captions


def _hico_entry(fname, objects, relations, s):
    return {
        "file_name": fname,
        "height": s,
        "width": s,
        "annotations": [
            {"bbox": [round(v, 1) for v in box], "category_id": OBJECTS.index(n) + 1} for n, box in objects
        ],
        "hoi_annotation": [
            {"subject_id": a, "object_id": b, "category_id": VERBS.index(v) + 1} for a, b, v in relations
        ],
    }


def _vg_entry(image_id, objects, relations, s, keep_no_interaction=False):
    objs = [
        {
            "object_id": image_id * 100 + k,
            "x": round(b[0], 1),
            "y": round(b[1], 1),
            "w": round(b[2] - b[0], 1),
            "h": round(b[3] - b[1], 1),
            "names": n,
        }
        for k, (n, b) in enumerate(objects)
    ]
    rels = [
        {
            "relationship_id": image_id * 100 + k,
            "predicate": v,
            "subject_id": image_id * 100 + a,
            "object_id": image_id * 100 + b,
        }
        for k, (a, b, v) in enumerate(relations)
        if keep_no_interaction or v != "no interaction"
    ]
    return {"image_id": image_id, "width": s, "height": s, "objects": objs, "relationships": rels}


def _coco_detection_file(images: list[tuple[int, str, list]], s: int) -> dict:
    """COCO-format detections of the caption set: ``images``, ``annotations`` (xywh boxes), ``categories``."""
    out_images, annotations = [], []
    for image_id, fname, objects in images:
        out_images.append({"id": image_id, "file_name": fname, "width": s, "height": s})
        for name, (x1, y1, x2, y2) in objects:
            w, h = round(x2 - x1, 1), round(y2 - y1, 1)
            annotations.append({
                "id": len(annotations) + 1, "image_id": image_id, "category_id": OBJECTS.index(name) + 1,
                "bbox": [round(x1, 1), round(y1, 1), w, h], "area": round(w * h, 1), "iscrowd": 0,
            })
    categories = [{"id": k + 1, "name": n} for k, n in enumerate(OBJECTS)]
    return {"images": out_images, "annotations": annotations, "categories": categories}


def _write_json(path, obj):
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(obj, f)
    os.replace(tmp, path)


def generate_world(out_dir: str, config: SyntheticWorldConfig = SyntheticWorldConfig(), num_workers: int | None = None):
    """Write a synthetic world into ``out_dir`` (created; must not exist yet). Returns timing stats."""
    t0 = time.perf_counter()
    cfg = config
    s = cfg.image_size
    ann_dir = os.path.join(out_dir, "annotations")
    sizes = [("train", cfg.num_train), ("test", cfg.num_test), ("vg", cfg.num_vg)]
    if cfg.pretraining_sets:
        sizes.append(("coco", cfg.num_coco))
    for d, _ in sizes:
        os.makedirs(os.path.join(out_dir, "images", d), exist_ok=True)
    os.makedirs(ann_dir, exist_ok=True)
    jobs = [(split, i, cfg, os.path.join(out_dir, "images", split)) for split, n in sizes for i in range(n)]
    if num_workers is None:
        num_workers = min(os.cpu_count() or 1, 8)
    if num_workers > 1 and len(jobs) >= 64:
        ctx = mp.get_context("fork") if "fork" in mp.get_all_start_methods() else mp.get_context()
        with ctx.Pool(num_workers) as pool:
            results = list(pool.imap(_render_job, jobs, chunksize=32))
    else:
        results = [_render_job(j) for j in jobs]
    train, test, vg, coco = [], [], [], []
    for split, index, fname, objects, relations, captions in results:
        if split == "train":
            train.append(_hico_entry(fname, objects, relations, s))
        elif split == "test":
            test.append(_hico_entry(fname, objects, relations, s))
        elif split == "vg":
            vg.append(_vg_entry(index + 1, objects, relations, s))
        else:
            coco.append((index + 1, fname, objects, relations, captions))
    held = {(VERBS.index(v) + 1, OBJECTS.index(o) + 1) for v, o in UNSEEN_COMBINATIONS}

    def has_unseen(e):
        return any(
            (r["category_id"], e["annotations"][r["object_id"]]["category_id"]) in held for r in e["hoi_annotation"]
        )

    assert not any(has_unseen(e) for e in train), "held-out combination leaked into training"
    test_unseen = [e for e in test if has_unseen(e)]
    _write_json(os.path.join(ann_dir, "trainval_hoi.json"), train)
    _write_json(os.path.join(ann_dir, "test_hoi.json"), test)
    _write_json(os.path.join(ann_dir, "test_unseen_hoi.json"), test_unseen)
    _write_json(os.path.join(ann_dir, "vg_scene_graphs.json"), vg)
    if cfg.pretraining_sets:
        _write_caption_set(ann_dir, coco, s)
    _write_json(os.path.join(ann_dir, "object_names.json"), {n: k + 1 for k, n in enumerate(OBJECTS)})
    with open(os.path.join(ann_dir, "verb_names.txt"), "w", encoding="utf-8") as f:
        f.write("\n".join(f"{k + 1:03d}  {v.replace(' ', '_')}" for k, v in enumerate(VERBS)))
    np.save(os.path.join(ann_dir, "corre_mat.npy"), correct_mat())
    stats = {
        "config": asdict(cfg),
        "version": WORLD_VERSION,
        "seconds": round(time.perf_counter() - t0, 2),
        "num_images": len(results),
        "num_test_unseen": len(test_unseen),
        "unseen_combinations": [list(c) for c in UNSEEN_COMBINATIONS],
    }
    _write_json(os.path.join(ann_dir, "world.json"), stats)
    return stats


def _write_caption_set(ann_dir: str, coco: list, s: int) -> None:
    """The caption set's files: COCO detections, captions, the matcher's paraphrase lists, and (aside, under
    ``hidden/``) the true relations with the relation texts that express them."""
    from .datasets.common import load_json
    from .synthetic_captions import PREDICATE_TEXTS, caption_paraphrases

    _write_json(os.path.join(ann_dir, COCO_FILES["detections"]),
                _coco_detection_file([(i, f, objs) for i, f, objs, _, _ in coco], s))
    _write_json(os.path.join(ann_dir, COCO_FILES["captions"]), {str(i): caps for i, _, _, _, caps in coco})
    official = load_json(os.path.join(os.path.dirname(__file__), "metadata", "hico_obj_paraphrase.json"))
    _write_json(os.path.join(ann_dir, COCO_FILES["paraphrases"]), caption_paraphrases(official))
    os.makedirs(os.path.join(ann_dir, "hidden"), exist_ok=True)
    truth = [dict(_vg_entry(i, objs, rels, s, keep_no_interaction=True), file_name=f) for i, f, objs, rels, _ in coco]
    _write_json(os.path.join(ann_dir, COCO_FILES["true_relations"]), truth)
    _write_json(os.path.join(ann_dir, COCO_FILES["predicate_texts"]), PREDICATE_TEXTS)


def world_dir(root: str, config: SyntheticWorldConfig) -> str:
    return os.path.join(root, config.tag)


def caption_set_files(config: SyntheticWorldConfig, root: str | None = None) -> dict[str, str]:
    """Paths of the caption set of ``config`` (generated or not): ``images`` and the :data:`COCO_FILES`
    keys (``detections``, ``captions``, ``paraphrases``, ``true_relations``, ``predicate_texts``)."""
    if not config.pretraining_sets:
        raise ValueError("this world has no caption set: SyntheticWorldConfig(pretraining_sets=True, num_coco=N)")
    d = world_dir(root or default_root(), config)
    out = {k: os.path.join(d, "annotations", v) for k, v in COCO_FILES.items()}
    out["images"] = os.path.join(d, "images", "coco")
    return out


def default_root() -> str:
    """``$RLIPV2_SYNTHETIC_ROOT``, else ``$DETECTRON2_DATASETS/synthetic_relations``."""
    from .datasets.common import datasets_root

    return os.getenv("RLIPV2_SYNTHETIC_ROOT") or os.path.join(datasets_root(), "synthetic_relations")


def ensure_world(
    root: str | None = None, config: SyntheticWorldConfig = SyntheticWorldConfig(), num_workers: int | None = None
) -> str:
    """Return the world's folder, generating it first if it is not cached yet (safe across processes)."""
    root = root or default_root()
    final = world_dir(root, config)
    marker = os.path.join(final, "annotations", "world.json")
    if os.path.exists(marker):
        return final
    os.makedirs(root, exist_ok=True)
    lock_path = os.path.join(root, f".{config.tag}.lock")
    with open(lock_path, "w") as lock:
        with contextlib.suppress(ImportError):
            import fcntl

            fcntl.flock(lock, fcntl.LOCK_EX)
        if not os.path.exists(marker):
            tmp = os.path.join(root, f".tmp-{config.tag}-{os.getpid()}")
            shutil.rmtree(tmp, ignore_errors=True)
            logger.info("Generating the synthetic relation world %s under %s ...", config.tag, root)
            stats = generate_world(tmp, config, num_workers=num_workers)
            shutil.rmtree(final, ignore_errors=True)
            os.replace(tmp, final)
            logger.info("Synthetic world: %d images in %.1f s", stats["num_images"], stats["seconds"])
    return final


# ----------------------------------------------------------------------------------------------
# Registration
# ----------------------------------------------------------------------------------------------
def _entries(root, config, fname):
    d = ensure_world(root, config)
    with open(os.path.join(d, "annotations", fname), encoding="utf-8") as f:
        return json.load(f)


def _few_shot(root, config, fraction, seed):
    from .splits import few_shot_entries

    return few_shot_entries(_entries(root, config, "trainval_hoi.json"), fraction, seed)


def _rare(root, config, which):
    from .datasets.common import ProblemSink, rare_triplets_from_counts
    from .datasets.hoi_format import load_hoi_json

    entries = _entries(root, config, "trainval_hoi.json")
    dicts = load_hoi_json(
        "trainval_hoi.json",
        "",
        object_id_map={k + 1: k for k in range(len(OBJECTS))},
        predicate_id_map={k + 1: k for k in range(len(VERBS))},
        read_sizes=False,
        sink=ProblemSink("collect"),
        entries=entries,
    )
    return rare_triplets_from_counts(dicts)[which]


FEW_SHOT_FRACTIONS = {"1pct": 0.01, "10pct": 0.10}


def register_synthetic_world(
    root: str | None = None, config: SyntheticWorldConfig | None = None, prefix: str = "synthetic",
    split_seed: int = 0,
) -> dict[str, str]:
    """Register ``{prefix}_hoi_train``, ``_hoi_train_1pct``, ``_hoi_train_10pct``, ``_hoi_test``,
    ``_hoi_test_unseen`` and ``_vg_train`` (lazily).

    The few-shot training sets are seeded random subsets of the training images
    (:func:`rlipv2.data.splits.few_shot_entries`, seed ``split_seed``). The world is generated under
    ``root`` (default :func:`default_root`) on first use; ``config`` defaults to
    :meth:`SyntheticWorldConfig.from_env`. Returns {name: json file}.
    """
    config = config if config is not None else SyntheticWorldConfig.from_env()
    from .datasets.hico import register_hico_format
    from .datasets.visual_genome import register_vg_format

    root = root or default_root()
    wdir = world_dir(root, config)
    ann = os.path.join(wdir, "annotations")
    common = dict(
        thing_classes=list(OBJECTS),
        thing_dataset_id_to_contiguous_id={k + 1: k for k in range(len(OBJECTS))},
        predicate_classes=list(VERBS),
        predicate_dataset_id_to_contiguous_id={k + 1: k for k in range(len(VERBS))},
        correct_mat=correct_mat(),
        zero_shot_unseen_triplets=unseen_triplets(),
        subject_class=0,
        synthetic_world=config.tag,
    )
    names = {}
    for suffix, fname, split in (
        ("hoi_train", "trainval_hoi.json", "train"),
        ("hoi_test", "test_hoi.json", "test"),
        ("hoi_test_unseen", "test_unseen_hoi.json", "test"),
    ):
        name = f"{prefix}_{suffix}"
        extra = {}
        # test sets: the official zero-shot convention, unseen combinations in the "rare" slot and seen
        # ones in "non-rare" (no seen combination is rare in training), so an evaluator reports
        # Unseen / Seen / Full
        if suffix != "hoi_train":
            uns = unseen_triplets()
            cm = correct_mat()
            extra = dict(
                rare_triplets=uns,
                nonrare_triplets=[
                    (v, o) for v in range(len(VERBS)) for o in range(len(OBJECTS)) if cm[v, o] and (v, o) not in uns
                ],
                rare_slot="zero_shot_unseen",
            )
        md = register_hico_format(
            name,
            os.path.join(ann, fname),
            os.path.join(wdir, "images", split),
            entries_fn=functools.partial(_entries, root, config, fname),
            **dict(common),
            **extra,
        )
        if suffix == "hoi_train":  # training counts (< 10)
            md.set_lazy(
                rare_triplets=functools.partial(_rare, root, config, 0),
                nonrare_triplets=functools.partial(_rare, root, config, 1),
            )
        names[name] = os.path.join(ann, fname)
    for suffix, fraction in FEW_SHOT_FRACTIONS.items():
        name = f"{prefix}_hoi_train_{suffix}"
        md = register_hico_format(
            name,
            os.path.join(ann, "trainval_hoi.json"),
            os.path.join(wdir, "images", "train"),
            entries_fn=functools.partial(_few_shot, root, config, fraction, split_seed),
            few_shot_fraction=fraction,
            split_seed=split_seed,
            **dict(common),
        )
        md.set_lazy(
            rare_triplets=functools.partial(_rare, root, config, 0),
            nonrare_triplets=functools.partial(_rare, root, config, 1),
        )
        names[name] = os.path.join(ann, "trainval_hoi.json")
    name = f"{prefix}_vg_train"
    register_vg_format(
        name,
        os.path.join(ann, "vg_scene_graphs.json"),
        os.path.join(wdir, "images", "vg"),
        prepare=functools.partial(ensure_world, root, config),
        synthetic_world=config.tag,
    )
    names[name] = os.path.join(ann, "vg_scene_graphs.json")
    return names


def main(argv=None) -> int:
    """``python -m rlipv2.data.synthetic [--root DIR] [--seed N] [--image-size PX] [--num-train N] ...``:
    generate (or find cached) a synthetic world and print its folder and generation time."""
    import argparse

    from ..utils.cli import nonnegative_int, positive_int

    d = SyntheticWorldConfig()
    ap = argparse.ArgumentParser(prog="python -m rlipv2.data.synthetic", description=main.__doc__.split("\n")[0])
    ap.add_argument("--root", default=None, help="cache root (default $DETECTRON2_DATASETS/synthetic_relations)")
    ap.add_argument("--seed", type=nonnegative_int, default=d.seed)
    ap.add_argument("--image-size", type=positive_int, default=d.image_size)
    ap.add_argument("--num-train", type=positive_int, default=d.num_train)
    ap.add_argument("--num-test", type=positive_int, default=d.num_test)
    ap.add_argument("--num-vg", type=nonnegative_int, default=d.num_vg, help="images of the VG-format relation set")
    ap.add_argument("--max-people", type=positive_int, default=d.max_people, help="people per image of the HOI splits")
    ap.add_argument("--pretraining-sets", action="store_true",
                    help="relation set with the pre-training relation types, plus the caption set")
    ap.add_argument("--num-coco", type=nonnegative_int, default=d.num_coco, help="images of the caption set")
    ap.add_argument("--workers", type=positive_int, default=None)
    args = ap.parse_args(argv)
    cfg = SyntheticWorldConfig(
        seed=args.seed, image_size=args.image_size, num_train=args.num_train, num_test=args.num_test,
        num_vg=args.num_vg, max_people=args.max_people, pretraining_sets=args.pretraining_sets,
        num_coco=args.num_coco,
    )
    t0 = time.perf_counter()
    folder = ensure_world(args.root, cfg, num_workers=args.workers)
    with open(os.path.join(folder, "annotations", "world.json"), encoding="utf-8") as f:
        stats = json.load(f)
    print(
        f"{folder}\n{stats['num_images']} images; generated in {stats['seconds']:.1f} s "
        f"(this call {time.perf_counter() - t0:.1f} s); {stats['num_test_unseen']} test images with held-out "
        f"combinations {stats['unseen_combinations']}"
    )
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main())
