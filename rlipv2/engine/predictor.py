"""Relation detection on custom images with free-form label texts.

RLIPv2 classifies objects and relations by similarity with label *texts*, so at inference a user
may name any objects and relations ("person, horse, dog" / "ride, walk, feed")::

    from rlipv2.engine import RelationPredictor
    predictor = RelationPredictor("projects/RLIPv2/configs/<cfg>.py", "model_final.pth")
    result = predictor("image.jpg", objects=["person", "horse"], relations=["ride", "feed"])
    for t in result["triplets"]:
        print(t["subject"]["label"], t["relation"], t["object"]["label"], t["score"])

The model follows the inference contract of ``docs/interfaces.md`` (contract 4): for one image it
returns ``instances`` (2Q boxes in original-image pixels, subjects then objects, with
``pred_classes`` indexing the object texts) and ``pairs`` (``subject``, ``object``,
``relation_scores`` (Q, R) indexing the relation texts). The vocabulary is handed to the model with
``model.set_label_texts(object_texts, relation_texts)`` before the forward pass.
"""
from __future__ import annotations

import copy
import logging
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from detectron2.config import instantiate
from detectron2.data import transforms as T
from omegaconf import DictConfig
from torch import nn
from torchvision.ops import box_iou

from ..utils.image_io import UnreadableImageError, read_image_rgb
from .checkpoint import RLIPv2Checkpointer
from .defaults import resolve_device

logger = logging.getLogger(__name__)

__all__ = ["RelationPredictor", "parse_label_list", "relation_triplets"]


def parse_label_list(texts: str | Sequence[str] | None) -> list[str] | None:
    """"person, horse , dog" or ["person", "horse"] -> ["person", "horse", "dog"] (stripped, de-duplicated)."""
    if texts is None:
        return None
    items = texts.split(",") if isinstance(texts, str) else list(texts)
    out: list[str] = []
    for t in items:
        if not isinstance(t, str):
            raise TypeError(f"label texts must be strings, got {type(t).__name__}: {t!r}")
        t = " ".join(t.split())
        if t and t not in out:
            out.append(t)
    if not out:
        raise ValueError(f"empty label list: {texts!r}")
    return out


def _triplet_nms(sub_boxes, obj_boxes, keys: list[tuple], order: list[int], thresh: float, top_k: int) -> list[int]:
    """Greedy triplet NMS: drop a triplet when a kept one has the same labels and both boxes overlap > thresh."""
    kept: list[int] = []
    by_key: dict[tuple, list[int]] = {}
    for i in order:
        others = by_key.get(keys[i], [])
        if others:
            idx = torch.as_tensor(others)
            iou_s = box_iou(sub_boxes[i : i + 1], sub_boxes[idx])[0]
            iou_o = box_iou(obj_boxes[i : i + 1], obj_boxes[idx])[0]
            if bool(((iou_s > thresh) & (iou_o > thresh)).any()):
                continue
        kept.append(i)
        by_key.setdefault(keys[i], []).append(i)
        if len(kept) >= top_k:
            break
    return kept


