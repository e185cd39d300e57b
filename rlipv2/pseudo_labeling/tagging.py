"""Stage 4: scoring candidate (pair, relation text) combinations with a relation tagger.

RLIPv2 tags with the R-Tagger (a ParSeD model given the ground-truth pairs as queries). For each image,
candidate groups (<= 100 ordered pairs each) are scored against the label sequence
``object texts + ["no objects"] + relation texts``; up to 16 groups go through one forward pass, sharing
the de-duplicated union of their relation texts; every (pair, text) with sigmoid score > 0.05 is kept.

Interfaces:

- :class:`RelationTagger`: ``tag(image, boxes, box_labels, object_texts, group_pairs, relation_texts)``
  returns one score matrix (pairs x relation texts, in [0, 1]) per group. Anything that implements it
  can be registered in ``RELATION_TAGGER_REGISTRY`` and selected with ``tools/pseudo_label.py --tagger``.
- :class:`ModuleRelationTagger`: adapter from an ``nn.Module`` with the batched forward contract below to
  ``RelationTagger`` (resizing, batching, sigmoid, no_grad). The R-Tagger model
  (:class:`rlipv2.modeling.RTagger`, ``configs/common/models/rtagger_r50.py``) implements that contract in
  eval mode; ``LazyConfigTagger`` builds it from its config and checkpoint.
- :class:`RandomRelationTagger`: a tiny deterministic, untrained module for tests and demos.

Module forward contract (``ModuleRelationTagger``): ``module(batched_inputs) -> list[Tensor]`` with one dict
per group::

    {"image": uint8 (3, h, w) RGB, resized (shortest edge 800, longest <= 1333 by default),
     "height": int, "width": int,              # original image size
     "sub_boxes": float (P, 4), "obj_boxes": float (P, 4),   # xyxy, resized-image pixels
     "sub_labels": int64 (P,), "obj_labels": int64 (P,),     # indices into "texts"
     "texts": list[str],                       # object texts + ["no objects"] + relation texts
     "num_object_texts": int}                  # len(object texts) + 1
    -> logits float (P, len(texts) - num_object_texts) per group
"""
from __future__ import annotations

import zlib
from abc import ABC, abstractmethod
from typing import Sequence

import torch
from detectron2.utils.registry import Registry
from torch import nn

__all__ = [
    "RELATION_TAGGER_REGISTRY",
    "RelationTagger",
    "ModuleRelationTagger",
    "RandomRelationTagger",
    "build_relation_tagger",
    "tag_image",
    "SCORE_THRESHOLD",
    "GROUPS_PER_BATCH",
]

SCORE_THRESHOLD = 0.05
GROUPS_PER_BATCH = 16
NO_OBJECT_TEXT = "no objects"

RELATION_TAGGER_REGISTRY = Registry("RELATION_TAGGER")
RELATION_TAGGER_REGISTRY.__doc__ = """Relation taggers (`RelationTagger` subclasses) built by name with keyword args."""


class RelationTagger(ABC):
    """Scores candidate (subject box, object box) pairs against free-form relation texts."""

    #: whether ``tag`` needs the image pixels (False lets the pipeline skip image decoding)
    needs_images: bool = True

    @abstractmethod
    def tag(
        self,
        image: torch.Tensor | None,
        boxes: torch.Tensor,
        box_labels: torch.Tensor,
        object_texts: Sequence[str],
        group_pairs: Sequence[torch.Tensor],
        relation_texts: Sequence[str],
    ) -> list[torch.Tensor]:
        """Score the candidate pairs of one image.

        Args:
            image: uint8 (3, H, W) RGB at the original size.
            boxes: float (K, 4) ground-truth boxes, xyxy in original pixels.
            box_labels: int64 (K,) index of each box's label in ``object_texts``.
            object_texts: the object vocabulary (e.g. the 80 COCO names).
            group_pairs: one int64 (P_g, 2) tensor of (subject, object) box indices per group.
            relation_texts: the relation texts scored for every group.
        Returns:
            one float (P_g, len(relation_texts)) tensor of scores in [0, 1] per group.
        """


