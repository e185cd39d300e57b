"""What a run keeps on disk: frozen weights stored once, max_to_keep across restarts, the eval config."""
from __future__ import annotations

import argparse
import os

import pytest
import torch
from engine_toys import ToyRelationModel

from rlipv2.engine import ModelEMA, RLIPv2Checkpointer, default_setup
from rlipv2.engine.checkpoint import CheckpointMismatchError, safe_torch_load
from rlipv2.engine.hooks import PeriodicCheckpointer


def _frozen_model(seed=0):
    torch.manual_seed(seed)
    return ToyRelationModel(num_queries=4, dim=128, freeze_text_encoder=True)


def test_frozen_weights_are_stored_once_and_loaded_back_by_name(tmp_path):
    model = _frozen_model()
    ema = ModelEMA(model, decay=0.5)
    ck = RLIPv2Checkpointer(model, str(tmp_path), frozen_weights_once=True, ema=ema)
    assert ck.frozen_parameter_names() == ["text_encoder.bias", "text_encoder.weight"]
    ck.save("model_0000001")
    with torch.no_grad():
        model.rel_cls.weight.add_(1.0)  # training changes the trainable weights only
    ck.save("model_0000003")
    frozen_files = sorted(f for f in os.listdir(tmp_path) if f.startswith("frozen_weights_"))
    assert len(frozen_files) == 1  # once per run
    saved = safe_torch_load(str(tmp_path / "model_0000003.pth"))
    assert "text_encoder.weight" not in saved["model"] and "text_encoder.weight" not in saved["ema"]["state"]
    assert saved["frozen_weights"] == {"file": frozen_files[0], "keys": ["text_encoder.bias", "text_encoder.weight"]}
    inline = tmp_path / "inline"
    RLIPv2Checkpointer(model, str(inline), ema=ema).save("model_0000003")  # the same, stored inline
    saved_bytes = os.path.getsize(inline / "model_0000003.pth") - os.path.getsize(tmp_path / "model_0000003.pth")
    assert saved_bytes > 2 * 128 * 128 * 4  # the 128 x 128 float32 frozen weight, in the model and in the EMA

    # a fresh model (other initialisation) loads complete weights, strictly, EMA included
    other = ToyRelationModel(num_queries=4, dim=128, freeze_text_encoder=True)
    other_ema = ModelEMA(other, decay=0.5)
    RLIPv2Checkpointer(other, strict=True, ema=other_ema).load(str(tmp_path / "model_0000003.pth"))
    for k, v in model.state_dict().items():
        assert torch.equal(other.state_dict()[k], v), k
    assert torch.equal(other_ema.state["text_encoder.weight"], model.text_encoder.weight)
    assert set(other_ema.state) == set(ema.state)


def test_changed_frozen_weights_get_a_new_file_and_old_checkpoints_keep_theirs(tmp_path):
    model = _frozen_model()
    ck = RLIPv2Checkpointer(model, str(tmp_path), frozen_weights_once=True)
    ck.save("a")
    old = model.text_encoder.weight.detach().clone()
    with torch.no_grad():
        model.text_encoder.weight.mul_(2.0)
    ck.save("b")
    assert len([f for f in os.listdir(tmp_path) if f.startswith("frozen_weights_")]) == 2
    probe = _frozen_model(seed=1)
    RLIPv2Checkpointer(probe, strict=True).load(str(tmp_path / "a.pth"))
    assert torch.equal(probe.text_encoder.weight, old)
    RLIPv2Checkpointer(probe, strict=True).load(str(tmp_path / "b.pth"))
    assert torch.equal(probe.text_encoder.weight, 2 * old)


def test_missing_frozen_file_is_a_clear_error(tmp_path):
    model = _frozen_model()
    RLIPv2Checkpointer(model, str(tmp_path), frozen_weights_once=True).save("m")
    for f in os.listdir(tmp_path):
        if f.startswith("frozen_weights_"):
            os.remove(tmp_path / f)
    with pytest.raises(FileNotFoundError, match=r"m.pth' keeps its 2 frozen weights in 'frozen_weights_.*missing"):
        RLIPv2Checkpointer(_frozen_model()).load(str(tmp_path / "m.pth"))


def test_a_checkpoint_without_a_single_matching_weight_is_refused(tmp_path):
    path = tmp_path / "official.pth"
    torch.save({"model": {"transformer.ho_decoder.layers.0.weight": torch.zeros(2)}}, str(path))
    with pytest.raises(CheckpointMismatchError, match=r"none of its 1 weights matches .*convert"):
        RLIPv2Checkpointer(ToyRelationModel()).load(str(path))


def _hook(save_dir, keep):
    ck = RLIPv2Checkpointer(ToyRelationModel(), str(save_dir))
    return PeriodicCheckpointer(ck, period=4, max_iter=100, max_to_keep=keep)


def _periodic(save_dir):
    return sorted(f for f in os.listdir(save_dir) if f.startswith("model_0"))


def test_max_to_keep_prunes_the_checkpoints_of_earlier_processes(tmp_path):
    first = _hook(tmp_path, keep=2)
    for it in range(12):  # saves at iterations 3, 7, 11; keeps 7, 11
        first.step(it)
    assert _periodic(tmp_path) == ["model_0000007.pth", "model_0000011.pth"]
    second = _hook(tmp_path, keep=2)  # a restarted (resumed) process
    for it in range(12, 20):
        second.step(it)
    assert _periodic(tmp_path) == ["model_0000015.pth", "model_0000019.pth"]
    assert (tmp_path / "last_checkpoint").read_text() == "model_0000019.pth"


def test_max_to_keep_spares_later_iterations_and_the_tagged_checkpoint(tmp_path):
    for name in ("model_0000007.pth", "model_0000011.pth", "model_0000099.pth"):  # 99: another run's
        torch.save({}, str(tmp_path / name))
    (tmp_path / "last_checkpoint").write_text("model_0000007.pth")
    hook = _hook(tmp_path, keep=1)
    hook.checkpointer.tag_last_checkpoint = lambda name: None  # keep the tag on 7 for this test
    hook.step(15)
    assert _periodic(tmp_path) == ["model_0000007.pth", "model_0000015.pth", "model_0000099.pth"]


def test_eval_only_writes_its_own_config_and_keeps_the_training_one(tmp_path):
    from omegaconf import OmegaConf

    from rlipv2.model_zoo import get_config

    cfg = OmegaConf.create({"train": get_config("common/train.py").train,
                            "dataloader": {"train": {"total_batch_size": 2}}})
    cfg.train.output_dir = str(tmp_path)
    default_setup(cfg, argparse.Namespace(eval_only=False))
    training = (tmp_path / "config.yaml").read_text()
    cfg.train.seed = 7
    default_setup(cfg, argparse.Namespace(eval_only=True))
    assert (tmp_path / "config.yaml").read_text() == training
    assert "seed: 7" in (tmp_path / "config_eval.yaml").read_text() and "seed: 7" not in training
