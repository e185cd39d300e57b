"""``RelationDatasetMapper``: dataset dict (contract 1) -> model input (contract 2).

It reads the image, applies the augmentations (official ones by default, see
:mod:`rlipv2.data.transforms`), drops boxes that a crop removed and re-indexes the relations so
that none points at a wrong box, caps relations at 100 per image (the first 100, training only)
and attaches the label texts of every instance and relation.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Sequence

import numpy as np
import torch
from detectron2.config import configurable
from detectron2.data import MetadataCatalog
from detectron2.data import transforms as T
from detectron2.structures import Boxes, BoxMode, Instances

from ..utils.image_io import UnreadableImageError, read_image_rgb
from .datasets.common import Problem, RelationDataError
from .loading import filter_images_without_relations, loaded_vocabularies
from .transforms import OFFICIAL_TRAIN_SCALES, build_relation_augmentations

logger = logging.getLogger(__name__)

__all__ = ["RelationDatasetMapper", "filter_images_without_relations", "remap_relations"]


def remap_relations(relations: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """Re-index relations after boxes were removed.

    Args:
        relations: int64 (R, 3) rows (subject, object, predicate) indexing the old boxes;
            object -1 means "no object" and is kept as -1.
        keep: bool (K,) mask of the boxes kept.

    Returns:
        int64 (R', 3): the relations whose subject (and object, if any) survive, re-indexed into
        the kept boxes, in their original order.
    """
    relations = np.asarray(relations, dtype=np.int64).reshape(-1, 3)
    keep = np.asarray(keep, dtype=bool)
    new_index = np.cumsum(keep) - 1
    if relations.shape[0] == 0:
        return relations
    s, o = relations[:, 0], relations[:, 1]
    ok = keep[s] & ((o == -1) | keep[np.clip(o, 0, None)])
    out = relations[ok].copy()
    out[:, 0] = new_index[out[:, 0]]
    has_obj = out[:, 1] >= 0
    out[has_obj, 1] = new_index[out[has_obj, 1]]
    return out


def read_image(path: str, image_format: str = "RGB") -> np.ndarray:
    """Decode an image to uint8 HxWx3 (RGB or BGR) in its stored orientation.

    EXIF orientation is ignored on purpose: the official loaders (PIL ``Image.open``) and the box
    annotations use the stored pixel layout (Detectron2's ``read_image`` would rotate such images).
    16-bit and float images are converted to 8 bits, and images above the pixel limit refused, by
    :func:`rlipv2.utils.image_io.read_image_rgb`.
    """
    arr = read_image_rgb(path)
    if image_format == "BGR":
        arr = arr[:, :, ::-1]
    elif image_format != "RGB":
        raise ValueError(f"unsupported image_format {image_format!r} (RGB or BGR)")
    return arr


_FLIP_WORDS = (("left", "right"),)


def _flip_text(text: str) -> str:
    words = text.split(" ")
    for a, b in _FLIP_WORDS:
        words = [b if w == a else a if w == b else w for w in words]
    return " ".join(words)


class RelationDatasetMapper:
    """Map one relation dataset dict to the model input of docs/interfaces.md, contract 2.

    Output keys: ``image`` (uint8 RGB, 3 x H x W, augmented), ``height`` / ``width`` (original size),
    ``image_id``, ``file_name``, ``instances`` (``gt_boxes`` K x 4 XYXY, ``gt_classes`` K),
    ``relations`` (int64 R x 3: subject, object (-1 = none), predicate), ``relation_confidence``
    (float32 R), ``object_texts`` (K) and ``predicate_texts`` (R).

    In training, ``None`` is returned (Detectron2's loader then draws another image) for images
    without relations when ``filter_no_relations`` is set, and for bad records (missing or corrupt
    image, size mismatch) when ``skip_bad_records`` is set, with a logged warning; otherwise a bad
    record raises :class:`RelationDataError` naming the file, the image and the field.

    Horizontal flips keep relations valid; a predicate with "left"/"right" in its text becomes its
    mirror predicate when the vocabulary has it.
    """

    @configurable
    def __init__(
        self,
        is_train: bool = True,
        *,
        augmentations: Sequence[T.Augmentation] | None = None,
        image_format: str = "RGB",
        max_relations: int = 100,
        filter_no_relations: bool | None = None,
        skip_bad_records: bool = False,
        dataset_name: str | None = None,
        thing_classes: Sequence[str] | None = None,
        predicate_classes: Sequence[str] | None = None,
        **augmentation_kwargs,
    ):
        """
        Args:
            is_train: training (augment, cap relations, filter) or test mode.
            augmentations: Detectron2 augmentations; default: the official ones built by
                :func:`build_relation_augmentations` with ``augmentation_kwargs`` (e.g.
                ``min_sizes``, ``max_size``, ``random_crop``, ``test_min_size``).
            max_relations: keep the first N relations of an image in training (official: 100).
            filter_no_relations: skip training images without relations (default: ``is_train``).
            skip_bad_records: skip (with a warning) instead of raising on bad images (training).
            dataset_name / thing_classes / predicate_classes: the vocabulary for records that do
                not name their dataset (``dataset_name`` key); records that do use their own.
        """
        if augmentations is None:
            augmentations = build_relation_augmentations(is_train, **augmentation_kwargs)
        elif augmentation_kwargs:
            raise TypeError(f"unexpected arguments {sorted(augmentation_kwargs)} (augmentations already given)")
        self.is_train = is_train
        self.augmentations = T.AugmentationList(list(augmentations))
        self.image_format = image_format
        self.max_relations = max_relations
        self.filter_no_relations = is_train if filter_no_relations is None else filter_no_relations
        self.skip_bad_records = skip_bad_records
        self.dataset_name = dataset_name
        self._vocab_cache: dict[str | None, tuple[list[str], list[str]]] = {}
        if thing_classes is not None:
            self._vocab_cache[None] = (list(thing_classes), list(predicate_classes or []))
        logger.info("RelationDatasetMapper(is_train=%s) augmentations: %s", is_train, self.augmentations)

    @classmethod
    def from_config(cls, cfg=None, is_train: bool = True, **kwargs) -> dict:
        """Arguments from a yacs ``cfg`` (INPUT.* sizes; optional) and/or keyword overrides."""
        args: dict = {"is_train": is_train}
        if cfg is not None:
            args.update(
                min_sizes=tuple(cfg.INPUT.MIN_SIZE_TRAIN) if is_train else OFFICIAL_TRAIN_SCALES,
                max_size=cfg.INPUT.MAX_SIZE_TRAIN,
                test_min_size=cfg.INPUT.MIN_SIZE_TEST,
                test_max_size=cfg.INPUT.MAX_SIZE_TEST,
                random_crop=bool(cfg.INPUT.CROP.ENABLED) if "CROP" in cfg.INPUT else True,
                image_format=cfg.INPUT.FORMAT,
            )
            if not is_train:
                args.pop("min_sizes"), args.pop("max_size"), args.pop("random_crop")
            else:
                args.pop("test_min_size"), args.pop("test_max_size")
            if cfg.DATASETS.TRAIN if is_train else cfg.DATASETS.TEST:
                args["dataset_name"] = (cfg.DATASETS.TRAIN if is_train else cfg.DATASETS.TEST)[0]
        args.update(kwargs)
        return args

    # ------------------------------------------------------------------------------------------
    def _vocab(self, name: str | None) -> tuple[list[str], list[str]]:
        v = self._vocab_cache.get(name)
        if v is None:
            if name is None:
                if self.dataset_name is None:
                    raise ValueError(
                        "RelationDatasetMapper: the record names no dataset; give dataset_name "
                        "or thing_classes/predicate_classes"
                    )
                return self._vocab(self.dataset_name)
            md = MetadataCatalog.get(name)
            if not (hasattr(md, "thing_classes") and hasattr(md, "predicate_classes")):
                raise KeyError(
                    f"RelationDatasetMapper: dataset '{name}' has no thing_classes / predicate_classes in this "
                    "process: load it with get_relation_dataset_dicts (which hands its vocabulary to the "
                    "data-loader workers) or register it here (a registered_dataset node, docs/custom_dataset.md)"
                )
            v = (list(md.thing_classes), list(md.predicate_classes))
            self._vocab_cache[name] = v
        return v

    def __getstate__(self) -> dict:
        """Pickled (e.g. for a data-loader worker started with "spawn"): carry the vocabularies along.

        The worker then needs no catalog entry for the datasets loaded by
        :func:`~rlipv2.data.get_relation_dataset_dicts` in this process, nor for ``dataset_name``.
        """
        state = self.__dict__.copy()
        cache = loaded_vocabularies()
        cache.update(self._vocab_cache)
        if self.dataset_name is not None and self.dataset_name not in cache:
            try:
                cache[self.dataset_name] = self._vocab(self.dataset_name)
            except KeyError:
                pass  # not resolvable here either: the worker reports it when a record needs it
        state["_vocab_cache"] = cache
        return state

    def _bad(self, d: dict, field: str, message: str, kind: str, err: Exception | None = None):
        problem = Problem(kind, d.get("file_name", "?"), d.get("image_id"), field, message)
        if self.skip_bad_records and self.is_train:
            logger.warning("Skipping bad record: %s", problem)
            return None
        raise RelationDataError(problem) from err

    def __call__(self, dataset_dict: dict) -> dict | None:
        d = copy.deepcopy(dataset_dict)
        rels_in = d.pop("relations", [])
        if self.is_train and self.filter_no_relations and not rels_in:
            return None
        if self.is_train and self.max_relations is not None and len(rels_in) > self.max_relations:
            rels_in = rels_in[: self.max_relations]
        try:
            image = read_image(d["file_name"], self.image_format)
        except FileNotFoundError as e:
            return self._bad(d, "file_name", f"image file not found: {d['file_name']}", "missing_image", e)
        except UnreadableImageError as e:  # corrupt, truncated, too large, unsupported bit depth (names the file)
            return self._bad(d, "file_name", str(e), "corrupt_image", e)
        except Exception as e:  # anything else PIL raises
            return self._bad(d, "file_name", f"cannot decode image {d['file_name']}: {e}", "corrupt_image", e)
        h0, w0 = image.shape[:2]
        if "height" in d and "width" in d and (d["height"], d["width"]) != (h0, w0):
            return self._bad(
                d,
                "height/width",
                f"annotated size {d['width']}x{d['height']} but the image is {w0}x{h0}",
                "size_mismatch",
            )
        d["height"], d["width"] = h0, w0

        anns = d.pop("annotations", [])
        boxes = np.array(
            [BoxMode.convert(a["bbox"], a.get("bbox_mode", BoxMode.XYXY_ABS), BoxMode.XYXY_ABS) for a in anns],
            dtype=np.float32,
        ).reshape(-1, 4)
        classes = np.array([a["category_id"] for a in anns], dtype=np.int64)
        rels = np.array([[r["subject"], r["object"], r["predicate"]] for r in rels_in], dtype=np.int64).reshape(-1, 3)
        conf = np.array([r.get("confidence", 1.0) for r in rels_in], dtype=np.float32)
        n = len(anns)
        if rels.shape[0] and (
            rels[:, 0].max() >= n or rels[:, 1].max() >= n or rels[:, 0].min() < 0 or rels[:, 1].min() < -1
        ):
            return self._bad(
                d, "relations", f"relation index out of range for {n} boxes", "relation_index_out_of_range"
            )

        aug_input = T.AugInput(image, boxes=boxes)
        transforms = self.augmentations(aug_input)
        image = aug_input.image
        boxes = aug_input.boxes if aug_input.boxes is not None else boxes
        ih, iw = image.shape[:2]
        boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4).copy()
        boxes[:, 0::2] = boxes[:, 0::2].clip(0, iw)
        boxes[:, 1::2] = boxes[:, 1::2].clip(0, ih)
        if self.is_train:  # drop boxes a crop removed (or degenerate ones), as the official crop
            keep = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
            if not keep.all():
                rel_keep = self._relation_keep(rels, keep)
                rels, conf = remap_relations(rels, keep), conf[rel_keep]
                boxes, classes = boxes[keep], classes[keep]

        objects, predicates = self._vocab(d.get("dataset_name"))
        flipped = sum(isinstance(t, T.HFlipTransform) for t in transforms) % 2 == 1
        pred_texts = [predicates[p] for p in rels[:, 2].tolist()]
        if flipped and rels.shape[0]:
            pidx = {t: i for i, t in enumerate(predicates)}
            for k, t in enumerate(pred_texts):
                ft = _flip_text(t)
                if ft != t and ft in pidx:  # only to a predicate of the vocabulary (text and id agree)
                    pred_texts[k] = ft
                    rels[k, 2] = pidx[ft]

        d["image"] = torch.as_tensor(np.ascontiguousarray(image.transpose(2, 0, 1)))
        inst = Instances((ih, iw))
        inst.gt_boxes = Boxes(torch.as_tensor(boxes, dtype=torch.float32))
        inst.gt_classes = torch.as_tensor(classes, dtype=torch.int64)
        d["instances"] = inst
        d["relations"] = torch.as_tensor(rels, dtype=torch.int64).reshape(-1, 3)
        d["relation_confidence"] = torch.as_tensor(conf, dtype=torch.float32)
        d["object_texts"] = [objects[c] for c in classes.tolist()]
        d["predicate_texts"] = pred_texts
        return d

    @staticmethod
    def _relation_keep(rels: np.ndarray, keep: np.ndarray) -> np.ndarray:
        if rels.shape[0] == 0:
            return np.zeros(0, dtype=bool)
        s, o = rels[:, 0], rels[:, 1]
        return keep[s] & ((o == -1) | keep[np.clip(o, 0, None)])
