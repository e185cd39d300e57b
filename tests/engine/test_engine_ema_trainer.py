"""EMA update math, and the trainer's clipping and autocast."""
import math

import pytest
import torch
from torch import nn

from rlipv2.engine.ema import EMAHook, ModelEMA
from rlipv2.engine.trainer import RLIPv2Trainer, resolve_amp_dtype


class _Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(2, 1)
        self.bn = nn.BatchNorm1d(1)
        self.last_dtype = None

    def forward(self, batch):
        x = torch.stack([b["x"] for b in batch])
        out = self.lin(x)
        self.last_dtype = out.dtype
        return {"loss": (out.float() - 1000.0).pow(2).mean()}


def _loader(n=1000):
    for _ in range(n):
        yield [{"x": torch.tensor([1.0, 2.0])}, {"x": torch.tensor([3.0, -1.0])}]


def test_ema_update_math_and_buffers():
    m = _Tiny()
    with torch.no_grad():
        m.lin.weight.fill_(0.0)
    ema = ModelEMA(m, decay=0.9)
    w = []
    for v in (1.0, 2.0):
        with torch.no_grad():
            m.lin.weight.fill_(v)
        m.bn.num_batches_tracked.fill_(int(v) * 7)
        ema.update(m)
        w.append(v)
    # ema = 0.9 * (0.9 * 0 + 0.1 * 1) + 0.1 * 2 = 0.29
    assert torch.allclose(ema.state["lin.weight"], torch.full((1, 2), 0.29))
    assert int(ema.state["bn.num_batches_tracked"]) == 14  # integer buffers are copied
    assert ema.updates == 2


def test_ema_warmup_decay():
    ema = ModelEMA(_Tiny(), decay=0.999, warmup=10.0)
    assert ema.current_decay() == pytest.approx(0.999 * (1 - math.exp(-1 / 10)))
    ema.updates = 100
    assert ema.current_decay() == pytest.approx(0.999 * (1 - math.exp(-101 / 10)))


def test_ema_swap_and_state_roundtrip():
    m = _Tiny()
    ema = ModelEMA(m, decay=0.5)
    with torch.no_grad():
        m.lin.weight.add_(4.0)
    raw = m.lin.weight.detach().clone()
    ema.update(m)
    with ema.swapped_into(m):
        assert torch.allclose(m.lin.weight, raw - 2.0)
    assert torch.equal(m.lin.weight, raw)  # restored
    other = ModelEMA(_Tiny(), decay=0.5)
    assert not other.loaded
    other.load_state_dict(ema.state_dict())
    assert other.loaded and other.updates == 1 and torch.equal(other.state["lin.weight"], ema.state["lin.weight"])


def test_clipping_limits_update_to_max_norm():
    m = _Tiny()
    opt = torch.optim.SGD(m.parameters(), lr=1.0)
    before = torch.cat([p.detach().flatten().clone() for p in m.parameters()])
    trainer = RLIPv2Trainer(m, _loader(), opt, clip_grad_max_norm=0.1)
    trainer.train(0, 1)
    after = torch.cat([p.detach().flatten() for p in m.parameters()])
    assert (after - before).norm().item() == pytest.approx(0.1, rel=1e-4)
    assert trainer.storage.history("grad_norm").latest() > 100  # logged before clipping


def test_no_clipping_when_disabled():
    m = _Tiny()
    opt = torch.optim.SGD(m.parameters(), lr=1.0)
    before = torch.cat([p.detach().flatten().clone() for p in m.parameters()])
    RLIPv2Trainer(m, _loader(), opt, clip_grad_max_norm=None).train(0, 1)
    after = torch.cat([p.detach().flatten() for p in m.parameters()])
    assert (after - before).norm().item() > 10


def test_bf16_autocast_on_cpu_and_fp16_refused():
    m = _Tiny()
    opt = torch.optim.AdamW(m.parameters(), lr=1e-3)
    RLIPv2Trainer(m, _loader(), opt, amp_enabled=True, amp_precision="bf16", device_type="cpu").train(0, 2)
    assert m.last_dtype == torch.bfloat16
    RLIPv2Trainer(m, _loader(), opt, amp_enabled=False, device_type="cpu").train(0, 1)
    assert m.last_dtype == torch.float32
    with pytest.raises(ValueError, match="fp16 AMP is not supported on CPU"):
        RLIPv2Trainer(m, _loader(), opt, amp_enabled=True, amp_precision="fp16", device_type="cpu")
    with pytest.raises(ValueError, match="precision"):
        resolve_amp_dtype("int8")


def test_ema_hook_tracks_training():
    m = _Tiny()
    opt = torch.optim.SGD(m.parameters(), lr=0.01)
    ema = ModelEMA(m, decay=0.5)
    trainer = RLIPv2Trainer(m, _loader(), opt)
    trainer.register_hooks([EMAHook(ema, m)])
    trainer.train(0, 3)
    assert ema.updates == 3
    assert not torch.equal(ema.state["lin.weight"], m.lin.weight)  # lags behind the raw weights


@pytest.mark.gpu
def test_fp16_grad_scaler_on_gpu():
    m = _Tiny().cuda()
    loader = ([{"x": b["x"].cuda()} for b in batch] for batch in _loader())
    opt = torch.optim.AdamW(m.parameters(), lr=1e-3)
    t = RLIPv2Trainer(m, loader, opt, amp_enabled=True, amp_precision="fp16", device_type="cuda")
    t.train(0, 2)
    assert m.last_dtype == torch.float16
    assert "grad_scaler" in t.state_dict()


def test_rng_state_roundtrip_through_safe_checkpoint(tmp_path):
    import random

    import numpy as np

    from rlipv2.engine.checkpoint import safe_torch_load
    from rlipv2.engine.rng import get_rng_state, preserved_rng_state, set_rng_state

    state = get_rng_state()
    torch.save({"rng": state}, str(tmp_path / "s.pth"))
    first = (random.random(), float(np.random.rand()), float(torch.rand(())))
    set_rng_state(safe_torch_load(str(tmp_path / "s.pth"))["rng"])  # weights_only-compatible
    assert (random.random(), float(np.random.rand()), float(torch.rand(()))) == first
    with preserved_rng_state():
        torch.rand(5), np.random.rand(3), random.random()
    after = (random.random(), float(np.random.rand()), float(torch.rand(())))
    set_rng_state(state)
    random.random(), np.random.rand(), torch.rand(())
    assert (random.random(), float(np.random.rand()), float(torch.rand(()))) == after
