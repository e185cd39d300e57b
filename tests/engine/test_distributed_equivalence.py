"""Two gloo processes on CPU give the results of one process with the same total batch.

* Gradients: one training step of the tiny RLIPv2-ParSeDA (two images of one size, so that no padding
  differs between the runs); each rank sees one image. Dropout is off (the text encoder in eval mode, every
  ``nn.Dropout`` and the ALIF fusion's functional dropout at p = 0): random masks could not match across
  the two layouts.

  - The box losses (L1, GIoU, every decoder layer) are normalised by the number of interactions that the
    criterion all-reduces over the ranks, and DDP averages the gradients: the gradient equals the one-process
    gradient of the two-image batch.
  - The classification losses follow the official (DETR / QPIC / RLIPv2) normalisation, which is per
    process: the object cross-entropy is a class-weighted mean over the process's queries and the verb
    focal loss is divided by the process's own positives. Their multi-process gradient is therefore the
    mean of per-process gradients, not the big-batch gradient (as in the official multi-GPU training);
    the test checks exactly that, by computing the per-image gradients in one process with the number of
    interactions fixed to its all-reduced value.
* Metrics: HICOEvaluator with ``process()`` split across the ranks and ``evaluate()`` gathering to rank 0
  gives exactly the metrics of one process that saw every image.
"""
from __future__ import annotations

import math
import os
import socket

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.structures import Boxes, Instances

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MODEL_CONFIG = os.path.join(REPO, "configs", "common", "models", "rlipv2_parseda_tiny.py")
OBJECTS = ["person", "bicycle", "cup", "dog"]
RELATIONS = ["hold", "ride", "sit on", "walk", "drink with"]
EVAL_NAME = "dist_equiv_hico"


# ------------------------------------------------------------------------------------------- helpers
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _build_model(text_dir: str):
    from detectron2.config import LazyConfig, instantiate

    cfg = LazyConfig.load(MODEL_CONFIG)
    cfg.model.text_encoder.name_or_path = text_dir
    cfg.model.object_labels = OBJECTS
    cfg.model.relation_labels = RELATIONS
    torch.manual_seed(0)
    model = instantiate(cfg.model)
    model.train()
    model.text_encoder.eval()  # Hugging Face modules drop out only in training mode
    for m in model.modules():
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.0
        elif isinstance(getattr(m, "dropout", None), float):  # functional dropout (the ALIF fusion attention)
            m.dropout = 0.0
    return model


def _train_inputs(seed: int, h: int = 64, w: int = 80) -> dict:
    g = torch.Generator().manual_seed(seed)
    boxes = torch.tensor([[2.0, 3.0, 30.0, 40.0], [10.0, 12.0, 50.0, 45.0], [0.0, 0.0, 20.0, 20.0]])
    boxes += torch.rand(3, 4, generator=g) * 4
    inst = Instances((h, w), gt_boxes=Boxes(boxes), gt_classes=torch.tensor([0, 2 - seed % 2, 3]))
    rels = torch.tensor([[0, 1, seed % 5], [0, 2, 1]]) if seed % 2 else torch.tensor([[0, 1, 0], [0, 1, 4], [0, 2, 1]])
    return {"image": torch.randint(0, 255, (3, h, w), dtype=torch.uint8, generator=g), "height": h, "width": w,
            "instances": inst, "file_name": f"img{seed}.jpg", "relations": rels}


def _is_box_loss(k: str) -> bool:
    return "bbox" in k or "giou" in k


def _step_gradients(model, inputs, which=lambda k: True) -> dict[str, torch.Tensor]:
    """Gradients of one step on the sum of the losses selected by ``which`` (zeros where none reaches)."""
    model.zero_grad(set_to_none=True)
    losses = model(inputs)
    sum(v for k, v in losses.items() if which(k)).backward()
    named = model.module.named_parameters() if hasattr(model, "module") else model.named_parameters()
    return {n: (p.grad if p.grad is not None else torch.zeros_like(p)).detach().clone() for n, p in named
            if p.requires_grad}


def _register_eval_dataset(n: int = 10) -> None:
    if EVAL_NAME in DatasetCatalog.list():
        return

    def dicts():
        out = []
        for i in range(n):
            rng = np.random.default_rng(i)
            x, y = rng.integers(0, 30, 2).tolist()
            out.append({"file_name": f"e{i}.jpg", "image_id": i, "height": 64, "width": 80,
                        "annotations": [{"bbox": [x, y, x + 30, y + 30], "bbox_mode": 0, "category_id": 0},
                                        {"bbox": [x + 10, y + 5, x + 45, y + 30], "bbox_mode": 0,
                                         "category_id": int(i % 2 + 1)}],
                        "relations": [{"subject": 0, "object": 1, "predicate": int(i % 3)}]})
        return out

    DatasetCatalog.register(EVAL_NAME, dicts)
    MetadataCatalog.get(EVAL_NAME).set(thing_classes=["person", "bicycle", "cup"],
                                       predicate_classes=["hold", "ride", "walk"], correct_mat=np.ones((3, 3)))


