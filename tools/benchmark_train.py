#!/usr/bin/env python
"""Training-step throughput and checkpoint-write cost for a LazyConfig.

    python tools/benchmark_train.py --config-file CFG [--iters 20] [--warmup 3] [--json out.json] [key=value ...]

Prints (and optionally writes as JSON):

* seconds per iteration and images per second of :class:`RLIPv2Trainer` (gradient clipping, AMP as
  configured) and of Detectron2's plain ``SimpleTrainer`` on the same model, data and optimizer,
  and their ratio (the overhead of our training loop);
* the time of an atomic checkpoint write (``RLIPv2Checkpointer.save``: temporary file, fsync,
  rename) against a plain ``torch.save`` of the same data, and their ratio (the cost of atomicity).

Lead with the ratios: absolute times depend on the machine.
"""
import argparse
import os
import sys
import tempfile
import time

import torch
from detectron2.config import instantiate
from detectron2.engine import SimpleTrainer
from detectron2.utils.events import EventStorage

from rlipv2.config import load_config
from rlipv2.engine import RLIPv2Checkpointer, RLIPv2Trainer, fill_dataset_size, resolve_device
from rlipv2.utils.file_io import atomic_write_json


def _build(cfg, device):
    torch.manual_seed(0)
    model = instantiate(cfg.model).to(device)
    if "params" in cfg.optimizer:
        cfg.optimizer.params.model = model
    else:
        cfg.optimizer.model = model
    return model, instantiate(cfg.optimizer), instantiate(cfg.dataloader.train)


def _time_steps(trainer, warmup: int, iters: int, device) -> float:
    """Mean seconds per iteration over ``iters`` steps after ``warmup`` steps."""
    with EventStorage(0) as trainer.storage:
        for trainer.iter in range(warmup):
            trainer.storage.iter = trainer.iter
            trainer.run_step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        for trainer.iter in range(warmup, warmup + iters):
            trainer.storage.iter = trainer.iter
            trainer.run_step()
        if device.type == "cuda":
            torch.cuda.synchronize()
    return (time.perf_counter() - t0) / iters


def main(argv=None) -> int:
    from rlipv2.utils.cli import nonnegative_int, positive_int

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config-file", required=True)
    p.add_argument("--iters", type=positive_int, default=20)
    p.add_argument("--warmup", type=nonnegative_int, default=3)
    p.add_argument("--json", default=None, help="also write the figures to this JSON file")
    p.add_argument("opts", nargs=argparse.REMAINDER, default=[])
    args = p.parse_args(argv)

    cfg = load_config(args.config_file, args.opts)
    fill_dataset_size(cfg)
    device = resolve_device(cfg.train.get("device"))
    batch = int(cfg.dataloader.train.total_batch_size)
    clip = cfg.train.get("clip_grad", {}) or {}
    amp = cfg.train.get("amp", {}) or {}

    model, optim, loader = _build(cfg, device)
    ours = RLIPv2Trainer(
        model, loader, optim,
        clip_grad_max_norm=clip.get("max_norm", 0.1) if clip.get("enabled", True) else None,
        amp_enabled=bool(amp.get("enabled", False)), amp_precision=amp.get("precision", "bf16"),
        device_type=device.type,
    )
    t_ours = _time_steps(ours, args.warmup, args.iters, device)

    model, optim, loader = _build(cfg, device)
    t_d2 = _time_steps(SimpleTrainer(model, loader, optim), args.warmup, args.iters, device)

    data = {"model": model.state_dict(), "optimizer": optim.state_dict()}
    with tempfile.TemporaryDirectory() as d:
        ck = RLIPv2Checkpointer(model, d, optimizer=optim)
        t0 = time.perf_counter()
        ck.save("bench")
        t_atomic = time.perf_counter() - t0
        t0 = time.perf_counter()
        torch.save(data, os.path.join(d, "plain.pth"))
        t_plain = time.perf_counter() - t0
        size_mb = os.path.getsize(os.path.join(d, "bench.pth")) / 2**20

    figures = {
        "device": str(device),
        "total_batch_size": batch,
        "iters": args.iters,
        "ratio_step_rlipv2_over_d2_simple": t_ours / t_d2,
        "ratio_checkpoint_atomic_over_plain": t_atomic / t_plain,
        "s_per_iter_rlipv2_trainer": t_ours,
        "s_per_iter_d2_simple_trainer": t_d2,
        "images_per_s_rlipv2_trainer": batch / t_ours,
        "checkpoint_mb": size_mb,
        "s_checkpoint_atomic": t_atomic,
        "s_checkpoint_plain": t_plain,
    }
    width = max(len(k) for k in figures)
    for k, v in figures.items():
        print(f"{k:<{width}}  {v:.4f}" if isinstance(v, float) else f"{k:<{width}}  {v}")
    if args.json:
        atomic_write_json(args.json, figures, nan="null")
    return 0


if __name__ == "__main__":
    sys.exit(main())  # pragma: no cover