def _resize_for_tagger(image: torch.Tensor, short: int, max_size: int) -> tuple[torch.Tensor, float, float]:
    h, w = image.shape[-2:]
    scale = short / min(h, w)
    if max(h, w) * scale > max_size:
        scale = max_size / max(h, w)
    nh, nw = max(1, int(round(h * scale))), max(1, int(round(w * scale)))
    if (nh, nw) == (h, w):
        return image, 1.0, 1.0
    resized = torch.nn.functional.interpolate(image[None].float(), size=(nh, nw), mode="bilinear",
                                              align_corners=False)[0]
    return resized.round().clamp(0, 255).to(torch.uint8), nw / w, nh / h


class ModuleRelationTagger(RelationTagger):
    """Adapter from a module following the batched forward contract (module docstring) to RelationTagger.

    Args:
        module: the tagger network; put in eval mode and moved to ``device``.
        device: where inputs are sent.
        min_size, max_size: test-time resize (shortest edge, longest-edge cap), 800/1333 as in RLIPv2.
        forward_method: the module method that implements the contract (``forward`` or e.g. ``tag``).
    """

    def __init__(self, module: nn.Module, device: str | torch.device = "cpu", min_size: int = 800,
                 max_size: int = 1333, forward_method: str = "forward"):
        self.module = module.eval().to(device)
        self.device = torch.device(device)
        self.min_size = min_size
        self.max_size = max_size
        self._forward = module if forward_method == "forward" else getattr(module, forward_method)

    @torch.no_grad()
    def tag(self, image, boxes, box_labels, object_texts, group_pairs, relation_texts):
        if image is None:
            raise ValueError("ModuleRelationTagger needs the image")
        h, w = image.shape[-2:]
        resized, sx, sy = _resize_for_tagger(image, self.min_size, self.max_size)
        scale = torch.tensor([sx, sy, sx, sy], dtype=torch.float32)
        boxes_r = boxes.float() * scale
        texts = list(object_texts) + [NO_OBJECT_TEXT] + list(relation_texts)
        resized = resized.to(self.device)
        batched = []
        for pairs in group_pairs:
            pairs = pairs.long().reshape(-1, 2)
            batched.append({
                "image": resized, "height": int(h), "width": int(w),
                "sub_boxes": boxes_r[pairs[:, 0]].to(self.device), "obj_boxes": boxes_r[pairs[:, 1]].to(self.device),
                "sub_labels": box_labels[pairs[:, 0]].long().to(self.device),
                "obj_labels": box_labels[pairs[:, 1]].long().to(self.device),
                "texts": texts, "num_object_texts": len(object_texts) + 1,
            })
        logits = self._forward(batched)
        out = []
        for lg, pairs in zip(logits, group_pairs):
            lg = lg.float().sigmoid().cpu()
            if lg.shape != (len(pairs), len(relation_texts)):
                raise ValueError(f"tagger module returned scores of shape {tuple(lg.shape)} for "
                                 f"{len(pairs)} pairs x {len(relation_texts)} relation texts")
            out.append(lg)
        return out


def _text_features(text: str, dim: int) -> torch.Tensor:
    """Deterministic bag of hashed character trigrams (stable across processes, unlike ``hash``)."""
    v = torch.zeros(dim)
    padded = f"  {text.lower()} "
    for i in range(len(padded) - 2):
        v[zlib.crc32(padded[i:i + 3].encode()) % dim] += 1.0
    return v / max(1.0, float(v.norm()))


class RandomRelationTagger(nn.Module):
    """A tiny untrained tagger for tests and demos: deterministic given ``seed``; follows the forward contract.

    Pair features (normalised subject/object boxes, image mean colour, label-text features) go through a
    seeded 2-layer MLP and are dot-multiplied with hashed relation-text features. Scores carry no meaning.
    """

    def __init__(self, dim: int = 32, seed: int = 0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.dim = dim
        self.fc1 = nn.Linear(8 + 3 + 2 * dim, 64)
        self.fc2 = nn.Linear(64, dim)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=g) * 0.5)

    def forward(self, batched_inputs: list[dict]) -> list[torch.Tensor]:
        outs = []
        for x in batched_inputs:
            img = x["image"]
            h, w = img.shape[-2:]
            norm = torch.tensor([w, h, w, h], dtype=torch.float32, device=img.device)
            color = img.float().mean(dim=(1, 2)) / 255.0
            texts = x["texts"]
            n_obj = x["num_object_texts"]
            tf = torch.stack([_text_features(t, self.dim) for t in texts]).to(img.device)
            p = x["sub_boxes"].shape[0]
            feats = torch.cat([
                x["sub_boxes"] / norm, x["obj_boxes"] / norm, color.expand(p, 3),
                tf[x["sub_labels"]], tf[x["obj_labels"]],
            ], dim=1)
            pair_emb = self.fc2(torch.relu(self.fc1(feats)))
            outs.append(pair_emb @ tf[n_obj:].T)
        return outs


