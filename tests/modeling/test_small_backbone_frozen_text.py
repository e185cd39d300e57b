"""The demo's building blocks: the narrow from-scratch ResNet and the frozen (cached) text encoder."""
import torch

from rlipv2.modeling import HFTextEncoder, build_small_resnet
from rlipv2.utils.testing import save_tiny_text_encoder


def test_small_resnet_strides_and_channels():
    net = build_small_resnet(width=16, num_blocks=(1, 1, 1, 1))
    out = net(torch.randn(2, 3, 64, 96))
    assert {k: tuple(v.shape) for k, v in out.items()} == {
        "res3": (2, 32, 8, 12), "res4": (2, 64, 4, 6), "res5": (2, 128, 2, 3)}
    assert all(p.requires_grad for p in net.parameters())  # freeze_at=0: everything trains
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in net.modules())


def test_frozen_text_encoder_caches_in_training_and_trains_its_projection(tmp_path):
    path = save_tiny_text_encoder(tmp_path / "enc")
    enc = HFTextEncoder(str(path), pooling="mean", output_dim=32, trainable=False)
    assert not any(p.requires_grad for p in enc.model.parameters())
    enc.train()
    assert not enc.model.training  # frozen: dropout off
    texts = ["person", "cup", "hold"]
    a = enc(texts)
    b = enc(texts)
    assert enc.cache_misses == 1 and enc.cache_hits == 1
    assert torch.allclose(a, b)
    b.sum().backward()
    assert enc.proj.weight.grad is not None and enc.proj.weight.grad.abs().sum() > 0
    enc(["person", "dog"])  # another sequence: recomputed
    assert enc.cache_misses == 2
    trainable = HFTextEncoder(str(path), pooling="mean", output_dim=32)
    trainable.train()
    trainable(texts).sum().backward()
    assert any(p.grad is not None for p in trainable.model.parameters())