def _eval_io(i: int) -> tuple[dict, dict]:
    """Input and contract-4 output for evaluation image ``i``: 4 noisy pair predictions."""
    d = DatasetCatalog.get(EVAL_NAME)[i]
    rng = np.random.default_rng(100 + i)
    gt = torch.tensor([a["bbox"] for a in d["annotations"]], dtype=torch.float32)
    q = 4
    sub = gt[0].expand(q, 4) + torch.from_numpy(rng.normal(0, 3, (q, 4))).float()
    obj = gt[1].expand(q, 4) + torch.from_numpy(rng.normal(0, 3, (q, 4))).float()
    boxes = torch.cat([sub, obj])
    boxes[:, 2:] = torch.maximum(boxes[:, 2:], boxes[:, :2] + 1)
    classes = torch.cat([torch.zeros(q, dtype=torch.int64), torch.from_numpy(rng.integers(1, 3, q))])
    inst = Instances((64, 80), pred_boxes=Boxes(boxes), pred_classes=classes, scores=torch.ones(2 * q))
    out = {"instances": inst, "pairs": {"subject": torch.arange(q), "object": torch.arange(q) + q,
                                        "relation_scores": torch.from_numpy(rng.random((q, 3))).float()}}
    return {"image_id": i, "file_name": d["file_name"], "height": 64, "width": 80}, out


def _evaluate(image_ids) -> dict:
    from rlipv2.evaluation import HICOEvaluator

    ev = HICOEvaluator(EVAL_NAME)
    ev.reset()
    for i in image_ids:
        inp, out = _eval_io(i)
        ev.process([inp], [out])
    return ev.evaluate()


def _worker(rank: int, world: int, port: int, text_dir: str, out_dir: str) -> None:
    import torch.distributed as dist
    from detectron2.utils import comm

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    comm.create_local_process_group(world)
    try:
        model = torch.nn.parallel.DistributedDataParallel(_build_model(text_dir), find_unused_parameters=True)
        grads = {"box": _step_gradients(model, [_train_inputs(rank)], _is_box_loss),
                 "all": _step_gradients(model, [_train_inputs(rank)])}
        _register_eval_dataset()
        metrics = _evaluate(range(rank, 10, world))  # rank r processes images r, r + world, ...
        if rank == 0:
            torch.save({"grads": grads, "metrics": metrics}, os.path.join(out_dir, "rank0.pt"))
        else:
            assert metrics == {}, "only rank 0 reports metrics"
        dist.barrier()
    finally:
        dist.destroy_process_group()


def _assert_grads_equal(got: dict, want: dict, min_reached: int) -> None:
    assert set(got) == set(want) and len(want) > 50
    assert sum(int(g.abs().sum() > 0) for g in want.values()) >= min_reached  # gradients reach the model
    for n, g in want.items():  # float tolerance, relative to the tensor's scale (sums run in other orders)
        torch.testing.assert_close(got[n], g, rtol=1e-3, atol=1e-4 * float(g.abs().max()) + 1e-8,
                                   msg=lambda m, n=n: f"{n}: {m}")


# ---------------------------------------------------------------------------------------------- test
@pytest.mark.slow  # two spawned processes that each build the tiny model (~30-60 s on 2 cores)
def test_two_gloo_processes_equal_one_process(tmp_path):
    import rlipv2.modeling.criterion as criterion_mod
    from rlipv2.utils.testing import TINY_LABELS, save_tiny_text_encoder

    text_dir = save_tiny_text_encoder(tmp_path / "tiny_roberta", TINY_LABELS)
    mp.start_processes(_worker, args=(2, _free_port(), str(text_dir), str(tmp_path)), nprocs=2, join=True,
                       start_method="spawn")
    dist_res = torch.load(str(tmp_path / "rank0.pt"), weights_only=True)
    torch.set_num_threads(1)
    model = _build_model(str(text_dir))
    batch = [_train_inputs(0), _train_inputs(1)]

    # box losses: equal to one process with the two-image batch
    seen = []
    real = criterion_mod.num_interactions_across_processes

    def spy(targets, device):
        seen.append(real(targets, device))
        return seen[-1]

    criterion_mod.num_interactions_across_processes = spy
    try:
        single_box = _step_gradients(model, batch, _is_box_loss)
    finally:
        criterion_mod.num_interactions_across_processes = real
    _assert_grads_equal(dist_res["grads"]["box"], single_box, min_reached=10)

    # every loss: the mean of per-image gradients, with the all-reduced number of interactions (2 ranks)
    criterion_mod.num_interactions_across_processes = lambda targets, device: seen[0] / 2
    try:
        per_image = [_step_gradients(model, [x]) for x in batch]
    finally:
        criterion_mod.num_interactions_across_processes = real
    _assert_grads_equal(dist_res["grads"]["all"], {n: (per_image[0][n] + per_image[1][n]) / 2 for n in single_box},
                        min_reached=100)
    # ... which is not the big-batch gradient: the classification losses are normalised per process
    single_all = _step_gradients(model, batch)
    gap = max(float((single_all[n] - dist_res["grads"]["all"][n]).abs().max() / (g.abs().max() + 1e-12))
              for n, g in single_all.items())
    assert gap > 1e-3

    _register_eval_dataset()
    ref = _evaluate(range(10))
    assert ref["hoi"]["mAP"] > 0
    got = dist_res["metrics"]["hoi"]
    assert set(got) == set(ref["hoi"]) and len(got) >= 4
    for k, v in ref["hoi"].items():  # exactly equal (NaN where no class of a split has ground truth)
        assert (math.isnan(v) and math.isnan(got[k])) or got[k] == v, (k, got[k], v)
