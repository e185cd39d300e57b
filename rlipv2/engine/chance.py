"""Evaluation at chance: a trained model's detections with relation scores drawn at random.

"Above chance" is measured against this: the same detected pairs (boxes and object classes of the
model) with every relation score replaced by a uniform random number, scored by the config's evaluators.
It separates what relation *recognition* contributes from what pair *detection* alone gives.

    python -m rlipv2.engine.chance --config-file CFG --weights W [--seed 0] [--output results.json] [key=value ...]
"""
from __future__ import annotations

import argparse
import sys

import torch

__all__ = ["RandomRelationScores", "evaluate_at_chance"]


class RandomRelationScores(torch.nn.Module):
    """Wraps a relation detector: its outputs with ``pairs.relation_scores`` replaced by U(0, 1) draws from a
    seeded generator (deterministic for a given model, data order and seed)."""

    def __init__(self, model: torch.nn.Module, seed: int = 0):
        super().__init__()
        self.model = model
        self.generator = torch.Generator().manual_seed(seed)

    def forward(self, batched_inputs):
        outputs = self.model(batched_inputs)
        for o in outputs:
            rs = o["pairs"]["relation_scores"]
            o["pairs"]["relation_scores"] = torch.rand(rs.shape, generator=self.generator).to(rs)
        return outputs


def evaluate_at_chance(cfg, checkpoint: str, seed: int = 0) -> dict:
    """Evaluate ``cfg.model`` loaded from ``checkpoint`` with random relation scores on ``cfg.dataloader.test``
    with ``cfg.dataloader.evaluator``. Returns the evaluator's results (fractions, as the evaluator gives them)."""
    from detectron2.config import instantiate
    from detectron2.evaluation import inference_on_dataset

    from .checkpoint import RLIPv2Checkpointer

    model = instantiate(cfg.model)
    RLIPv2Checkpointer(model).load(checkpoint)
    model.eval()
    wrapped = RandomRelationScores(model, seed)
    return inference_on_dataset(wrapped, instantiate(cfg.dataloader.test), instantiate(cfg.dataloader.evaluator)) or {}


def main(argv=None) -> int:
    import os

    from ..config import load_config
    from ..utils.file_io import atomic_write_json, json_safe

    p = argparse.ArgumentParser(prog="python -m rlipv2.engine.chance", description=__doc__.split("\n\n")[0])
    p.add_argument("--config-file", required=True, help="LazyConfig with model, dataloader.test and evaluator")
    p.add_argument("--weights", required=True, help="checkpoint of the trained model")
    p.add_argument("--seed", type=int, default=0, help="seed of the random relation scores")
    p.add_argument("--output", default=None, help="write the results here (JSON)")
    p.add_argument("opts", nargs=argparse.REMAINDER, default=[], help="config overrides key=value")
    args = p.parse_args(argv)
    if not os.path.isfile(args.weights):
        print(f"error: --weights {args.weights}: no such file", file=sys.stderr)
        return 2
    cfg = load_config(args.config_file, args.opts)  # unknown keys are refused
    results = evaluate_at_chance(cfg, args.weights, args.seed)
    print(results)
    if args.output:
        atomic_write_json(args.output, json_safe(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
