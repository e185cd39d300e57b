"""Atomic checkpoint writes, safe loading and the official query truncation."""
import argparse
import os
import pickle
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from engine_toys import ToyRelationModel

import rlipv2.engine.checkpoint as ckpt_mod
from rlipv2.engine.checkpoint import RLIPv2Checkpointer, UnsafeCheckpointError, safe_torch_load

REPO = Path(__file__).resolve().parents[2]


def _model(seed=0, **kw):
    torch.manual_seed(seed)
    return ToyRelationModel(**kw)


def _same_weights(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_save_writes_file_and_tag(tmp_path):
    m = _model()
    c = RLIPv2Checkpointer(m, str(tmp_path))
    c.save("model_0000009", iteration=9)
    assert (tmp_path / "last_checkpoint").read_text() == "model_0000009.pth"
    assert c.get_checkpoint_file() == str(tmp_path / "model_0000009.pth")
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]
    m2 = _model(seed=1)
    extra = RLIPv2Checkpointer(m2).load(str(tmp_path / "model_0000009.pth"))
    assert extra["iteration"] == 9 and _same_weights(m, m2)


def test_crash_mid_write_keeps_previous_checkpoint(tmp_path, monkeypatch):
    m = _model()
    c = RLIPv2Checkpointer(m, str(tmp_path))
    c.save("model_final", iteration=1)
    good = (tmp_path / "model_final.pth").read_bytes()

    real_save = torch.save

    def crashing_save(obj, f, *a, **k):
        real_save(obj, f, *a, **k)
        f.truncate(100)  # half a file on disk ...
        raise KeyboardInterrupt("simulated kill during checkpoint write")  # ... then the process dies

    with torch.no_grad():
        for p in m.parameters():
            p.add_(1.0)
    monkeypatch.setattr(ckpt_mod.torch, "save", crashing_save)
    with pytest.raises(KeyboardInterrupt):
        c.save("model_final", iteration=2)  # overwrite the same name
    with pytest.raises(KeyboardInterrupt):
        c.save("model_0000002", iteration=2)  # a new name
    monkeypatch.setattr(ckpt_mod.torch, "save", real_save)

    assert (tmp_path / "model_final.pth").read_bytes() == good
    assert not (tmp_path / "model_0000002.pth").exists()
    assert (tmp_path / "last_checkpoint").read_text() == "model_final.pth"
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]
    m2 = _model(seed=3)
    assert RLIPv2Checkpointer(m2).load(str(tmp_path / "model_final.pth"))["iteration"] == 1


_WRITER = textwrap.dedent("""
    import sys, torch
    from rlipv2.engine.checkpoint import RLIPv2Checkpointer
    m = torch.nn.Linear(2048, 2048)  # 16 MB per checkpoint
    c = RLIPv2Checkpointer(m, sys.argv[1])
    i = 0
    while True:
        with torch.no_grad():
            m.weight.fill_(i); m.bias.fill_(i)
        c.save("model_final", iteration=i)
        print("saved", i, flush=True)
        i += 1
""")


