"""Job set-up helpers: device resolution, dataset-size filling, atomic config save."""
from pathlib import Path

import pytest
import torch
from detectron2.config import LazyCall as L
from detectron2.config import LazyConfig
from detectron2.data import get_detection_dataset_dicts
from engine_toys import TRAIN_NAME
from omegaconf import OmegaConf

from rlipv2.engine.defaults import fill_dataset_size, resolve_device, save_config

REPO = Path(__file__).resolve().parents[2]


def _cfg(with_dataset=True):
    train = LazyConfig.load(str(REPO / "configs/common/train.py"), "train")
    dl = {"train": {"total_batch_size": 2}}
    if with_dataset:
        dl["train"]["dataset"] = L(get_detection_dataset_dicts)(names=TRAIN_NAME)
    return OmegaConf.create({"train": train, "dataloader": dl}, flags={"allow_objects": True})


def test_resolve_device():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(None).type == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="CUDA is not available"):
            resolve_device("cuda")


def test_fill_dataset_size_counts_the_train_dataset():
    cfg = _cfg()
    assert cfg.train.max_iter is None  # unknown until the dataset size is known
    assert fill_dataset_size(cfg) == 8
    assert cfg.train.iters_per_epoch == 4 and cfg.train.max_iter == 80 and cfg.train.checkpointer.period == 4
    assert fill_dataset_size(cfg) is None  # already set


def test_fill_dataset_size_not_needed_with_explicit_iterations():
    cfg = LazyConfig.apply_overrides(
        _cfg(with_dataset=False), ["train.max_iter=10", "train.checkpointer.period=5", "train.eval_period=5"])
    assert fill_dataset_size(cfg) is None and cfg.train.dataset_size is None


def test_fill_dataset_size_clear_error_without_dataset():
    with pytest.raises(ValueError, match="train.dataset_size is None"):
        fill_dataset_size(_cfg(with_dataset=False))


def test_save_config_is_atomic_and_loadable(tmp_path):
    cfg = _cfg()
    fill_dataset_size(cfg)
    path = tmp_path / "config.yaml"
    save_config(cfg, str(path))
    assert [p.name for p in tmp_path.iterdir()] == ["config.yaml"]
    back = LazyConfig.load(str(path))
    assert back.train.dataset_size == 8 and back.train.max_iter == 80