def relation_triplets(
    output: dict[str, Any],
    object_texts: Sequence[str],
    relation_texts: Sequence[str],
    *,
    score_thresh: float = 0.3,
    top_k: int = 100,
    nms_thresh: float | None = 0.5,
) -> list[dict[str, Any]]:
    """Turn one contract-4 model output into a list of (subject, relation, object) triplets.

    Each (pair q, relation r) with ``relation_scores[q, r] >= score_thresh`` is a candidate; the
    candidates are sorted by score, optionally de-duplicated by triplet NMS (same labels and both
    boxes with IoU > ``nms_thresh``) and cut to ``top_k``.

    Returns:
        dicts ``{"subject": {"box", "label", "label_id", "score"}, "object": {...} or None,
        "relation", "relation_id", "score"}``, boxes as [x1, y1, x2, y2] in original-image pixels.
    """
    inst = output["instances"].to("cpu")
    pairs = output["pairs"]
    boxes = inst.pred_boxes.tensor.float()
    classes = inst.pred_classes.long()
    obj_scores = inst.scores.float()
    sub_idx = torch.as_tensor(pairs["subject"]).long().cpu()
    obj_idx = torch.as_tensor(pairs["object"]).long().cpu()
    rel = torch.as_tensor(pairs["relation_scores"]).float().cpu()
    if rel.dim() != 2 or rel.shape[0] != sub_idx.shape[0] or obj_idx.shape != sub_idx.shape:
        raise ValueError(
            f"model output 'pairs': relation_scores {tuple(rel.shape)} must be (Q, R) with Q = len(subject) "
            f"= len(object) = {tuple(sub_idx.shape)}, {tuple(obj_idx.shape)}"
        )
    if rel.shape[1] != len(relation_texts):
        raise ValueError(
            f"model output 'pairs.relation_scores' has {rel.shape[1]} relation columns but "
            f"{len(relation_texts)} relation texts were given"
        )
    if classes.numel() and int(classes.max()) >= len(object_texts):
        raise ValueError(
            f"model output 'instances.pred_classes' has class {int(classes.max())} but only "
            f"{len(object_texts)} object texts were given"
        )
    flat = rel.flatten()
    cand = torch.nonzero(flat >= score_thresh).flatten()
    cand = cand[torch.argsort(flat[cand], descending=True, stable=True)]
    q_idx, r_idx = cand // rel.shape[1], cand % rel.shape[1]
    s_box = boxes[sub_idx[q_idx]]
    o_valid = obj_idx[q_idx] >= 0
    o_box = torch.where(o_valid[:, None], boxes[obj_idx[q_idx].clamp(min=0)], torch.zeros(4))
    keys = [
        (int(classes[sub_idx[q]]), int(classes[obj_idx[q]]) if obj_idx[q] >= 0 else -1, int(r))
        for q, r in zip(q_idx.tolist(), r_idx.tolist())
    ]
    order = list(range(len(cand)))
    if nms_thresh is not None and nms_thresh < 1.0:
        order = _triplet_nms(s_box, o_box, keys, order, float(nms_thresh), int(top_k))
    else:
        order = order[: int(top_k)]

    def _entity(k: int) -> dict[str, Any]:
        c = int(classes[k])
        return {"box": [float(x) for x in boxes[k].tolist()], "label": object_texts[c], "label_id": c,
                "score": float(obj_scores[k])}

    triplets = []
    for i in order:
        q, r = int(q_idx[i]), int(r_idx[i])
        o = int(obj_idx[q])
        triplets.append({
            "subject": _entity(int(sub_idx[q])),
            "object": _entity(o) if o >= 0 else None,
            "relation": relation_texts[r],
            "relation_id": r,
            "score": float(flat[cand[i]]),
        })
    return triplets


