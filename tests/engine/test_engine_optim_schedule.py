"""Optimizer parameter groups and the epoch step schedule."""
from pathlib import Path

import pytest
import torch
from detectron2.config import LazyConfig, instantiate
from detectron2.solver import LRMultiplier
from engine_toys import ToyRelationModel
from omegaconf import OmegaConf

from rlipv2.engine.optimizer import build_rlipv2_optimizer, get_rlipv2_param_groups, param_group_of
from rlipv2.engine.schedule import (
    EpochStepParamScheduler,
    compute_iters_per_epoch,
    compute_max_iter,
    lr_drop_iterations,
)

REPO = Path(__file__).resolve().parents[2]


def _names(model, params):
    ids = {id(p) for p in params}
    return {n for n, p in model.named_parameters() if id(p) in ids}


def test_param_group_of_names():
    assert param_group_of("backbone.0.body.layer1.0.conv1.weight") == "backbone"
    assert param_group_of("transformer.text_encoder.encoder.layer.0.attention.self.query.weight") == "text_encoder"
    # The fusion RoBERTa layers are not the text encoder: main lr, as in the official code.
    assert param_group_of("transformer.encoder.roberta_layers.0.attention.self.query.weight") == "main"
    assert param_group_of("transformer.encoder.VLFuse_layers.0.b_attn.gamma_v") == "main"


def test_groups_and_lrs_on_toy_model():
    model = ToyRelationModel()
    model.tgt_embed.weight.requires_grad_(False)  # frozen parameters are left out
    opt = build_rlipv2_optimizer(model, lr=1e-4, backbone_lr=1e-5, text_encoder_lr=2e-5, weight_decay=1e-4)
    groups = {g["name"]: g for g in opt.param_groups}
    assert set(groups) == {"main", "backbone", "text_encoder"}
    assert groups["main"]["lr"] == 1e-4 and groups["backbone"]["lr"] == 1e-5 and groups["text_encoder"]["lr"] == 2e-5
    assert all(g["weight_decay"] == 1e-4 for g in opt.param_groups)
    main = _names(model, groups["main"]["params"])
    assert "transformer.encoder.roberta_layers.0.weight" in main
    assert "tgt_embed.weight" not in main
    assert _names(model, groups["backbone"]["params"]) == {"backbone.0.weight", "backbone.0.bias"}
    assert _names(model, groups["text_encoder"]["params"]) == {"text_encoder.weight", "text_encoder.bias"}
    n_trainable = sum(1 for p in model.parameters() if p.requires_grad)
    assert sum(len(g["params"]) for g in opt.param_groups) == n_trainable


def test_groups_reject_missing_model():
    with pytest.raises(ValueError, match="optimizer.params.model"):
        get_rlipv2_param_groups(None, 1e-4, 1e-5, 1e-5)


def test_optim_config_instantiates_with_interpolated_lr():
    cfg = LazyConfig.load(f"{REPO}/configs/common/optim.py")
    cfg.optimizer.lr = 1.41e-4
    cfg.optimizer.params.backbone_lr = 1.41e-5
    cfg.optimizer.params.model = ToyRelationModel()
    opt = instantiate(cfg.optimizer)
    assert isinstance(opt, torch.optim.AdamW)
    lrs = {g["name"]: g["lr"] for g in opt.param_groups}
    assert lrs == {"main": 1.41e-4, "backbone": 1.41e-5, "text_encoder": 1e-5}
    assert all(g["weight_decay"] == 1e-4 for g in opt.param_groups)


def test_iters_and_max_iter():
    assert compute_iters_per_epoch(1000, 16) == 62  # last partial batch dropped
    assert compute_iters_per_epoch(5, 16) == 1
    assert compute_max_iter(20, 1000, 16) == 1240
    with pytest.raises(ValueError, match="dataset_size"):
        compute_iters_per_epoch(None, 16)


def test_drop_at_epoch_15_of_20():
    ipe = 62
    max_iter = 20 * ipe
    assert lr_drop_iterations(max_iter, 20, 15) == [15 * ipe]
    sched = EpochStepParamScheduler(max_iter=max_iter, epochs=20, lr_drop=15)
    assert sched.iteration_multiplier(15 * ipe - 1) == 1.0
    assert sched.iteration_multiplier(15 * ipe) == pytest.approx(0.1)
    assert sched.iteration_multiplier(max_iter - 1) == pytest.approx(0.1)
    # few-shot recipe: 10 epochs, drop 7; two drops when lr_drop divides twice into epochs
    assert lr_drop_iterations(100, 10, 7) == [70]
    assert lr_drop_iterations(100, 10, 3) == [30, 60, 90]


def test_schedule_through_lr_multiplier_per_group():
    """Driven by Detectron2's LRMultiplier, every group drops at the same iteration, keeping ratios."""
    model = ToyRelationModel()
    opt = build_rlipv2_optimizer(model, lr=1e-4, backbone_lr=1e-5, text_encoder_lr=1e-5)
    max_iter, ipe = 40, 2  # 20 epochs of 2 iterations
    sched = LRMultiplier(opt, EpochStepParamScheduler(max_iter, 20, 15), max_iter)
    lrs = []
    for _ in range(max_iter):
        lrs.append([g["lr"] for g in opt.param_groups])
        opt.step()
        sched.step()
    assert lrs[15 * ipe - 1] == pytest.approx([1e-4, 1e-5, 1e-5])
    assert lrs[15 * ipe] == pytest.approx([1e-5, 1e-6, 1e-6])
    assert lrs[max_iter - 1] == pytest.approx([1e-5, 1e-6, 1e-6])


def test_train_and_schedule_configs_derive_max_iter():
    train = LazyConfig.load(f"{REPO}/configs/common/train.py")
    sched = LazyConfig.load(f"{REPO}/configs/common/schedule.py")
    cfg = OmegaConf.create({"train": train.train, "lr_multiplier": sched.lr_multiplier,
                            "dataloader": {"train": {"total_batch_size": 16}}}, flags={"allow_objects": True})
    cfg.train.dataset_size = 1000
    assert cfg.train.iters_per_epoch == 62 and cfg.train.max_iter == 1240
    assert cfg.train.checkpointer.period == 62 and cfg.train.eval_period == 62
    m = instantiate(cfg.lr_multiplier)
    assert m.iteration_multiplier(15 * 62 - 1) == 1.0 and m.iteration_multiplier(15 * 62) == pytest.approx(0.1)
    # overriding max_iter alone keeps the drop at 15/20 of the run
    cfg = LazyConfig.apply_overrides(cfg, ["train.max_iter=100"])
    m = instantiate(cfg.lr_multiplier)
    assert lr_drop_iterations(100, 20, 15) == [75]
    assert m.iteration_multiplier(74) == 1.0 and m.iteration_multiplier(75) == pytest.approx(0.1)