@pytest.mark.parametrize("delay", [0.02, 0.11])
def test_sigkill_during_writes_never_leaves_a_truncated_checkpoint(tmp_path, delay):
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(tmp_path)], stdout=subprocess.PIPE, text=True,
                            env=env, cwd=str(REPO))
    try:
        assert proc.stdout.readline().startswith("saved 0")
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
    assert (tmp_path / "last_checkpoint").read_text() == "model_final.pth"
    data = safe_torch_load(str(tmp_path / "model_final.pth"))
    i = data["iteration"]
    assert torch.all(data["model"]["weight"] == i) and torch.all(data["model"]["bias"] == i)


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_crafted_pickle_is_refused_with_clear_message(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    torch.save({"model": _model().state_dict(), "payload": _Evil(marker)}, str(path))
    with pytest.raises(UnsafeCheckpointError, match=r"Refusing to load checkpoint .*evil.pth.*allow-list.*system"):
        RLIPv2Checkpointer(_model()).load(str(path))
    assert not marker.exists()

    pkl = tmp_path / "evil.pkl"
    pkl.write_bytes(pickle.dumps({"blobs": {"w": _Evil(marker)}}))
    with pytest.raises(UnsafeCheckpointError, match="posix.system|os.system|not allowed"):
        RLIPv2Checkpointer(_model()).load(str(pkl))
    assert not marker.exists()


def test_official_style_checkpoint_with_namespace_loads(tmp_path):
    src = _model(seed=5)
    args = argparse.Namespace(lr=1.41e-4, num_queries=200, dataset_file="hico", lr_drop=15, schedule="step",
                              backbone="resnet50", flags=[1, 2], extra=None)
    path = tmp_path / "checkpoint0019.pth"
    torch.save({"model": src.state_dict(), "optimizer": {"state": {}, "param_groups": []}, "epoch": 19,
                "args": args}, str(path))
    dst = _model(seed=6)
    rest = RLIPv2Checkpointer(dst).load(str(path))
    assert _same_weights(src, dst)
    assert isinstance(rest["args"], argparse.Namespace) and rest["args"].num_queries == 200 and rest["epoch"] == 19


def test_legacy_pkl_with_numpy_blobs_loads(tmp_path):
    src = _model(seed=7)
    blobs = {k: v.numpy() for k, v in src.state_dict().items()}
    path = tmp_path / "weights.pkl"
    path.write_bytes(pickle.dumps({"model": blobs, "__author__": "test"}))
    dst = _model(seed=8)
    RLIPv2Checkpointer(dst).load(str(path))
    assert _same_weights(src, dst)
    assert isinstance(blobs["tgt_embed.weight"], np.ndarray)


def test_query_truncation_200_to_128_style(tmp_path):
    src = _model(seed=1, num_queries=6)
    sd = {("module." + k): v for k, v in src.state_dict().items()}  # DDP-saved: prefix is stripped
    path = tmp_path / "pretrained.pth"
    torch.save({"model": sd}, str(path))

    plain = _model(seed=2, num_queries=4)
    before = plain.tgt_embed.weight.detach().clone()
    RLIPv2Checkpointer(plain).load(str(path))  # shapes differ: the rows are skipped, not loaded
    assert torch.equal(plain.tgt_embed.weight, before)
    assert torch.equal(plain.sub_box.weight, src.sub_box.weight)

    trunc = _model(seed=2, num_queries=4)
    RLIPv2Checkpointer(trunc, truncate_queries=True).load(str(path))
    for name in ("tgt_embed", "verb_tgt_embed", "refpoint_embed"):
        assert torch.equal(getattr(trunc, name).weight, getattr(src, name).weight[:4]), name
    assert torch.equal(trunc.sub_box.weight, src.sub_box.weight)


def test_resume_pointer_survives_missing_tag(tmp_path):
    c = RLIPv2Checkpointer(_model(), str(tmp_path))
    assert not c.has_checkpoint()
    c.save("model_0000004")
    assert c.has_checkpoint()


def test_strict_load_refuses_wrong_architecture(tmp_path):
    from rlipv2.engine.checkpoint import CheckpointMismatchError

    path = tmp_path / "other.pth"
    torch.save({"model": _model(num_queries=6, dim=16).state_dict()}, str(path))
    with pytest.raises(CheckpointMismatchError, match=r"other.pth.*does not match ToyRelationModel.*shapes"):
        RLIPv2Checkpointer(_model(), strict=True).load(str(path))
    torch.save({"model": {"foo.weight": torch.zeros(2)}}, str(path))
    with pytest.raises(CheckpointMismatchError, match=r"missing from the checkpoint.*unknown to the model"):
        RLIPv2Checkpointer(_model(), strict=True).load(str(path))
    # non-strict (initialisation) accepts partly matching weights, but not a file of which nothing matches
    with pytest.raises(CheckpointMismatchError, match=r"other.pth': none of its 1 weights matches"):
        RLIPv2Checkpointer(_model()).load(str(path))
    partial = {**{k: v for k, v in _model(seed=4).state_dict().items() if k.startswith("backbone")},
               "foo.weight": torch.zeros(2)}
    torch.save({"model": partial}, str(path))
    m = _model(seed=9)
    RLIPv2Checkpointer(m).load(str(path))  # warns only
    assert torch.equal(m.backbone[0].weight, _model(seed=4).backbone[0].weight)
    good = tmp_path / "good.pth"
    torch.save({"model": _model(seed=4).state_dict()}, str(good))
    m = _model(seed=9)
    RLIPv2Checkpointer(m, strict=True).load(str(good))
    assert _same_weights(m, _model(seed=4))
