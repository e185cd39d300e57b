"""Your own dataset, registered in your own config file (outside the package), in multi-process training.

The ranks of a ``--num-gpus 2`` run are started with "spawn", and so are their data-loader workers:
neither inherits what the launching process registered. The config's ``registered_dataset`` nodes run
in every rank that builds a loader, and ``RelationDatasetMapper`` carries the vocabularies of the
loaded datasets to the workers, so both ranks train and evaluate with 2 workers each.
"""
from __future__ import annotations

import json
import os
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "engine"))
from engine_toys import run_train_net  # noqa: E402

CONFIG = """
from detectron2.config import LazyCall as L
from detectron2.data import build_detection_test_loader, build_detection_train_loader
from engine_toys import ToyRelationModel

from rlipv2.data import RelationDatasetMapper, get_relation_dataset_dicts, register_relation_dataset, registered_dataset
from rlipv2.evaluation import HICOEvaluator
from rlipv2.model_zoo import get_config

ROOT = {root!r}
VOCABULARY = dict(object_names_file=ROOT + "/annotations/object_names.json",
                  verb_names_file=ROOT + "/annotations/verb_names.txt",
                  correct_mat_file=ROOT + "/annotations/corre_mat.npy")

train = get_config("common/train.py").train
optimizer = get_config("common/optim.py").optimizer
lr_multiplier = get_config("common/schedule.py").lr_multiplier
model = L(ToyRelationModel)(num_queries=4, dim=8, num_objects=10, num_relations=8)

dataloader = dict(
    train=L(build_detection_train_loader)(
        # the training set: a registration node (runs in every process that builds the loader)
        dataset=L(get_relation_dataset_dicts)(names=L(registered_dataset)(
            name="myhoi_train", json_file=ROOT + "/annotations/trainval_hoi.json",
            image_root=ROOT + "/images/train", format="hico", **VOCABULARY), filter_no_relations=True),
        mapper=L(RelationDatasetMapper)(is_train=True, min_sizes=(64,), max_size=128, random_crop=False),
        total_batch_size=4, num_workers=2),
    test=L(build_detection_test_loader)(
        dataset=L(get_relation_dataset_dicts)(names="myhoi_test"),
        mapper=L(RelationDatasetMapper)(is_train=False, test_min_size=64, test_max_size=128),
        batch_size=2, num_workers=2),
    evaluator=L(HICOEvaluator)(dataset_name="myhoi_test", write_outputs=False),
)
# the test set: a plain call in the config file (runs in every rank, which loads the file)
register_relation_dataset("myhoi_test", ROOT + "/annotations/test_hoi.json", ROOT + "/images/test", **VOCABULARY)

train.device = "cpu"
train.log_period = 1
"""


@pytest.fixture(scope="module")
def myhoi(tmp_path_factory):
    """A small HICO-format dataset with its own vocabulary (10 objects, 8 verbs), as a user would have."""
    from rlipv2.data.synthetic import SyntheticWorldConfig, generate_world

    root = tmp_path_factory.mktemp("datasets") / "myhoi"
    generate_world(str(root), SyntheticWorldConfig(image_size=64, num_train=16, num_test=8, num_vg=0, max_people=1),
                   num_workers=1)
    return root


@pytest.mark.slow  # two gloo processes, each with spawned loader workers (~1-2 min on 2 loaded cores)
def test_two_processes_with_two_workers_each_train_and_evaluate(myhoi, tmp_path):
    config_dir = tmp_path / "my_project"  # outside the package and the repository
    config_dir.mkdir()
    cfg = config_dir / "my_hoi.py"
    cfg.write_text(textwrap.dedent(CONFIG.format(root=str(myhoi))))
    out = tmp_path / "out"
    p = run_train_net(["--config-file", str(cfg), "--num-gpus", "2", "--dist-url", "auto",
                       f"train.output_dir={out}", "train.max_iter=6", "train.eval_period=6",
                       "train.checkpointer.period=3"], tmp_path, timeout=900)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-6000:]
    log = (out / "log.txt").read_text()
    assert "World size: 2" in log
    rows = [json.loads(line) for line in (out / "metrics.json").read_text().splitlines() if line.strip()]
    assert max(r["iteration"] for r in rows if "total_loss" in r) == 5
    evals = [r for r in rows if "hoi/mAP" in r]
    # evaluated on the custom test set (its 8 verb classes), predictions gathered from both ranks
    assert evals and evals[-1]["iteration"] == 6 and evals[-1]["hoi/num_classes"] == 8.0
    assert "Loaded 8 images from myhoi_test" in log
    assert (out / "model_final.pth").is_file()
    # the registration node is in the saved config, so that config.yaml alone reproduces the run
    assert "myhoi_train" in (out / "config.yaml").read_text()
    assert "registered_dataset" in (out / "config.yaml").read_text()


def recipe_block() -> str:
    """The bash block of docs/custom_dataset.md marked ``recipe-test``."""
    text = (REPO / "docs" / "custom_dataset.md").read_text(encoding="utf-8")
    after = text[text.index("<!-- recipe-test"):]
    start = after.index("```bash\n") + len("```bash\n")
    return after[start: after.index("```", start)]


@pytest.mark.slow  # the whole recipe on CPU: generation, 2-process training, evaluation, re-scoring, demo (~4-6 min)
def test_the_custom_dataset_recipe_runs_as_written(tmp_path):
    import subprocess

    work, datasets = tmp_path / "work", tmp_path / "datasets"
    env = dict(os.environ, WORK=str(work), DETECTRON2_DATASETS=str(datasets), OMP_NUM_THREADS="1",
               PATH=os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")]))
    env.pop("PYTHONPATH", None)
    p = subprocess.run(["bash", "-e", "-c", recipe_block()], cwd=REPO, env=env, capture_output=True, text=True,
                       timeout=1800)
    assert p.returncode == 0, p.stdout[-4000:] + p.stderr[-8000:]
    assert "OK:" in p.stdout  # the validator found no problem
    train, ev = work / "train", work / "eval"
    saved = (train / "config.yaml").read_text()
    assert "registered_dataset" in saved and str(datasets / "myhoi" / "annotations") in saved
    assert "World size: 2" in (train / "log.txt").read_text()
    assert (train / "model_final.pth").is_file()
    assert len([f for f in os.listdir(train) if f.startswith("frozen_weights_")]) == 1
    results = json.loads((ev / "eval_results.json").read_text())
    assert results["hoi"]["num_classes"] > 0
    assert (ev / "config_eval.yaml").is_file() and not (ev / "config.yaml").exists()
    assert (ev / "hico_predictions.npz").is_file()
    assert "matlab" in (work / "matlab.json").read_text()  # the re-scored results name their protocol
    demo = json.loads((work / "demo" / "triplets.json").read_text())
    assert len(demo["images"]) == 2 and demo["relations"] == ["ride", "hold", "kick", "look at"]
    assert not str(work).startswith(str(REPO))
