"""RLIPv2-ParSeDA as a Detectron2 meta-architecture.

``forward_raw(images, mask, label_texts, num_object_labels)`` is the official model: it takes
normalised, zero-padded images (N, 3, H, W), the padding mask (N, H, W) (True on padding) and the
label sequence ``object labels + ["no objects"] + relation labels``, and returns the official raw
output dict:

    pred_sub_logits  (N, Q, E)   E = num_object_labels + 1 (last column: "no objects"); with subject_class
    pred_obj_logits  (N, Q, E)
    pred_verb_logits (N, Q, R)   R = number of relation labels
    pred_sub_boxes, pred_obj_boxes (N, Q, 4) normalised cxcywh
    aux_outputs      list of dicts with the same keys for decoder layers 0 .. L-2
    text_embeddings_prefusion (R, 768): pooled relation-text embeddings before fusion (for RPL)

``forward(batched_inputs)`` takes Detectron2 inputs (contract 2 of docs/interfaces.md): it
normalises (ImageNet mean/std, RGB), pads to the largest image without size divisibility, builds the
label sequence and calls the criterion (training) or the post-processor (inference).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from detectron2.config import configurable
from detectron2.modeling import META_ARCH_REGISTRY
from torch import nn

__all__ = ["RLIPv2", "NO_OBJECT_TEXT"]

NO_OBJECT_TEXT = "no objects"


@META_ARCH_REGISTRY.register()
class RLIPv2(nn.Module):
    """RLIPv2 with the ParSeDA decoders.

    Args:
        backbone: module mapping images (N, 3, H, W) to a dict of feature maps.
        in_features: backbone outputs to use, finest first (``["res3", "res4", "res5"]`` or ``["p1", "p2", "p3"]``).
        neck: :class:`~rlipv2.modeling.neck.InputProjection`.
        position_embedding: :class:`~rlipv2.modeling.position_encoding.PositionEmbeddingSine`.
        text_encoder: :class:`~rlipv2.modeling.text_encoder.HFTextEncoder`.
        encoder: :class:`~rlipv2.modeling.alif_encoder.ALIFEncoder` (or a factory ``f(lang_config)``).
        decoder: :class:`~rlipv2.modeling.parseda_decoder.ParSeDADecoder`.
        head: :class:`~rlipv2.modeling.label_text_head.LabelTextHead`.
        criterion: called as ``criterion(outputs, targets) -> dict of losses`` in training; losses
            are multiplied by ``criterion.weight_dict`` when it exists (keys without a weight dropped).
        postprocessor: called as ``postprocessor(outputs, image_sizes [(h, w)] original) -> list[dict]``
            (contract 4), e.g. :class:`~rlipv2.modeling.postprocess.HOIPostProcessor`.
        pixel_mean, pixel_std: RGB, 0-255 scale (ImageNet).
        object_labels, relation_labels: fixed vocabulary for inference (and fine-tuning).
        metadata_dataset: take the vocabulary from ``MetadataCatalog.get(name)`` (``thing_classes``,
            ``predicate_classes``) when ``object_labels`` is not given.
        label_sequence_builder: training label sequence, ``f(batched_inputs) -> (object_labels,
            relation_labels)`` (e.g. rlipv2.data.label_sequence with negatives); default: the fixed
            vocabulary, else the de-duplicated labels of the batch.
        text_mask_quirk: official training behaviour: a label whose pooled embedding sums to <= 0
            is treated as padding in the fusion RoBERTa layers (False: no label is masked).
        faithful_hoi_subject_label: official HICO/V-COCO quirk: every subject target gets label index 1
            ("bicycle"); False (default) uses the subject's own label ("person").
        input_format: "RGB" or "BGR" (channel order of ``image`` in the inputs).
        pair_denoising: optional :class:`~rlipv2.modeling.pair_denoising.PairDenoising` (training only;
            not in the official model, used by the from-scratch demo); its ``loss_dn_*`` losses are
            added to the criterion's.
    """

    @configurable
    def __init__(self, *, backbone: nn.Module, in_features: Sequence[str], neck: nn.Module,
                 position_embedding: nn.Module, text_encoder: nn.Module, encoder, decoder: nn.Module,
                 head: nn.Module, criterion: nn.Module | None = None, postprocessor: Callable | None = None,
                 pixel_mean=(123.675, 116.28, 103.53), pixel_std=(58.395, 57.12, 57.375),
                 object_labels: Sequence[str] | None = None, relation_labels: Sequence[str] | None = None,
                 metadata_dataset: str | None = None, label_sequence_builder: Callable | None = None,
                 text_mask_quirk: bool = False, faithful_hoi_subject_label: bool = False,
                 input_format: str = "RGB", pair_denoising: nn.Module | None = None):
        super().__init__()
        self.backbone = backbone
        self.in_features = list(in_features)
        self.neck = neck
        self.position_embedding = position_embedding
        self.text_encoder = text_encoder
        if not isinstance(encoder, nn.Module):  # a factory that needs the text encoder's config
            encoder = encoder(text_encoder.fusion_layer_config())
        self.encoder = encoder
        self.decoder = decoder
        self.head = head
        self.criterion = criterion
        self.postprocessor = postprocessor
        self.register_buffer("pixel_mean", torch.tensor(pixel_mean, dtype=torch.float32).view(-1, 1, 1), False)
        self.register_buffer("pixel_std", torch.tensor(pixel_std, dtype=torch.float32).view(-1, 1, 1), False)
        self._object_labels = list(object_labels) if object_labels is not None else None
        self._relation_labels = list(relation_labels) if relation_labels is not None else None
        self.metadata_dataset = metadata_dataset
        self.label_sequence_builder = label_sequence_builder
        self.text_mask_quirk = text_mask_quirk
        self.faithful_hoi_subject_label = faithful_hoi_subject_label
        if input_format not in ("RGB", "BGR"):
            raise ValueError(f"input_format must be RGB or BGR, got {input_format!r}")
        self.input_format = input_format
        self.pair_denoising = pair_denoising

    @classmethod
    def from_config(cls, cfg):
        """Build from a LazyConfig whose ``model`` node holds the constructor arguments."""
        from detectron2.config import instantiate

        node = cfg.model if hasattr(cfg, "model") else cfg
        return {k: instantiate(v) for k, v in node.items() if k != "_target_"}

    @property
    def device(self) -> torch.device:
        return self.pixel_mean.device

    @property
    def num_queries(self) -> int:
        return self.decoder.num_queries

    # ------------------------------------------------------------------ vocabulary
    def fixed_vocabulary(self) -> tuple[list[str], list[str]] | None:
        """(object_labels, relation_labels) for inference, or None when none is configured."""
        if self._object_labels is None and self.metadata_dataset:
            from detectron2.data import MetadataCatalog

            meta = MetadataCatalog.get(self.metadata_dataset)
            self._object_labels = list(meta.thing_classes)
            self._relation_labels = list(meta.predicate_classes)
        if self._object_labels is None or self._relation_labels is None:
            return None
        return list(self._object_labels), list(self._relation_labels)

    def set_label_texts(self, object_labels: Sequence[str], relation_labels: Sequence[str]) -> None:
        """Set the inference vocabulary (free-form texts): predicted label ids index these lists.

        Used for open-vocabulary queries on custom images (:class:`rlipv2.engine.RelationPredictor`).
        The text-embedding cache recomputes embeddings for the new sequence on the next forward.
        """
        if not object_labels or not relation_labels:
            raise ValueError("set_label_texts needs at least one object label and one relation label")
        self._object_labels, self._relation_labels = list(object_labels), list(relation_labels)

    @staticmethod
    def label_texts(object_labels: Sequence[str], relation_labels: Sequence[str]) -> tuple[list[str], int]:
        """The label sequence ``objects + ["no objects"] + relations`` and the number of objects."""
        return list(object_labels) + [NO_OBJECT_TEXT] + list(relation_labels), len(object_labels)

    # ------------------------------------------------------------------ model
    def forward_raw(self, images: torch.Tensor, mask: torch.Tensor, label_texts: Sequence[str],
                    num_object_labels: int, denoising: dict | None = None) -> dict:
        """Official forward pass; see the module docstring for inputs and the returned dict.

        ``denoising``: extra training pair queries (:meth:`PairDenoising.queries`); the outputs then
        cover Q + D pairs (split them with :meth:`PairDenoising.split_outputs`)."""
        if images.dim() != 4 or mask.shape != (images.shape[0], *images.shape[-2:]):
            raise ValueError(f"images must be (N, 3, H, W) and mask (N, H, W); got {tuple(images.shape)} "
                             f"and {tuple(mask.shape)}")
        num_entity = num_object_labels + 1
        if not 0 < num_entity < len(label_texts):
            raise ValueError(f"num_object_labels={num_object_labels} does not fit a sequence of "
                             f"{len(label_texts)} labels (objects, 'no objects', relations)")
        n = images.shape[0]
        text = self.text_encoder(list(label_texts))  # (L, lang_dim)
        lang = text[None].expand(n, -1, -1)
        lang_mask = None
        if self.text_mask_quirk and self.training:
            lang_mask = (~(text.sum(dim=-1) > 0))[None].expand(n, -1)

        feats = self.backbone(images)
        feats = [feats[f] for f in self.in_features]
        srcs = self.neck(feats)
        masks = [F.interpolate(mask[None].float(), size=s.shape[-2:]).to(torch.bool)[0] for s in srcs]
        pos = [self.position_embedding(m).to(s.dtype) for m, s in zip(masks, srcs)]
        enc = self.encoder(srcs, masks, pos, lang, lang_mask)
        dec = self.decoder(enc["memory"], enc["spatial_shapes"], enc["level_start_index"], enc["valid_ratios"],
                           enc["padding_mask"], **({"denoising": denoising} if denoising is not None else {}))
        return self.classify_decoder_layers(dec, enc["lang_states"], text, num_entity)

    def classify_decoder_layers(self, dec: dict, states: torch.Tensor, text: torch.Tensor, num_entity: int) -> dict:
        """Score every decoder layer l against language state l; official raw output dict.

        Args:
            dec: decoder outputs ``hs_sub``, ``hs_obj``, ``hs_rel`` (layers, N, Q, C) and ``sub_boxes``,
                ``obj_boxes`` (layers, N, Q, 4).
            states: fused language states (num_states, N, L, C); one state is shared by every layer.
            text: pooled pre-fusion label embeddings (L, lang_dim).
            num_entity: object labels + 1 ("no objects").
        """
        num_layers = dec["hs_rel"].shape[0]
        if states.shape[0] == 1 and num_layers > 1:
            states = states.expand(num_layers, -1, -1, -1)
        if states.shape[0] != num_layers:
            raise ValueError(f"{states.shape[0]} language states for {num_layers} decoder layers")
        layers = []
        for lvl in range(num_layers):
            sub, obj, rel = self.head(dec["hs_sub"][lvl], dec["hs_obj"][lvl], dec["hs_rel"][lvl], states[lvl],
                                      num_entity)
            out = {"pred_obj_logits": obj, "pred_verb_logits": rel, "pred_sub_boxes": dec["sub_boxes"][lvl],
                   "pred_obj_boxes": dec["obj_boxes"][lvl]}
            if sub is not None:
                out["pred_sub_logits"] = sub
            layers.append(out)
        outputs = dict(layers[-1])
        outputs["aux_outputs"] = layers[:-1]
        outputs["text_embeddings_prefusion"] = text[num_entity:]
        return outputs

    # ------------------------------------------------------------------ detectron2 interface
    def preprocess_image(self, batched_inputs) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalise and zero-pad to the largest image (no size divisibility). Returns images, mask."""
        images = []
        for x in batched_inputs:
            img = x["image"].to(self.device)
            if self.input_format == "BGR":
                img = img.flip(0)
            images.append((img.float() - self.pixel_mean) / self.pixel_std)
        h = max(i.shape[-2] for i in images)
        w = max(i.shape[-1] for i in images)
        batch = images[0].new_zeros((len(images), 3, h, w))
        mask = torch.ones((len(images), h, w), dtype=torch.bool, device=self.device)
        for i, img in enumerate(images):
            batch[i, :, : img.shape[-2], : img.shape[-1]] = img
            mask[i, : img.shape[-2], : img.shape[-1]] = False
        return batch, mask

    def training_label_sequence(self, batched_inputs) -> tuple[list[str], list[str]]:
        """Object and relation labels of the training sequence (without "no objects")."""
        if self.label_sequence_builder is not None:
            seq = self.label_sequence_builder(batched_inputs)
            if isinstance(seq, dict):
                return list(seq["object_labels"]), list(seq["relation_labels"])
            if hasattr(seq, "object_labels"):
                return list(seq.object_labels), list(seq.relation_labels)
            objs, rels = seq
            return list(objs), list(rels)
        vocab = self.fixed_vocabulary()
        if vocab is not None:
            return vocab
        objs, rels = [], []
        for x in batched_inputs:
            o_texts, r_texts = self._image_texts(x)
            objs += [t for t in o_texts if t not in objs]
            rels += [t for t in r_texts if t not in rels]
        return objs, rels

    def _image_texts(self, x) -> tuple[list[str], list[str]]:
        inst = x["instances"]
        if "object_texts" in x:
            o_texts = list(x["object_texts"])
        else:
            vocab = self.fixed_vocabulary()
            if vocab is None:
                raise ValueError(f"image {x.get('file_name', x.get('image_id'))}: no 'object_texts' and no "
                                 "fixed vocabulary to name its gt_classes")
            o_texts = [vocab[0][int(c)] for c in inst.gt_classes]
        if "predicate_texts" in x:
            r_texts = list(x["predicate_texts"])
        else:
            vocab = self.fixed_vocabulary()
            if vocab is None:
                raise ValueError(f"image {x.get('file_name', x.get('image_id'))}: no 'predicate_texts' and no "
                                 "fixed vocabulary to name its predicates")
            r_texts = [vocab[1][int(p)] for p in x["relations"][:, 2]]
        return o_texts, r_texts

    def prepare_targets(self, batched_inputs, object_labels, relation_labels) -> list[dict]:
        """Pair targets (format of :mod:`rlipv2.modeling.targets`), indices into the label sequence.

        Instance and relation texts are looked up in the sequence; relations sharing (subject, object)
        become one multi-hot row; a missing object (-1) gets zeros and the "no objects" label.
        """
        from ..targets import build_batch_pair_targets

        obj_index = {t: i for i, t in enumerate(object_labels)}
        rel_index = {t: i for i, t in enumerate(relation_labels)}
        obj_ids, rel_ids = [], []
        for x in batched_inputs:
            name = x.get("file_name", x.get("image_id"))
            o_texts, r_texts = self._image_texts(x)
            for kind, texts, index in (("object", o_texts, obj_index), ("relation", r_texts, rel_index)):
                missing = [t for t in texts if t not in index]
                if missing:
                    raise ValueError(f"image {name}: {kind} label(s) {missing[:3]} not in the label sequence")
            obj_ids.append(torch.tensor([obj_index[t] for t in o_texts], dtype=torch.int64))
            rel_ids.append(torch.tensor([rel_index[t] for t in r_texts], dtype=torch.int64))
        return build_batch_pair_targets(batched_inputs, len(object_labels), len(relation_labels),
                                        object_labels=obj_ids, relation_labels=rel_ids,
                                        faithful_hoi_subject_label=self.faithful_hoi_subject_label,
                                        device=self.device)

    def forward(self, batched_inputs):
        images, mask = self.preprocess_image(batched_inputs)
        if self.training:
            objs, rels = self.training_label_sequence(batched_inputs)
            texts, num_obj = self.label_texts(objs, rels)
            if self.criterion is None:
                raise RuntimeError("RLIPv2 needs a criterion for training")
            targets = self.prepare_targets(batched_inputs, objs, rels)
            dn, num_pairs = None, self.decoder.num_queries // 2
            if self.pair_denoising is not None:
                dn = self.pair_denoising.queries(targets, num_pairs, self.device)
            outputs = self.forward_raw(images, mask, texts, num_obj, denoising=dn)
            if dn is not None:
                outputs, dn_outputs = self.pair_denoising.split_outputs(outputs, num_pairs)
            losses = self.criterion(outputs, targets)
            if hasattr(self.criterion, "weighted_losses"):
                losses = self.criterion.weighted_losses(losses)
            else:
                weights = getattr(self.criterion, "weight_dict", None)
                if weights:
                    losses = {k: v * weights[k] for k, v in losses.items() if k in weights}
            if dn is not None:
                losses.update(self.pair_denoising.losses(
                    dn_outputs, targets, dn["num_pairs"], getattr(self.criterion, "weight_dict", None),
                    getattr(self.criterion, "eos_coef", 0.1)))
            return losses
        vocab = self.fixed_vocabulary()
        if vocab is None:
            raise RuntimeError("RLIPv2 inference needs a fixed vocabulary: set object_labels/relation_labels "
                               "or metadata_dataset")
        texts, num_obj = self.label_texts(*vocab)
        outputs = self.forward_raw(images, mask, texts, num_obj)
        if self.postprocessor is None:
            return outputs
        sizes = [(int(x.get("height", x["image"].shape[-2])), int(x.get("width", x["image"].shape[-1])))
                 for x in batched_inputs]
        return self.postprocessor(outputs, sizes)
