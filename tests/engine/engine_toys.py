"""A toy relation world for the engine tests: model, mapper, datasets and evaluator.

Everything is tiny and deterministic: images are generated from their id (no files), the model has
parameters named like RLIPv2's (``backbone``, ``text_encoder``, ``transformer.encoder.roberta_layers``,
``tgt_embed`` / ``verb_tgt_embed`` / ``refpoint_embed``) and follows Detectron2's model contract
(training: dict of losses; inference: contract-4 outputs of docs/interfaces.md).
"""
from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import torch
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.evaluation import DatasetEvaluator
from detectron2.structures import Boxes, BoxMode, Instances
from detectron2.utils import comm
from torch import nn
from torch.nn import functional as F

NUM_OBJECTS, NUM_RELATIONS, IMG = 3, 2, 32
TRAIN_NAME, TEST_NAME = "engine_toy_train", "engine_toy_test"


def _toy_dicts(n: int, offset: int) -> list[dict]:
    out = []
    for i in range(n):
        rng = np.random.default_rng(offset + i)
        x, y = rng.integers(0, 12, 2).tolist()
        out.append({
            "file_name": f"toy_{offset + i}.png",
            "image_id": offset + i,
            "height": IMG,
            "width": IMG,
            "annotations": [
                {"bbox": [x, y, x + 10, y + 10], "bbox_mode": BoxMode.XYXY_ABS, "category_id": 0},
                {"bbox": [x + 5, y + 5, x + 20, y + 20], "bbox_mode": BoxMode.XYXY_ABS, "category_id": int(i % 2 + 1)},
            ],
            "relations": [{"subject": 0, "object": 1, "predicate": int(i % NUM_RELATIONS), "confidence": 1.0}],
        })
    return out


def register_toy_datasets(n_train: int = 8, n_test: int = 4) -> None:
    for name, n, off in ((TRAIN_NAME, n_train, 0), (TEST_NAME, n_test, 1000)):
        if name not in DatasetCatalog.list():
            DatasetCatalog.register(name, lambda n=n, off=off: _toy_dicts(n, off))
            MetadataCatalog.get(name).set(thing_classes=["person", "horse", "dog"], predicate_classes=["ride", "feed"])


register_toy_datasets()


class ToyMapper:
    """Dataset dict -> contract-2-like input (image generated from the image id).

    With ``is_train`` it adds random augmentations drawn from the global numpy and python RNGs
    (brightness shift, horizontal flip), so that resume tests see RNG-dependent data.
    """

    def __init__(self, is_train: bool = False):
        self.is_train = is_train

    def __call__(self, d: dict) -> dict:
        rng = np.random.default_rng(d["image_id"])
        img = rng.integers(0, 255, (3, IMG, IMG), dtype=np.uint8)
        boxes = torch.tensor([a["bbox"] for a in d["annotations"]], dtype=torch.float32)
        if self.is_train:
            img = np.clip(img.astype(np.int64) + np.random.randint(-20, 21), 0, 255).astype(np.uint8)
            if random.random() < 0.5:
                img = np.ascontiguousarray(img[:, :, ::-1])
                boxes = torch.stack([IMG - boxes[:, 2], boxes[:, 1], IMG - boxes[:, 0], boxes[:, 3]], 1)
        inst = Instances((IMG, IMG), gt_boxes=Boxes(boxes),
                         gt_classes=torch.tensor([a["category_id"] for a in d["annotations"]]))
        rels = torch.tensor([[r["subject"], r["object"], r["predicate"]] for r in d["relations"]], dtype=torch.int64)
        return {"image": torch.from_numpy(img), "height": d["height"], "width": d["width"],
                "image_id": d["image_id"], "file_name": d["file_name"], "instances": inst, "relations": rels}