class RelationPredictor:
    """Run a relation-detection model on single images with user-given label texts.

    Args:
        cfg_or_model: a LazyConfig path, a loaded LazyConfig (its ``model`` is instantiated), or a
            ready ``nn.Module``.
        weights: checkpoint to load (``None``: for a config, ``train.init_checkpoint`` if set).
        opts: ``key=value`` overrides applied to the config (strict: unknown keys are refused).
        min_size, max_size: test-time resize (shortest side, longest-side cap); 800 / 1333 officially.
        score_thresh, top_k, nms_thresh: triplet filtering (see :func:`relation_triplets`).
        device: "cpu", "cuda", ... (default: CUDA when available).
        input_format: channel order of ``np.ndarray`` inputs ("RGB" or "BGR", e.g. from OpenCV).
        truncate_queries: apply the official 200->128 query truncation when loading ``weights``.
        strict: refuse ``weights`` that do not match the model exactly (wrong architecture).
        object_texts, relation_texts: default vocabulary (otherwise given per call).
        max_pixels: refuse image files above this many pixels (default
            :data:`rlipv2.utils.image_io.MAX_IMAGE_PIXELS`, 64 MP, or ``$RLIPV2_MAX_IMAGE_PIXELS``).
    """

    def __init__(
        self,
        cfg_or_model: str | DictConfig | nn.Module,
        weights: str | None = None,
        *,
        opts: Sequence[str] = (),
        min_size: int = 800,
        max_size: int = 1333,
        score_thresh: float = 0.3,
        top_k: int = 100,
        nms_thresh: float | None = 0.5,
        device: str | None = None,
        input_format: str = "RGB",
        truncate_queries: bool = False,
        strict: bool = True,
        object_texts: str | Sequence[str] | None = None,
        relation_texts: str | Sequence[str] | None = None,
        max_pixels: int | None = None,
    ):
        if isinstance(cfg_or_model, nn.Module):
            model = cfg_or_model
        else:
            from rlipv2.config import apply_overrides, load_config

            cfg = cfg_or_model
            if isinstance(cfg, (str, os.PathLike)):
                cfg = load_config(os.fspath(cfg), opts)  # strict overrides
            elif opts:
                cfg = apply_overrides(copy.deepcopy(cfg), opts)
            if "model" not in cfg:
                raise ValueError("RelationPredictor: the config has no `model` entry")
            model = instantiate(copy.deepcopy(cfg.model))
            if weights is None:
                weights = (cfg.get("train", {}) or {}).get("init_checkpoint") or None
        self.device = resolve_device(device)
        self.model = model.to(self.device).eval()
        if weights:
            RLIPv2Checkpointer(self.model, truncate_queries=truncate_queries, strict=strict).load(weights)
        elif not isinstance(cfg_or_model, nn.Module):
            logger.warning("RelationPredictor: no weights given and no train.init_checkpoint: the model is untrained")
        if input_format not in ("RGB", "BGR"):
            raise ValueError(f"input_format must be 'RGB' or 'BGR', got {input_format!r}")
        self.input_format = input_format
        self.resize = T.ResizeShortestEdge([min_size, min_size], max_size)
        self.min_size, self.max_pixels = int(min_size), max_pixels
        self.score_thresh, self.top_k, self.nms_thresh = float(score_thresh), int(top_k), nms_thresh
        self.object_texts = parse_label_list(object_texts)
        self.relation_texts = parse_label_list(relation_texts)
        self._model_vocabulary: tuple[list[str], list[str]] | None = None

    def _model_default_vocabulary(self) -> tuple[list[str] | None, list[str] | None]:
        """The model's own vocabulary: ``model.fixed_vocabulary()`` or ``model.object_texts/relation_texts``."""
        fixed = getattr(self.model, "fixed_vocabulary", None)
        if callable(fixed):
            vocab = fixed()
            if vocab is not None:
                return list(vocab[0]), list(vocab[1])
        return getattr(self.model, "object_texts", None), getattr(self.model, "relation_texts", None)

    def _vocabulary(self, objects, relations) -> tuple[list[str], list[str]]:
        objects, relations = parse_label_list(objects), parse_label_list(relations)
        if not objects or not relations:
            model_objects, model_relations = self._model_default_vocabulary()
            objects = objects or self.object_texts or model_objects
            relations = relations or self.relation_texts or model_relations
        if not objects or not relations:
            raise ValueError(
                "RelationPredictor needs object and relation label texts: pass objects=/relations= "
                "(e.g. objects='person, horse', relations='ride, feed')"
            )
        return list(objects), list(relations)

    def read_image(self, image: str | os.PathLike | np.ndarray) -> tuple[np.ndarray, str]:
        """Return (H, W, 3) uint8 RGB and a file name ("" for arrays).

        A file is decoded by :func:`rlipv2.utils.image_io.read_image_rgb`: any bit depth becomes 8-bit
        RGB, images above ``max_pixels`` are refused, and an image much larger than the test size is
        shrunk right after decoding (its shorter side stays >= ``min_size``): the array may then be
        smaller than the file. :meth:`__call__` reports boxes in the file's pixels all the same.
        """
        img, name, _ = self.load_image(image)
        return img, name

    def load_image(self, image) -> tuple[np.ndarray, str, tuple[int, int]]:
        """:meth:`read_image` plus the (height, width) of the original image, to pass as ``original_size``
        to :meth:`predict_rgb` when the array was shrunk."""
        if isinstance(image, (str, os.PathLike)):
            path = os.fspath(image)
            try:
                img, size = read_image_rgb(path, max_pixels=self.max_pixels, reduce_to=self.min_size,
                                           apply_exif=True, with_original_size=True)
            except UnreadableImageError:
                raise
            except Exception as e:  # a missing file, or anything PIL raises
                raise UnreadableImageError(f"cannot read image '{path}': {e}") from e
            return img, path, size
        img = np.asarray(image)
        if img.ndim != 3 or img.shape[2] != 3:
            raise ValueError(f"image array must be (H, W, 3), got shape {img.shape}")
        if img.dtype != np.uint8:
            raise ValueError(f"image array must be uint8, got {img.dtype}")
        if self.input_format == "BGR":
            img = img[:, :, ::-1]
        return np.ascontiguousarray(img), "", img.shape[:2]

    @torch.no_grad()
    def predict_raw(self, image_rgb: np.ndarray, file_name: str = "",
                    original_size: tuple[int, int] | None = None) -> dict[str, Any]:
        """Resize, run the model, return its contract-4 output for the image (original-pixel boxes).

        ``original_size``: (height, width) the boxes are reported in, when ``image_rgb`` is a shrunk copy.
        """
        h, w = original_size or image_rgb.shape[:2]
        resized = self.resize.get_transform(image_rgb).apply_image(image_rgb)
        tensor = torch.as_tensor(np.ascontiguousarray(resized.transpose(2, 0, 1)))
        inputs = {"image": tensor.to(self.device), "height": h, "width": w, "file_name": file_name, "image_id": 0}
        return self.model([inputs])[0]

    def set_label_texts(self, objects, relations) -> tuple[list[str], list[str]]:
        """Give the model the vocabulary (``model.set_label_texts``) and return it."""
        objects, relations = self._vocabulary(objects, relations)
        setter = getattr(self.model, "set_label_texts", None)
        if setter is None:
            raise TypeError(
                f"{type(self.model).__name__} has no set_label_texts(object_texts, relation_texts): "
                "it cannot take free-form label texts"
            )
        if self._model_vocabulary != (objects, relations):  # the model may encode the texts: do it once
            setter(objects, relations)
            self._model_vocabulary = (list(objects), list(relations))
        return objects, relations

    def __call__(self, image, objects=None, relations=None, *, score_thresh: float | None = None,
                 top_k: int | None = None) -> dict[str, Any]:
        """Detect relation triplets in one image (path or array).

        ``score_thresh`` / ``top_k`` override the predictor's for this call only.

        Returns:
            ``{"file_name", "height", "width", "objects", "relations", "triplets", "best_score"}`` where
            ``triplets`` is the output of :func:`relation_triplets` and ``best_score`` the highest
            relation score of any pair, above the threshold or not (``None`` without pairs).
        """
        img, name, size = self.load_image(image)
        return self.predict_rgb(img, name, objects, relations, score_thresh=score_thresh, top_k=top_k,
                                original_size=size)

    def predict_rgb(self, image_rgb: np.ndarray, file_name: str = "", objects=None, relations=None, *,
                    score_thresh: float | None = None, top_k: int | None = None,
                    original_size: tuple[int, int] | None = None) -> dict[str, Any]:
        """:meth:`__call__` on an image already read by :meth:`read_image` ((H, W, 3) uint8 RGB).

        ``original_size``: (height, width) of the file when ``image_rgb`` is a shrunk copy of it: boxes,
        ``height`` and ``width`` are then reported in the file's pixels.
        """
        objects, relations = self.set_label_texts(objects, relations)
        output = self.predict_raw(image_rgb, file_name, original_size=original_size)
        triplets = relation_triplets(
            output, objects, relations,
            score_thresh=self.score_thresh if score_thresh is None else float(score_thresh),
            top_k=self.top_k if top_k is None else int(top_k), nms_thresh=self.nms_thresh,
        )
        scores = torch.as_tensor(output["pairs"]["relation_scores"])
        best = float(scores.max()) if scores.numel() else None
        h, w = original_size or image_rgb.shape[:2]
        return {"file_name": file_name, "height": h, "width": w, "objects": objects,
                "relations": relations, "triplets": triplets, "best_score": best}