@RELATION_TAGGER_REGISTRY.register()
class RandomTagger(ModuleRelationTagger):
    """``RandomRelationTagger`` behind the adapter; ``--tagger RandomTagger`` (tests, demos, dry runs)."""

    def __init__(self, device: str = "cpu", seed: int = 0, min_size: int = 64, max_size: int = 128, **_):
        super().__init__(RandomRelationTagger(seed=seed), device=device, min_size=min_size, max_size=max_size)


@RELATION_TAGGER_REGISTRY.register()
class LazyConfigTagger(ModuleRelationTagger):
    """A tagger network built from a LazyConfig file (``cfg.model``) and a checkpoint.

    This is how a trained R-Tagger is used: ``--tagger LazyConfigTagger --tagger-config <config.py>
    --tagger-weights <checkpoint.pth> [--tagger-opt forward_method=tag]``. The instantiated model (or its
    ``forward_method``) must follow the module forward contract in this module's docstring.

    Args:
        config_file: LazyConfig file whose ``model`` node builds the tagger.
        weights: checkpoint loaded safely with :class:`rlipv2.engine.RLIPv2Checkpointer` (``weights_only``
            loading; a pickle that would run code is refused). None: keep the initial weights.
        overrides: ``["key=value", ...]`` applied to the config before instantiation.
    """

    def __init__(self, config_file: str, weights: str | None = None, device: str = "cpu",
                 overrides: Sequence[str] = (), min_size: int = 800, max_size: int = 1333,
                 forward_method: str = "forward"):
        from detectron2.config import instantiate

        from rlipv2.config import load_config
        from rlipv2.engine.checkpoint import RLIPv2Checkpointer

        cfg = load_config(config_file, overrides)
        if "model" not in cfg:
            raise ValueError(f"{config_file}: the tagger config has no 'model' node")
        model = instantiate(cfg.model)
        if weights:
            RLIPv2Checkpointer(model).load(weights)
        super().__init__(model, device=device, min_size=min_size, max_size=max_size, forward_method=forward_method)


def build_relation_tagger(name: str, **kwargs) -> RelationTagger:
    """Build a registered tagger by name; ``kwargs`` go to its constructor (e.g. device, weights, config_file)."""
    return RELATION_TAGGER_REGISTRY.get(name)(**kwargs)


def tag_image(
    tagger: RelationTagger,
    image: torch.Tensor | None,
    boxes_xyxy: torch.Tensor,
    box_labels: torch.Tensor,
    object_texts: Sequence[str],
    groups: Sequence[Sequence],
    threshold: float = SCORE_THRESHOLD,
    groups_per_batch: int = GROUPS_PER_BATCH,
) -> list[list]:
    """Tag all candidate groups of one image; return ``[[subject, object, relation text, score], ...]``.

    ``groups`` are ``[pairs, relation_texts]`` from the matching stage. Up to ``groups_per_batch`` groups
    are scored together against the ordered union of their relation texts (as RLIPv2 does with its
    ``img_inference_batch`` of 16). Combinations scoring strictly above ``threshold`` are kept, in
    (group, pair, text) order.
    """
    kept = []
    for start in range(0, len(groups), groups_per_batch):
        batch = groups[start:start + groups_per_batch]
        texts = list(dict.fromkeys(t for _, g_texts in batch for t in g_texts))
        pair_tensors = [torch.as_tensor(pairs, dtype=torch.int64).reshape(-1, 2) for pairs, _ in batch]
        scores = tagger.tag(image, boxes_xyxy, box_labels, object_texts, pair_tensors, texts)
        if len(scores) != len(batch):
            raise ValueError(f"tagger returned {len(scores)} score matrices for {len(batch)} groups")
        for (pairs, _), sc in zip(batch, scores):
            for pi, ti in zip(*torch.nonzero(sc > threshold, as_tuple=True)):
                s, o = pairs[int(pi)]
                kept.append([int(s), int(o), texts[int(ti)], float(sc[pi, ti])])
    return kept
