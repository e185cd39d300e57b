#!/usr/bin/env python
"""`make demo`: train a small RLIPv2-ParSeDA on the synthetic relation world on CPU, then evaluate it.

    python tools/run_demo.py --output output/demo [--config-file CFG] [--threads 2] [key=value ...]

Steps (all through ``tools/lazyconfig_train_net.py``'s functions, nothing re-implemented):

1. set-up (not timed): load the config, generate the synthetic world if it is not cached yet;
2. training (timed: ``train_seconds``), with the train script's console log (losses, ETA);
3. evaluation with the HICO evaluator on the test split (seen and held-out verb-object combinations,
   zero-shot convention) and on the test images that contain a held-out combination;
4. a results table, drawings of predictions on a few test images (``tools/demo.py``) and
   ``<output>/metrics.json`` (written atomically): ``seen_mAP``, ``unseen_mAP``, ``full_mAP`` (percent,
   test split), ``unseen_images_*`` (the held-out-combination images), ``train_seconds``,
   ``eval_seconds``, iterations, threads and the machine load.

The trailing ``key=value`` pairs override the config (e.g. ``train.max_iter=200`` for a quick look).
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_CONFIG = os.path.join(REPO, "projects", "RLIPv2", "configs", "demo", "rlipv2_parseda_tiny_synthetic.py")


def _load_tool(name: str):
    """Import ``tools/<name>.py`` as a module (the ``tools`` package name is taken in site-packages)."""
    spec = importlib.util.spec_from_file_location(f"rlipv2_tool_{name}", os.path.join(REPO, "tools", f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def get_parser() -> argparse.ArgumentParser:
    from rlipv2.utils.cli import nonnegative_int, positive_int

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--output", default="output/demo", help="output directory")
    p.add_argument("--config-file", default=DEFAULT_CONFIG, help="LazyConfig (default: the demo recipe)")
    p.add_argument("--threads", type=positive_int, default=2,
                   help="torch intra-op threads (2: both cores of the reference machine; the loader "
                        "worker is light at 128 px)")
    p.add_argument("--num-vis", type=nonnegative_int, default=8, help="test images to draw predictions on")
    p.add_argument("--skip-train", action="store_true", help="evaluate <output>/train/model_final.pth only")
    p.add_argument("opts", nargs=argparse.REMAINDER, default=[], help="config overrides key=value")
    return p


def summarise(results: dict) -> dict:
    """The headline figures (percent) from the evaluation results of the demo config."""
    main = results.get("hoi", {})
    uns = results.get("unseen/hoi", {})
    pct = lambda d, k: round(100.0 * float(d[k]), 2) if k in d else float("nan")  # noqa: E731
    return {
        "seen_mAP": pct(main, "mAP_seen"),
        "unseen_mAP": pct(main, "mAP_unseen"),
        "full_mAP": pct(main, "mAP"),
        "mean_max_recall": pct(main, "mean_max_recall"),
        "unseen_images_unseen_mAP": pct(uns, "mAP_unseen"),
        "unseen_images_seen_mAP": pct(uns, "mAP_seen"),
        "unseen_images_full_mAP": pct(uns, "mAP"),
    }


def chance_unseen_map(cfg, checkpoint: str, seed: int = 0) -> float:
    """Held-out-combination mAP (percent, test split) at chance: the trained model's detected pairs
    with relation scores drawn uniformly at random (what "above chance" is measured against)."""
    from rlipv2.engine.chance import evaluate_at_chance

    res = evaluate_at_chance(cfg, checkpoint, seed)
    return round(100.0 * float(res.get("hoi", {}).get("mAP_unseen", float("nan"))), 2)


def results_table(summary: dict, train_seconds: float, iterations: int) -> str:
    rows = [
        ("test split, seen combinations", summary["seen_mAP"]),
        ("test split, held-out combinations (zero-shot)", summary["unseen_mAP"]),
        ("test split, held-out combinations at chance", summary["unseen_chance_mAP"]),
        ("test split, all combinations", summary["full_mAP"]),
        ("held-out-combination images, held-out combinations", summary["unseen_images_unseen_mAP"]),
    ]
    width = max(len(r[0]) for r in rows)
    lines = [f"{'HICO mAP (%)':<{width}}  value", f"{'-' * width}  -----"]
    lines += [f"{name:<{width}}  {value:5.2f}" for name, value in rows]
    lines.append(f"training: {iterations} iterations in {train_seconds:.0f} s")
    return "\n".join(lines)


def _pick_vis_images(cfg, n: int) -> list[str]:
    """A few test images, half of them with a held-out combination."""
    from detectron2.data import DatasetCatalog

    seen = DatasetCatalog.get(cfg.dataloader.test.dataset.names)
    unseen = DatasetCatalog.get(cfg.dataloader.extra_tests.unseen.test.dataset.names)
    unseen_files = [d["file_name"] for d in unseen]
    seen_files = [d["file_name"] for d in seen if d["file_name"] not in set(unseen_files)]
    k = n // 2
    return unseen_files[:k] + seen_files[: n - k]


def main(argv=None) -> int:
    args = get_parser().parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if REPO not in sys.path:
        sys.path.insert(0, REPO)
    import torch

    torch.set_num_threads(args.threads)
    from detectron2.config import instantiate
    from detectron2.engine import default_argument_parser

    from rlipv2.config import load_config
    from rlipv2.utils.file_io import atomic_write_json, json_safe

    train_net = _load_tool("lazyconfig_train_net")
    out = os.path.abspath(args.output)
    train_dir, eval_dir, vis_dir = (os.path.join(out, d) for d in ("train", "eval", "visualizations"))
    os.makedirs(out, exist_ok=True)
    opts = [f"train.output_dir={train_dir}", "train.device=cpu"] + list(args.opts)

    # 1. set-up: the world (generated once, cached) and the datasets, before the clock starts
    cfg = load_config(args.config_file, opts)
    t0 = time.perf_counter()
    dl = cfg.dataloader
    for node in (dl.train.dataset, dl.test.dataset, dl.extra_tests.unseen.test.dataset):
        instantiate(node)
    setup_seconds = time.perf_counter() - t0

    # 2. training: the train script's do_train on the config (its own end-of-training evaluation is
    # left out: step 3 evaluates the final checkpoint through --eval-only's do_eval_only)
    train_seconds = 0.0
    if not args.skip_train:
        if os.path.isdir(train_dir):
            shutil.rmtree(train_dir)  # a fresh run every time (no silent resume)
        train_args = default_argument_parser().parse_args(["--config-file", args.config_file, *opts])
        train_net.fill_dataset_size(cfg)
        train_net.default_setup(cfg, train_args)
        for key in ("evaluator", "extra_tests"):
            cfg.dataloader.pop(key, None)
        t0 = time.perf_counter()
        train_net.do_train(train_args, cfg)
        train_seconds = time.perf_counter() - t0
    checkpoint = os.path.join(train_dir, "model_final.pth")
    if not os.path.isfile(checkpoint):
        raise FileNotFoundError(f"training wrote no {checkpoint}")

    # 3. evaluation of the final weights (seen / held-out combinations)
    t0 = time.perf_counter()
    eval_opts = opts[1:] + [f"train.output_dir={eval_dir}", f"train.init_checkpoint={checkpoint}"]
    eval_cfg = load_config(args.config_file, eval_opts)
    os.makedirs(eval_dir, exist_ok=True)  # logging is set up already (by the training step)
    if args.skip_train:
        eval_args = default_argument_parser().parse_args(["--config-file", args.config_file, "--eval-only", *eval_opts])
        train_net.default_setup(eval_cfg, eval_args)
    results = train_net.do_eval_only(eval_cfg)
    eval_seconds = time.perf_counter() - t0
    summary = summarise(results)
    t0 = time.perf_counter()
    summary["unseen_chance_mAP"] = chance_unseen_map(eval_cfg, checkpoint)
    chance_seconds = time.perf_counter() - t0
    iterations = _iterations(checkpoint)

    # 4. drawings of predictions (tools/demo.py) on a few test images
    vis_inputs = os.path.join(out, "visualization_inputs")
    shutil.rmtree(vis_inputs, ignore_errors=True)
    os.makedirs(vis_inputs)
    for path in _pick_vis_images(eval_cfg, args.num_vis):
        shutil.copy(path, vis_inputs)
    from rlipv2.data.synthetic import OBJECTS, VERBS

    s = int(eval_cfg.dataloader.test.mapper.test_min_size)
    _load_tool("demo").main([
        "--config-file", args.config_file, "--weights", checkpoint, "--input", vis_inputs, "--output", vis_dir,
        "--objects", ", ".join(OBJECTS), "--relations", ", ".join(VERBS), "--score-thresh", "0.2",
        "--min-size", str(s), "--max-size", str(2 * s), "--device", "cpu", "--max-draw", "4",
    ])

    print("\n" + results_table(summary, train_seconds, iterations) + "\n")
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    metrics = dict(summary, train_seconds=round(train_seconds, 1), eval_seconds=round(eval_seconds, 1),
                   setup_seconds=round(setup_seconds, 1), chance_seconds=round(chance_seconds, 1),
                   iterations=iterations, threads=args.threads,
                   cpu_count=os.cpu_count(), load_average_end=[round(x, 2) for x in load],
                   config=os.path.relpath(args.config_file, REPO) if args.config_file.startswith(REPO)
                   else args.config_file, overrides=list(args.opts), visualizations=os.path.relpath(vis_dir, out),
                   results=results)
    atomic_write_json(os.path.join(out, "metrics.json"), json_safe(metrics))
    print(f"metrics: {os.path.join(out, 'metrics.json')}; drawings: {vis_dir}")
    return 0


def _iterations(checkpoint: str) -> int:
    from rlipv2.engine.checkpoint import safe_torch_load

    return int(safe_torch_load(checkpoint).get("iteration", -1)) + 1


if __name__ == "__main__":
    sys.exit(main())
