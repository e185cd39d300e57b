"""The R-Tagger (relation tagger of RLIPv2's pseudo-labelling) as a Detectron2 meta-architecture.

Official ``--RLIP_ParSeD_v2 --verb_tagger`` (``models/hoi.py::RLIP_ParSeD``,
``models/ParSetransformer.py::RLIP_ParSeDTransformer_v2``): the ParSeD model (ALIF encoder with the element-wise
``GLIP`` gate, FFN 1024, dropout 0.1; plain Deformable-DETR decoders) whose entity queries are built from
GIVEN (subject, object) pairs instead of learned queries (:mod:`rlipv2.modeling.tagger_queries`): pair i is
subject slot i and object slot Q + i, and there is no matching (:class:`~rlipv2.modeling.criterion.TaggerCriterion`).

Inputs:

- training: mapped inputs (docs/interfaces.md, contract 2). Each image's relations become pair targets
  (:func:`~rlipv2.modeling.targets.build_pair_targets`, indices into the batch's label sequence); negative
  pairs fill the Q pair slots (:func:`~rlipv2.modeling.tagger_queries.tagger_pair_slots`); boxes and labels
  of the queries are noised. Returns the weighted losses.
- tagging (eval, the forward contract of :mod:`rlipv2.pseudo_labeling.tagging`): one dict per group with the
  resized ``image``, ``sub_boxes`` / ``obj_boxes`` (P, 4) xyxy in its pixels, ``sub_labels`` / ``obj_labels``
  indices into ``texts`` (object texts + ["no objects"] + relation texts) and ``num_object_texts``; returns
  one (P, R) tensor of relation logits per group (last decoder layer).
- eval with mapped inputs: the image's annotated pairs are scored against the fixed vocabulary; returns one
  dict per image with ``pairs`` (P, 2) instance indices and ``relation_scores`` (P, R) sigmoid scores.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from detectron2.config import configurable
from detectron2.modeling import META_ARCH_REGISTRY
from torch import nn

from ..tagger_queries import tagger_pair_slots, xyxy_to_normalized_cxcywh
from .rlipv2 import RLIPv2

__all__ = ["RTagger"]


@META_ARCH_REGISTRY.register()
class RTagger(RLIPv2):
    """R-Tagger: relation scores for given (subject box, object box) pairs against free-form relation texts.

    Args (besides those of :class:`~rlipv2.modeling.meta_arch.RLIPv2`; ``postprocessor`` is unused):
        decoder: :class:`~rlipv2.modeling.parsed_decoder.ParSeDDecoder` with ``learned_queries=False`` and
            ``verb_query_tgt_type="vanilla"``.
        queries: :class:`~rlipv2.modeling.tagger_queries.TaggerQueryGenerator` (``coord_proj``, ``verb_tgt``,
            noise settings).
        pair_seed: seed of the generator drawing negative pairs and sampled positives (None: torch's global RNG).
    """

    @configurable
    def __init__(self, *, queries: nn.Module, pair_seed: int | None = None, **kwargs):
        kwargs.setdefault("postprocessor", None)
        super().__init__(**kwargs)
        self.queries = queries
        if getattr(self.decoder, "query_embed", None) is not None:
            raise ValueError("RTagger needs a ParSeDDecoder(learned_queries=False): its queries come from the pairs")
        if self.decoder.num_queries != queries.num_queries:
            raise ValueError(f"decoder has {self.decoder.num_queries} queries, the query generator "
                             f"{queries.num_queries}")
        self._pair_generator = torch.Generator().manual_seed(pair_seed) if pair_seed is not None else None

    @property
    def num_pairs(self) -> int:
        return self.queries.num_pairs

    # ------------------------------------------------------------------ core
    def forward_tagger(self, images: torch.Tensor, mask: torch.Tensor, label_texts: Sequence[str],
                       num_object_labels: int, pairs: Sequence[dict]) -> dict:
        """The official tagger forward pass.

        Args:
            images (N, 3, H, W) normalised and padded; mask (N, H, W) True on padding.
            label_texts: object labels + ["no objects"] + relation labels; num_object_labels: their count.
            pairs: N dicts with ``sub_boxes``/``obj_boxes`` (P_i, 4) normalised cxcywh (of the unpadded image)
                and ``sub_labels``/``obj_labels`` (P_i,) entity-label indices; P_i <= Q.
        Returns:
            the raw output dict of :meth:`RLIPv2.forward_raw` (Q pair queries; query i = pair i), plus
            ``key_padding_mask`` (N, 2Q).
        """
        num_entity = num_object_labels + 1
        if not 0 < num_entity < len(label_texts):
            raise ValueError(f"num_object_labels={num_object_labels} does not fit a sequence of "
                             f"{len(label_texts)} labels (objects, 'no objects', relations)")
        n = images.shape[0]
        text = self.text_encoder(list(label_texts))
        lang = text[None].expand(n, -1, -1)
        lang_mask = None
        if self.text_mask_quirk and self.training:
            lang_mask = (~(text.sum(dim=-1) > 0))[None].expand(n, -1)
        feats = self.backbone(images)
        srcs = self.neck([feats[f] for f in self.in_features])
        masks = [F.interpolate(mask[None].float(), size=s.shape[-2:]).to(torch.bool)[0] for s in srcs]
        pos = [self.position_embedding(m).to(s.dtype) for m, s in zip(masks, srcs)]
        enc = self.encoder(srcs, masks, pos, lang, lang_mask)
        states = enc["lang_states"]
        # official: fused, resized label embeddings of the LAST fusion step, detached
        label_embeds = states[-1][:, :num_entity].detach()
        q = self.queries(label_embeds, pairs, num_object_labels, generator=self._pair_generator)
        dec = self.decoder(enc["memory"], enc["spatial_shapes"], enc["level_start_index"], enc["valid_ratios"],
                           enc["padding_mask"], tgt=q["tgt"], query_pos=q["query_pos"], verb_tgt=q["verb_tgt"],
                           key_padding_mask=q["key_padding_mask"], attn_mask=q["attn_mask"])
        outputs = self.classify_decoder_layers(dec, states, text, num_entity)
        outputs["key_padding_mask"] = q["key_padding_mask"]
        return outputs

    # ------------------------------------------------------------------ training
    def training_pair_slots(self, targets: Sequence[dict], batched_inputs, entity_labels: Sequence[torch.Tensor]):
        """Positive pair targets -> pair slots with negatives (Q per image at most)."""
        out = []
        for t, x, lab in zip(targets, batched_inputs, entity_labels):
            inst = x["instances"]
            h, w = inst.image_size
            boxes = xyxy_to_normalized_cxcywh(inst.gt_boxes.tensor.to(self.device), h, w)
            out.append(tagger_pair_slots(t, boxes, lab.to(self.device), self.num_pairs, self._pair_generator))
        return out

    def forward(self, batched_inputs):
        if not self.training:
            if batched_inputs and "sub_boxes" in batched_inputs[0]:
                return self.tag(batched_inputs)
            return self.score_annotated_pairs(batched_inputs)
        if self.criterion is None:
            raise RuntimeError("RTagger needs a criterion for training")
        images, mask = self.preprocess_image(batched_inputs)
        objs, rels = self.training_label_sequence(batched_inputs)
        texts, num_obj = self.label_texts(objs, rels)
        targets = self.prepare_targets(batched_inputs, objs, rels)
        obj_index = {t: i for i, t in enumerate(objs)}
        labels = [torch.as_tensor([obj_index[t] for t in self._image_texts(x)[0]], dtype=torch.int64)
                  for x in batched_inputs]
        slots = self.training_pair_slots(targets, batched_inputs, labels)
        outputs = self.forward_tagger(images, mask, texts, num_obj, slots)
        losses = self.criterion(outputs, slots)
        if hasattr(self.criterion, "weighted_losses"):
            return self.criterion.weighted_losses(losses)
        weights = getattr(self.criterion, "weight_dict", None) or {}
        return {k: v * weights[k] for k, v in losses.items() if k in weights}

    # ------------------------------------------------------------------ inference
    @torch.no_grad()
    def tag(self, batched_inputs: Sequence[dict]) -> list[torch.Tensor]:
        """Relation logits (P_g, R) of each group (contract of :mod:`rlipv2.pseudo_labeling.tagging`).

        Consecutive groups with the same texts run in one forward pass (the pipeline gives all groups of a
        batch the same texts).
        """
        out: list[torch.Tensor] = []
        start = 0
        while start < len(batched_inputs):
            texts = list(batched_inputs[start]["texts"])
            end = start + 1
            while end < len(batched_inputs) and list(batched_inputs[end]["texts"]) == texts:
                end += 1
            chunk = batched_inputs[start:end]
            num_obj = int(chunk[0]["num_object_texts"]) - 1
            images, mask = self.preprocess_image(chunk)
            pairs = []
            for x in chunk:
                h, w = x["image"].shape[-2:]
                p = len(x["sub_boxes"])
                if p > self.num_pairs:
                    raise ValueError(f"a tagger group has {p} pairs; at most {self.num_pairs} fit")
                pairs.append({
                    "sub_boxes": xyxy_to_normalized_cxcywh(x["sub_boxes"].to(self.device), h, w),
                    "obj_boxes": xyxy_to_normalized_cxcywh(x["obj_boxes"].to(self.device), h, w),
                    "sub_labels": x["sub_labels"].to(self.device), "obj_labels": x["obj_labels"].to(self.device),
                })
            logits = self.forward_tagger(images, mask, texts, num_obj, pairs)["pred_verb_logits"]
            out += [logits[i, : len(x["sub_boxes"])] for i, x in enumerate(chunk)]
            start = end
        return out

    @torch.no_grad()
    def score_annotated_pairs(self, batched_inputs) -> list[dict]:
        """Score each image's annotated (subject, object) pairs against the fixed vocabulary (sigmoid)."""
        vocab = self.fixed_vocabulary()
        if vocab is None:
            raise RuntimeError("RTagger evaluation on mapped inputs needs a fixed vocabulary: set "
                               "object_labels/relation_labels or metadata_dataset")
        objs, rels = vocab
        texts, num_obj = self.label_texts(objs, rels)
        targets = self.prepare_targets(batched_inputs, objs, rels)
        out = []
        for x, t in zip(batched_inputs, targets):
            images, mask = self.preprocess_image([x])
            scores, pairs = [], t["pairs"]
            for s in range(0, max(len(pairs), 1), self.num_pairs):
                chunk = {k: t[k][s:s + self.num_pairs] for k in ("sub_boxes", "obj_boxes", "sub_labels",
                                                                  "obj_labels")}
                logits = self.forward_tagger(images, mask, texts, num_obj, [chunk])["pred_verb_logits"]
                scores.append(logits[0, : len(chunk["sub_boxes"])].sigmoid())
            out.append({"pairs": pairs, "relation_scores": torch.cat(scores)})
        return out
