"""tools/lazyconfig_train_net.py on CPU: train, checkpoints, --eval-only (resume: test_engine_resume_exact.py)."""
import json
import os
from pathlib import Path

import pytest
from engine_toys import run_train_net, write_toy_config

from rlipv2.engine.checkpoint import safe_torch_load


def _metrics(path):
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


@pytest.fixture
def toy_config(tmp_path):
    return write_toy_config(tmp_path)


def _run(args, cwd, timeout=240):
    p = run_train_net(args, cwd, timeout=timeout)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-6000:]
    return p


def test_train_then_eval_only_on_cpu(tmp_path, toy_config):
    out = tmp_path / "out"
    _run(["--config-file", str(toy_config), f"train.output_dir={out}", "train.ema.enabled=True",
          "train.ema.decay=0.9"], tmp_path)

    # checkpoints: one per epoch (4 iterations; the 3 latest kept) and the final one, tagged last
    assert (out / "last_checkpoint").read_text() == "model_final.pth"
    for name in ("model_0000007.pth", "model_0000011.pth", "model_0000015.pth", "model_final.pth"):
        assert (out / name).is_file(), sorted(os.listdir(out))
    assert not (out / "model_0000003.pth").exists()  # rotated out by checkpointer.max_to_keep=3
    assert not [f for f in os.listdir(out) if f.endswith(".tmp")]
    final = safe_torch_load(str(out / "model_final.pth"))
    assert final["iteration"] == 15 and "ema" in final and "optimizer" in final["trainer"]
    ema_only = safe_torch_load(str(out / "model_final_ema.pth"))
    assert all((ema_only["model"][k] == final["ema"]["state"][k]).all() for k in final["model"])
    assert (out / "config.yaml").is_file() and (out / "log.txt").is_file()
    assert "dataset_size: 8" in (out / "config.yaml").read_text()
    assert any(f.startswith("events.out.tfevents") for f in os.listdir(out))

    # metrics.json: losses every iteration, the lr drop at epoch 3 of 4, evaluations of raw + EMA weights
    rows = _metrics(out / "metrics.json")
    lr = {r["iteration"]: r["lr"] for r in rows if "lr" in r}
    assert sorted(lr) == list(range(16))
    assert lr[11] == pytest.approx(1e-2) and lr[12] == pytest.approx(1e-3)
    evals = [r for r in rows if "toy/mean_gt_rel_score" in r]
    assert [r["iteration"] for r in evals] == [3, 7, 11, 16]  # the final one is logged at max_iter
    assert all("ema/toy/mean_gt_rel_score" in r for r in evals)
    assert all("grad_norm" in r and "total_loss" in r for r in rows if "lr" in r)
    log = (out / "log.txt").read_text()
    assert "eta:" in log

    # --eval-only from the checkpoint reproduces the final evaluation
    ev = tmp_path / "eval"
    with open(toy_config, "a") as f:  # a second, named test set
        f.write("dataloader['extra_tests'] = dict(again=dict(test=dataloader['test'], "
                "evaluator=dataloader['evaluator']))\n")
    p = _run(["--config-file", str(toy_config), "--eval-only", f"train.init_checkpoint={out / 'model_final.pth'}",
              f"train.output_dir={ev}", "train.ema.enabled=True"], tmp_path)
    res = json.loads((ev / "eval_results.json").read_text())
    assert res["toy"]["num_images"] == 4.0
    assert res["again/toy"] == res["toy"] and res["ema/again/toy"] == res["ema/toy"]
    assert res["toy"]["mean_gt_rel_score"] == pytest.approx(evals[-1]["toy/mean_gt_rel_score"], rel=1e-5)
    assert res["ema/toy"]["mean_gt_rel_score"] == pytest.approx(evals[-1]["ema/toy/mean_gt_rel_score"], rel=1e-5)
    assert "mean_gt_rel_score" in p.stdout


@pytest.mark.slow
def test_two_process_gloo_training_on_cpu_fast_dev_run(tmp_path, toy_config):
    out = tmp_path / "out2"
    _run(["--config-file", str(toy_config), "--num-gpus", "2", "--dist-url", "auto", f"train.output_dir={out}",
          "train.fast_dev_run.enabled=True"], tmp_path, timeout=400)
    ck = safe_torch_load(str(out / "model_final.pth"))
    assert ck["iteration"] == 19  # fast_dev_run: 20 iterations
    assert len(ck["trainer"]["hooks"]["RNGStateHook"]["per_rank"]) == 2  # both ranks' RNG states
    assert "World size: 2" in (out / "log.txt").read_text()
    assert (out / "model_0000009.pth").is_file()
    evals = [r["iteration"] for r in _metrics(out / "metrics.json") if "toy/mean_gt_rel_score" in r]
    assert evals == [9, 20] and all("lr" in r for r in _metrics(out / "metrics.json") if r["iteration"] < 20)
