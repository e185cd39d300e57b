"""A run killed with SIGKILL and resumed with --resume ends with the weights of an uninterrupted run."""
import shutil
import signal

import pytest
import torch
from engine_toys import run_train_net, write_toy_config

from rlipv2.engine.checkpoint import safe_torch_load

COMMON = ["train.max_iter=12", "train.checkpointer.period=4", "train.eval_period=4", "train.ema.enabled=True",
          "train.ema.decay=0.9"]


def _ok(p):
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-6000:]


def _final(d):
    return safe_torch_load(str(d / "model_final.pth"))


@pytest.mark.slow  # four short training runs in subprocesses (~40-60 s on 2 cores)
def test_sigkill_then_resume_matches_uninterrupted_run(tmp_path):
    cfg = write_toy_config(tmp_path)
    ref, run = tmp_path / "ref", tmp_path / "run"
    _ok(run_train_net(["--config-file", str(cfg), f"train.output_dir={ref}", "train.resume_fast_forward=True",
                       *COMMON], tmp_path))

    # SIGKILL during the 7th training step (iteration 6): the last checkpoint is iteration 3
    p = run_train_net(["--config-file", str(cfg), f"train.output_dir={run}", "model.die_after=7", *COMMON], tmp_path)
    assert p.returncode == -signal.SIGKILL, p.stderr[-3000:]
    assert (run / "last_checkpoint").read_text() == "model_0000003.pth"
    assert not (run / "model_final.pth").exists()
    control = tmp_path / "control"
    shutil.copytree(run, control)

    _ok(run_train_net(["--config-file", str(cfg), "--resume", f"train.output_dir={run}",
                       "train.resume_fast_forward=True", *COMMON], tmp_path))
    a, b = _final(ref), _final(run)
    assert a["iteration"] == b["iteration"] == 11
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    for k in a["ema"]["state"]:
        assert torch.equal(a["ema"]["state"][k], b["ema"]["state"][k]), k
    assert "Fast-forwarded the train loader by 4 batches" in (run / "log.txt").read_text()

    # Without replaying the consumed batches the data order differs, and so do the weights.
    _ok(run_train_net(["--config-file", str(cfg), "--resume", f"train.output_dir={control}", *COMMON], tmp_path))
    c = _final(control)
    assert any(not torch.equal(a["model"][k], c["model"][k]) for k in a["model"])


@pytest.mark.slow  # two short training runs and a resume in subprocesses (~30-45 s on 2 cores)
def test_frozen_weights_stored_once_and_resume_stays_exact(tmp_path):
    """train.checkpointer.frozen_weights_once: the frozen text encoder is in one file, not in each checkpoint;
    a killed run resumed from such checkpoints ends with the weights of an uninterrupted one."""
    import os

    cfg = write_toy_config(tmp_path)
    frozen = ["model.freeze_text_encoder=True", "train.checkpointer.frozen_weights_once=True",
              "train.resume_fast_forward=True", *COMMON]
    ref, run = tmp_path / "ref", tmp_path / "run"
    _ok(run_train_net(["--config-file", str(cfg), f"train.output_dir={ref}", *frozen], tmp_path))
    p = run_train_net(["--config-file", str(cfg), f"train.output_dir={run}", "model.die_after=7", *frozen], tmp_path)
    assert p.returncode == -signal.SIGKILL, p.stderr[-3000:]
    _ok(run_train_net(["--config-file", str(cfg), "--resume", f"train.output_dir={run}", *frozen], tmp_path))

    stored = [f for f in os.listdir(run) if f.startswith("frozen_weights_")]
    assert len(stored) == 1  # once per run, across the restart
    raw = safe_torch_load(str(run / "model_final.pth"))
    assert "text_encoder.weight" not in raw["model"] and raw["frozen_weights"]["file"] == stored[0]
    a = safe_torch_load(str(ref / "model_final.pth"))
    from engine_toys import ToyRelationModel

    from rlipv2.engine import RLIPv2Checkpointer

    models = []
    for d in (ref, run):
        m = ToyRelationModel(num_queries=4, dim=8, freeze_text_encoder=True)
        RLIPv2Checkpointer(m, strict=True).load(str(d / "model_final.pth"))  # frozen weights read back by name
        models.append(m.state_dict())
    assert a["iteration"] == raw["iteration"] == 11
    for k in models[0]:
        assert torch.equal(models[0][k], models[1][k]), k
