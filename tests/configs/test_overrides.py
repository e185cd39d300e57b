"""Strict ``key=value`` overrides, and tools/lazyconfig_train_net.py refusing bad input up front."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
from detectron2.config import LazyCall as L
from omegaconf import OmegaConf

from rlipv2.config import ConfigKeyError, apply_overrides, load_config
from rlipv2.model_zoo import get_config

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(REPO, "tests", "engine"))
from engine_toys import write_toy_config  # noqa: E402


def _Toy(dim: int = 8, depth: int = 2):
    return (dim, depth)


def _cfg():
    return OmegaConf.create({
        "train": get_config("common/train.py").train,
        "model": L(_Toy)(dim=4),
        "dataloader": {"train": {"total_batch_size": 2, "num_workers": 0}},
    }, flags={"allow_objects": True})


def test_existing_keys_and_call_arguments_are_overridden():
    cfg = apply_overrides(_cfg(), ["train.max_iter=5", "train.ema.enabled=True", "model.depth=3",
                                   "train.dataset_size=10", "+train.my_key=1"])
    assert cfg.train.max_iter == 5 and cfg.train.ema.enabled and cfg.model.depth == 3 and cfg.train.my_key == 1


@pytest.mark.parametrize("override, message", [
    ("train.max_iters=5", r"unknown config key 'train.max_iters'; closest: train.max_iter"),
    ("trian.max_iter=5", r"unknown config key 'trian.max_iter'; closest: train"),
    ("train.ema.decy=0.5", r"'train.ema.decy'; closest: train.ema.decay"),
    ("model.dpth=3", r"_Toy takes no argument 'dpth'; closest: model.depth"),
    ("train.init_checkpont=x.pth", r"closest: train.init_checkpoint"),
    ("train.log_period.foo=1", r"'train.log_period' is a value"),
])
def test_unknown_keys_fail_with_the_closest_existing_keys(override, message):
    cfg = _cfg()
    before = OmegaConf.to_yaml(cfg.train, resolve=False)
    with pytest.raises(ConfigKeyError, match=message):
        apply_overrides(cfg, ["train.log_period=3", override])
    assert OmegaConf.to_yaml(cfg.train, resolve=False) == before  # nothing applied


def _run(args, cwd, timeout=300):
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=os.path.join(REPO, "tests", "engine"))
    return subprocess.run([sys.executable, os.path.join(REPO, "tools", "lazyconfig_train_net.py"), *args], cwd=cwd,
                          env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def toy_config(tmp_path):
    return write_toy_config(tmp_path)


def _one_line_error(p, *fragments):
    # (library FutureWarnings may precede it; the error is one line, the last one, without a traceback)
    lines = p.stderr.strip().splitlines()
    assert p.returncode == 2, p.stderr[-3000:]
    assert lines[-1].startswith("lazyconfig_train_net.py: error: ") and "Traceback" not in p.stderr, p.stderr[-3000:]
    for f in fragments:
        assert f in lines[-1], lines[-1]


def test_train_net_refuses_a_mistyped_key(tmp_path, toy_config):
    out = tmp_path / "out"
    p = _run(["--config-file", str(toy_config), "train.max_iters=5", f"train.output_dir={out}"], tmp_path)
    _one_line_error(p, "train.max_iters", "closest: train.max_iter")
    assert not out.exists()


def _train_net():
    import importlib.util

    spec = importlib.util.spec_from_file_location("lazyconfig_train_net", os.path.join(REPO, "tools",
                                                                                      "lazyconfig_train_net.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _error_line(capsys, code):
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err and err[-1].startswith("lazyconfig_train_net.py: error: "), err
    return err[-1]


def test_eval_only_refuses_to_run_without_loadable_weights(tmp_path, toy_config, capsys):
    train_net, out = _train_net(), tmp_path / "ev"
    line = _error_line(capsys, train_net.invoke_main(["--config-file", str(toy_config), "--eval-only",
                                                      f"train.output_dir={out}"]))
    assert "--eval-only needs trained weights" in line and "train.init_checkpoint is empty" in line
    (tmp_path / "model_final.pth").write_bytes(b"")
    line = _error_line(capsys, train_net.invoke_main([
        "--config-file", str(toy_config), "--eval-only", f"train.init_checkpoint={tmp_path / 'model_fina.pth'}",
        f"train.output_dir={out}"]))
    assert "model_fina.pth does not exist" in line and "similar files there: model_final.pth" in line
    line = _error_line(capsys, train_net.invoke_main([
        "--config-file", str(toy_config), "--eval-only", f"train.init_checkpont={tmp_path / 'model_final.pth'}",
        f"train.output_dir={out}"]))
    assert "train.init_checkpont" in line and "closest: train.init_checkpoint" in line
    assert not out.exists()


def test_help_shows_this_projects_commands(capsys):
    with pytest.raises(SystemExit) as e:
        _train_net().invoke_main(["--help"])
    assert e.value.code == 0
    text = capsys.readouterr().out
    assert "MODEL.WEIGHTS" not in text and "cfg.yaml" not in text
    assert "--eval-only" in text and "train.init_checkpoint=output/run1/model_final.pth" in text
    assert "docs/custom_dataset.md" in text


def test_registration_node_arguments_can_be_overridden(tmp_path):
    """A ``registered_dataset`` node in place of a dataset name: its arguments are config keys."""
    cfg_file = tmp_path / "reg.py"
    cfg_file.write_text(textwrap.dedent("""
        from detectron2.config import LazyCall as L
        from rlipv2.data import registered_dataset
        dataloader = dict(train=dict(dataset=dict(names=L(registered_dataset)(
            name="zoo_test_reg", json_file="nowhere.json", image_root="imgs"))))
    """))
    cfg = load_config(str(cfg_file), ["dataloader.train.dataset.names.image_root=/elsewhere"])
    assert cfg.dataloader.train.dataset.names.image_root == "/elsewhere"
    with pytest.raises(ConfigKeyError, match="closest: dataloader.train.dataset.names"):
        load_config(str(cfg_file), ["dataloader.train.dataset.nmes=x"])