class _Encoder(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.layers = nn.ModuleList([nn.Linear(dim, dim)])
        self.roberta_layers = nn.ModuleList([nn.Linear(dim, dim)])


class _Transformer(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.encoder = _Encoder(dim)


class ToyRelationModel(nn.Module):
    """Q pair queries; each predicts a subject box, an object box, object classes and relation scores."""

    def __init__(self, num_queries: int = 4, dim: int = 8, num_objects: int = NUM_OBJECTS,
                 num_relations: int = NUM_RELATIONS, dropout: float = 0.0, die_after: int | None = None,
                 freeze_text_encoder: bool = False):
        super().__init__()
        self.num_queries = num_queries
        self.dropout = nn.Dropout(dropout)
        # Test hook: SIGKILL this process at the die_after-th training forward (a crash mid-run).
        self.die_after = die_after
        self._train_calls = 0
        self.backbone = nn.Sequential(nn.Conv2d(3, dim, 5, stride=4), nn.ReLU(), nn.AdaptiveAvgPool2d(1))
        self.text_encoder = nn.Linear(dim, dim)
        if freeze_text_encoder:  # a frozen pretrained part (train.checkpointer.frozen_weights_once)
            self.text_encoder.requires_grad_(False)
        self.transformer = _Transformer(dim)
        self.tgt_embed = nn.Embedding(num_queries, dim)
        self.verb_tgt_embed = nn.Embedding(num_queries, dim)
        self.refpoint_embed = nn.Embedding(num_queries, 4)
        self.sub_box = nn.Linear(dim, 4)
        self.obj_box = nn.Linear(dim, 4)
        self.obj_cls = nn.Linear(dim, num_objects)
        self.rel_cls = nn.Linear(dim, num_relations)
        self.register_buffer("pixel_mean", torch.tensor([127.5, 127.5, 127.5]).view(3, 1, 1), persistent=False)
        self.object_texts: list[str] | None = None
        self.relation_texts: list[str] | None = None

    @property
    def device(self) -> torch.device:
        return self.pixel_mean.device

    def set_label_texts(self, object_texts, relation_texts):
        self.object_texts, self.relation_texts = list(object_texts), list(relation_texts)

    def _queries(self, batched_inputs):
        imgs = [(x["image"].to(self.device).float() - self.pixel_mean) / 127.5 for x in batched_inputs]
        feats = torch.cat([self.backbone(im[None]).flatten(1) for im in imgs])  # (B, dim)
        q = self.tgt_embed.weight[None] + self.verb_tgt_embed.weight[None] + feats[:, None]
        q = q + self.transformer.encoder.layers[0](q)
        q = q + self.transformer.encoder.roberta_layers[0](self.text_encoder(q))
        ref = self.refpoint_embed.weight[None]
        return q, (self.sub_box(q) + ref).sigmoid(), (self.obj_box(q) + ref).sigmoid()

    def forward(self, batched_inputs):
        if self.training and self.die_after is not None:
            self._train_calls += 1
            if self._train_calls >= self.die_after:
                os.kill(os.getpid(), signal.SIGKILL)
        q, sub, obj = self._queries(batched_inputs)
        q = self.dropout(q)
        if self.training:
            losses = {"loss_box": q.new_zeros(()), "loss_rel": q.new_zeros(())}
            for b, x in enumerate(batched_inputs):
                gt = x["instances"].gt_boxes.tensor.to(self.device) / IMG
                s, o, p = x["relations"][0].tolist()
                losses["loss_box"] = losses["loss_box"] + F.l1_loss(sub[b], gt[s].expand_as(sub[b])) + F.l1_loss(
                    obj[b], gt[o].expand_as(obj[b]))
                target = torch.zeros(q.shape[1], self.rel_cls.out_features, device=self.device)
                target[:, p] = 1
                losses["loss_rel"] = losses["loss_rel"] + F.binary_cross_entropy_with_logits(self.rel_cls(q[b]), target)
            return {k: v / len(batched_inputs) for k, v in losses.items()}
        outputs = []
        Q = self.num_queries
        for b, x in enumerate(batched_inputs):
            h, w = x["height"], x["width"]
            scale = torch.tensor([w, h, w, h], device=self.device, dtype=torch.float32)

            def _xyxy(c, scale=scale):
                cx, cy, bw, bh = c.unbind(-1)
                return torch.stack([cx - bw / 4, cy - bh / 4, cx + bw / 4, cy + bh / 4], -1) * scale

            boxes = torch.cat([_xyxy(sub[b]), _xyxy(obj[b])])
            cls_prob = self.obj_cls(q[b]).softmax(-1)
            obj_score, obj_cls = cls_prob.max(-1)
            classes = torch.cat([torch.zeros_like(obj_cls), obj_cls])
            scores = torch.cat([torch.ones_like(obj_score), obj_score])
            inst = Instances((h, w), pred_boxes=Boxes(boxes), pred_classes=classes, scores=scores)
            outputs.append({"instances": inst, "pairs": {
                "subject": torch.arange(Q), "object": torch.arange(Q) + Q,
                "relation_scores": self.rel_cls(q[b]).sigmoid() * obj_score[:, None]}})
        return outputs


class ToyEvaluator(DatasetEvaluator):
    """Mean (over images) of the best relation score given to each image's annotated predicate."""

    def __init__(self, dataset_name: str = TEST_NAME):
        self.dicts = {d["image_id"]: d for d in DatasetCatalog.get(dataset_name)}
        self.reset()

    def reset(self):
        self.scores: list[float] = []

    def process(self, inputs, outputs):
        for x, out in zip(inputs, outputs):
            p = self.dicts[x["image_id"]]["relations"][0]["predicate"]
            self.scores.append(float(out["pairs"]["relation_scores"][:, p].max()))

    def evaluate(self):
        all_scores = comm.gather(self.scores)
        if not comm.is_main_process():
            return {}
        flat = [s for part in all_scores for s in part]
        return {"toy": {"mean_gt_rel_score": 100.0 * float(np.mean(flat)), "num_images": float(len(flat))}}


# ---------------------------------------------------------------- train-script helpers
REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent

TOY_CONFIG = """
import os
from detectron2.config import LazyCall as L, LazyConfig
from detectron2.data import build_detection_test_loader, build_detection_train_loader, get_detection_dataset_dicts
from engine_toys import TEST_NAME, TRAIN_NAME, ToyEvaluator, ToyMapper, ToyRelationModel

COMMON = os.path.join({repo!r}, "configs", "common")
train = LazyConfig.load(os.path.join(COMMON, "train.py"), "train")
optimizer = LazyConfig.load(os.path.join(COMMON, "optim.py"), "optimizer")
lr_multiplier = LazyConfig.load(os.path.join(COMMON, "schedule.py"), "lr_multiplier")

model = L(ToyRelationModel)(num_queries=4, dim=8, dropout=0.1)
dataloader = dict(
    train=L(build_detection_train_loader)(
        dataset=L(get_detection_dataset_dicts)(names=TRAIN_NAME), mapper=L(ToyMapper)(is_train=True),
        total_batch_size=2, num_workers=0),
    test=L(build_detection_test_loader)(
        dataset=L(get_detection_dataset_dicts)(names=TEST_NAME, filter_empty=False), mapper=L(ToyMapper)(),
        num_workers=0),
    evaluator=L(ToyEvaluator)(dataset_name=TEST_NAME),
)
# 8 images / batch 2 = 4 iterations per epoch; 4 epochs, lr drop after 3 -> max_iter 16, drop at 12.
train.epochs = 4
train.lr_drop = 3
train.log_period = 1
train.device = "cpu"
optimizer.lr = 1e-2
"""


def write_toy_config(directory) -> Path:
    """Write the toy LazyConfig into ``directory`` and return its path."""
    path = Path(directory) / "toy_config.py"
    path.write_text(textwrap.dedent(TOY_CONFIG.format(repo=str(REPO))))
    return path


def run_train_net(args, cwd, timeout=240) -> subprocess.CompletedProcess:
    """Run tools/lazyconfig_train_net.py in a subprocess (one CPU thread, this directory importable)."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), str(HERE)]), OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, str(REPO / "tools" / "lazyconfig_train_net.py"), *args], cwd=cwd,
                          env=env, capture_output=True, text=True, timeout=timeout)


