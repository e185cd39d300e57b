"""Shared fixtures: a tiny random text encoder written to a temp directory and a tiny RLIPv2 model."""
from __future__ import annotations

import os

import pytest
import torch

CONFIG_DIR = os.path.join(os.path.dirname(__file__), "..", "..", "configs", "common", "models")

OBJECTS = ["person", "bicycle", "cup", "dog"]
RELATIONS = ["hold", "ride", "sit on", "walk", "drink with"]


@pytest.fixture(scope="session")
def tiny_text_dir(tmp_path_factory):
    from rlipv2.utils.testing import TINY_LABELS, save_tiny_text_encoder

    return save_tiny_text_encoder(tmp_path_factory.mktemp("tiny_roberta"), TINY_LABELS)


def load_model_config(name: str, text_dir: str, **overrides):
    from detectron2.config import LazyConfig

    cfg = LazyConfig.load(os.path.join(CONFIG_DIR, name))
    cfg.model.text_encoder.name_or_path = text_dir
    for k, v in overrides.items():
        node = cfg.model
        parts = k.split(".")
        for p in parts[:-1]:
            node = node[p]
        node[parts[-1]] = v
    return cfg


def build_tiny_model(text_dir: str, **overrides):
    from detectron2.config import instantiate

    overrides.setdefault("object_labels", OBJECTS)
    overrides.setdefault("relation_labels", RELATIONS)
    cfg = load_model_config("rlipv2_parseda_tiny.py", text_dir, **overrides)
    torch.manual_seed(0)
    return instantiate(cfg.model)


@pytest.fixture
def tiny_model(tiny_text_dir):
    return build_tiny_model(tiny_text_dir)


def label_texts():
    return OBJECTS + ["no objects"] + RELATIONS, len(OBJECTS)


def random_batch(n=2, h=64, w=80, seed=0):
    g = torch.Generator().manual_seed(seed)
    images = torch.randn(n, 3, h, w, generator=g)
    mask = torch.zeros(n, h, w, dtype=torch.bool)
    if n > 1:  # second image smaller: padded right and bottom
        images[1, :, h - 16:] = 0
        images[1, :, :, w - 24:] = 0
        mask[1, h - 16:] = True
        mask[1, :, w - 24:] = True
    return images, mask
