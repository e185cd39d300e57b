"""rlipv2.model_zoo: configs found by name from anywhere, composed from single sources."""
from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess
import sys

import pytest
from omegaconf import OmegaConf

from rlipv2.model_zoo import BACKBONE_FIELDS, get_config, get_config_file, list_configs

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
PROJECT_CONFIGS = sorted(glob.glob(os.path.join(REPO, "projects", "RLIPv2", "configs", "*", "*.py")))
COMMON_CONFIGS = sorted(glob.glob(os.path.join(REPO, "configs", "**", "*.py"), recursive=True))


def test_names_resolve_to_the_checkout_trees():
    assert get_config_file("common/models/rlipv2_parseda_r50.py") == os.path.join(
        REPO, "configs", "common", "models", "rlipv2_parseda_r50.py")
    assert get_config_file("hico/rlipv2_parseda_r50_hico.py") == os.path.join(
        REPO, "projects", "RLIPv2", "configs", "hico", "rlipv2_parseda_r50_hico.py")
    names = list_configs()
    assert len(names) == len(PROJECT_CONFIGS) + len(COMMON_CONFIGS)  # no name in both trees
    assert get_config("common/train.py").train.checkpointer.max_to_keep == 3
    assert callable(get_config("common/data/synthetic.py", "use_world"))


def test_unknown_name_lists_the_closest():
    with pytest.raises(FileNotFoundError, match=r"rlipv2_parseda_r50_hoico.*closest: hico/rlipv2_parseda_r50_hico.py"):
        get_config_file("hico/rlipv2_parseda_r50_hoico.py")


@pytest.mark.parametrize("path", PROJECT_CONFIGS + COMMON_CONFIGS, ids=lambda p: os.path.relpath(p, REPO))
def test_no_relative_import_leaves_its_folder(path):
    """Configs reach other folders through get_config only (a copied config then still works)."""
    text = open(path, encoding="utf-8").read()
    assert not re.search(r"^\s*from \.\.", text, re.M), f"{path}: relative import out of its folder"


def test_custom_example_config_works_copied_outside_the_repository(tmp_path):
    """Copied to a folder outside the repository, the example configs load, resolve and point at the data."""
    src = os.path.join(REPO, "projects", "RLIPv2", "configs", "custom")
    for name in ("rlipv2_parseda_r50_custom_hoi.py", "rlipv2_parseda_tiny_custom_hoi.py"):
        shutil.copy(os.path.join(src, name), tmp_path / name)
    code = (
        "import json, sys\n"
        "from detectron2.config import LazyConfig\n"
        "from omegaconf import OmegaConf\n"
        "out = {}\n"
        "for name in sys.argv[1:]:\n"
        "    cfg = LazyConfig.load(name)\n"
        "    OmegaConf.to_container(cfg, resolve=True)\n"
        "    out[name] = {'train': cfg.dataloader.train.dataset.names.name,\n"
        "                 'test': cfg.dataloader.test.dataset.names.name,\n"
        "                 'json': cfg.dataloader.train.dataset.names.json_file, 'init': cfg.train.init_checkpoint,\n"
        "                 'queries': cfg.model.decoder.num_queries}\n"
        "print(json.dumps(out))\n"
    )
    env = dict(os.environ, DETECTRON2_DATASETS="/data/sets", PYTHONPATH="")
    p = subprocess.run([sys.executable, "-c", code, "rlipv2_parseda_r50_custom_hoi.py",
                        "rlipv2_parseda_tiny_custom_hoi.py"], cwd=tmp_path, env=env, capture_output=True,
                       text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    import json

    out = json.loads(p.stdout.strip().splitlines()[-1])
    r50, tiny = out["rlipv2_parseda_r50_custom_hoi.py"], out["rlipv2_parseda_tiny_custom_hoi.py"]
    assert r50["train"] == tiny["train"] == "myhoi_train" and r50["test"] == "myhoi_test"
    assert r50["json"] == "/data/sets/myhoi/annotations/trainval_hoi.json"
    assert r50["init"] == "weights/rlipv2_r50_pretrain.pth" and r50["queries"] == 128
    assert tiny["init"] == "" and tiny["queries"] == 32


SWIN_T_EXPERIMENTS = [p for p in PROJECT_CONFIGS if "_swint_" in os.path.basename(p)]
SWIN_L_EXPERIMENTS = [p for p in PROJECT_CONFIGS if "_swinl_" in os.path.basename(p)]


@pytest.mark.parametrize("path", SWIN_T_EXPERIMENTS + SWIN_L_EXPERIMENTS, ids=os.path.basename)
def test_swin_experiments_take_the_backbone_of_the_model_config(path):
    from detectron2.config import LazyConfig

    which = "swin_t" if "_swint_" in path else "swin_l"
    source = get_config(f"common/models/rlipv2_parseda_{which}.py").model
    model = LazyConfig.load(path).model
    for field in BACKBONE_FIELDS:
        assert OmegaConf.to_container(OmegaConf.create({"v": OmegaConf.select(model, field)})) == \
            OmegaConf.to_container(OmegaConf.create({"v": OmegaConf.select(source, field)})), (path, field)
    text = open(path, encoding="utf-8").read()
    assert "model.backbone =" not in text and "_swin." not in text  # one source: use_backbone
    if "use_backbone(" in text:  # (the others derive from a Swin config of their family)
        assert text.count(f'use_backbone(model, get_config("common/models/rlipv2_parseda_{which}.py").model)') == 1


def test_tiny_tagger_and_tiny_parseda_share_their_sizes():
    tiny = get_config("common/models/rlipv2_parseda_tiny.py").model
    tagger = get_config("common/models/rtagger_tiny.py").model
    for key in ("backbone.depth", "neck.in_channels", "text_encoder.output_dim", "encoder.fusion_embed_dim",
                "decoder.d_model", "decoder.d_ffn", "position_embedding.num_pos_feats"):
        assert OmegaConf.select(tiny, key) == OmegaConf.select(tagger, key), key
    assert (tiny.decoder.num_queries, tagger.decoder.num_queries) == (8, 16)
    text = open(os.path.join(REPO, "configs", "common", "models", "rtagger_tiny.py"), encoding="utf-8").read()
    assert "make_tiny(model, num_queries=16)" in text and "d_model" not in text


@pytest.mark.slow  # runs setup.py build_py (~10 s)
def test_a_regular_install_carries_the_configs(tmp_path):
    """``build_py`` copies both config trees into rlipv2/model_zoo/configs, where get_config looks first."""
    build = tmp_path / "build"
    env = dict(os.environ, RLIPV2_NO_EXT="1")
    p = subprocess.run([sys.executable, "setup.py", "-q", "build_py", "--build-lib", str(build)], cwd=REPO, env=env,
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    packaged = build / "rlipv2" / "model_zoo" / "configs"
    assert (packaged / "common" / "models" / "rlipv2_parseda_r50.py").is_file()
    assert (packaged / "hico" / "rlipv2_parseda_r50_hico.py").is_file()
    code = ("from rlipv2.model_zoo import get_config_file as f, config_roots as r; "
            "print(r()[0]); print(f('hico/rlipv2_parseda_swint_hico.py'))")
    p = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=dict(os.environ, PYTHONPATH=str(build)),
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    assert p.stdout.split() == [str(packaged), str(packaged / "hico" / "rlipv2_parseda_swint_hico.py")]
