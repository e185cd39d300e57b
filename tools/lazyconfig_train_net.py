#!/usr/bin/env python
"""Train or evaluate a model described by a LazyConfig (RLIPv2 or any Detectron2-style model).

The config provides ``model``, ``dataloader.{train,test,evaluator}`` (its own datasets as
``registered_dataset`` nodes, docs/custom_dataset.md), ``optimizer``, ``lr_multiplier`` and ``train``
(see ``configs/common/train.py`` for every ``train.*`` key). ``key=value`` overrides must name
existing keys (``+key=value`` adds one). Multi-process runs use Detectron2's ``launch``: NCCL on
GPUs, gloo on CPU. Bad input (an unknown key, missing weights for ``--eval-only``) ends with one
line on stderr and exit status 2. ``--help`` lists example commands.
"""
import difflib
import logging
import os
import sys

from detectron2.config import instantiate
from detectron2.engine import default_argument_parser, launch
from detectron2.evaluation import inference_on_dataset, print_csv_format
from detectron2.utils import comm
from omegaconf import OmegaConf

from rlipv2.config import load_config
from rlipv2.engine import (
    EMAHook,
    ModelEMA,
    RLIPv2Checkpointer,
    RLIPv2Trainer,
    build_train_hooks,
    create_ddp_model,
    default_setup,
    fill_dataset_size,
    resolve_device,
)
from rlipv2.evaluation.units import in_percent
from rlipv2.schemas.checkpoint import check_resume_iteration
from rlipv2.utils.cli import run_cli
from rlipv2.utils.file_io import atomic_torch_save, atomic_write_json, json_safe

logger = logging.getLogger("rlipv2")

PROG = "lazyconfig_train_net.py"
EPILOG = """
Examples (CFG: a config file, e.g. projects/RLIPv2/configs/hico/rlipv2_parseda_r50_hico.py):

  train on one machine with 8 GPUs:
    python tools/lazyconfig_train_net.py --config-file CFG --num-gpus 8
  change options (keys must exist; +key=value adds a new one):
    python tools/lazyconfig_train_net.py --config-file CFG train.output_dir=output/run1 optimizer.lr=1e-4
  one CPU process / two CPU processes (gloo):
    python tools/lazyconfig_train_net.py --config-file CFG train.device=cpu
    python tools/lazyconfig_train_net.py --config-file CFG --num-gpus 2 --dist-url auto train.device=cpu
  resume an interrupted run from <train.output_dir>/last_checkpoint:
    python tools/lazyconfig_train_net.py --config-file CFG --resume train.output_dir=output/run1
  fine-tune from a converted official checkpoint (tools/convert_official_checkpoint.py):
    python tools/lazyconfig_train_net.py --config-file CFG train.init_checkpoint=weights/rlipv2_r50_pretrain.pth
  evaluate a checkpoint (writes eval_results.json and config_eval.yaml into train.output_dir):
    python tools/lazyconfig_train_net.py --config-file CFG --eval-only \\
        train.init_checkpoint=output/run1/model_final.pth train.output_dir=output/run1_eval
  several machines:
    (machine 0) python tools/lazyconfig_train_net.py --config-file CFG --num-gpus 8 --num-machines 2 \\
        --machine-rank 0 --dist-url tcp://HOST0:29500
    (machine 1) ... the same with --machine-rank 1

Docs: docs/training.md, docs/custom_dataset.md (your own dataset), projects/RLIPv2/README.md (model zoo).
"""


def _get(cfg, key, default=None):
    return OmegaConf.select(cfg, key, default=default)


def _evaluate(cfg, model):
    """Run ``dataloader.test`` + ``dataloader.evaluator``, then each ``dataloader.extra_tests`` entry.

    ``extra_tests`` is an optional dict ``{name: {"test": loader, "evaluator": evaluator}}``
    (e.g. a held-out zero-shot split); its results are reported under ``<name>/<task>``.
    """
    results = {}
    if "evaluator" in cfg.dataloader:
        results.update(
            inference_on_dataset(model, instantiate(cfg.dataloader.test), instantiate(cfg.dataloader.evaluator)) or {}
        )
    for name, node in (_get(cfg, "dataloader.extra_tests", {}) or {}).items():
        res = inference_on_dataset(model, instantiate(node.test), instantiate(node.evaluator)) or {}
        results.update({f"{name}/{task}": r for task, r in res.items()})
    return results


def do_test(cfg, model, ema=None):
    """Evaluate ``model`` (and, if ``ema`` is given, its EMA weights under keys ``ema/<task>``).

    The results of the latest evaluation are also written to ``<train.output_dir>/eval_results.json``.
    """
    if "evaluator" not in cfg.dataloader and not _get(cfg, "dataloader.extra_tests"):
        logger.warning("cfg.dataloader has no evaluator: nothing to evaluate")
        return {}
    results = dict(_evaluate(cfg, model))
    if ema is not None:
        with ema.swapped_into(model):
            ema_results = _evaluate(cfg, model)
        results.update({f"ema/{task}": res for task, res in ema_results.items()})
    if comm.is_main_process() and results:
        # people read percent; eval_results.json and the returned dict keep fractions (docs/evaluation.md)
        logger.info("Evaluation results in percent (eval_results.json holds fractions):")
        print_csv_format(in_percent(results))
        output_dir = _get(cfg, "train.output_dir")
        if output_dir:
            atomic_write_json(os.path.join(output_dir, "eval_results.json"), json_safe(results))
    return results


def _build_ema(cfg, model):
    if not _get(cfg, "train.ema.enabled", False):
        return None
    return ModelEMA(
        model,
        decay=_get(cfg, "train.ema.decay", 0.9998),
        warmup=_get(cfg, "train.ema.warmup", 0.0),
        device=_get(cfg, "train.ema.device", "") or "",
    )


def _checkpointer(cfg, model, save_dir="", strict=False, **checkpointables):
    return RLIPv2Checkpointer(
        model,
        save_dir,
        truncate_queries=bool(_get(cfg, "train.truncate_queries", False)),
        strict=strict,
        frozen_weights_once=bool(_get(cfg, "train.checkpointer.frozen_weights_once", False)),
        **{k: v for k, v in checkpointables.items() if v is not None},
    )


def do_train(args, cfg):
    """Build model, optimizer, loader, trainer and hooks from ``cfg``; resume or initialise; train."""
    for key in ("train.max_iter", "train.checkpointer.period"):
        if _get(cfg, key) is None:
            raise ValueError(f"{key} is None: set train.dataset_size (images per epoch) or train.max_iter")
    device = resolve_device(_get(cfg, "train.device"))
    model = instantiate(cfg.model)
    logger.info(f"Model:\n{model}")
    model.to(device)

    if "params" in cfg.optimizer:
        cfg.optimizer.params.model = model
    else:
        cfg.optimizer.model = model
    optim = instantiate(cfg.optimizer)
    train_loader = instantiate(cfg.dataloader.train)

    ema = _build_ema(cfg, model)
    model = create_ddp_model(model, device=device, **_get(cfg, "train.ddp", {}))
    clip = _get(cfg, "train.clip_grad", {}) or {}
    trainer = RLIPv2Trainer(
        model,
        train_loader,
        optim,
        clip_grad_max_norm=clip.get("max_norm", 0.1) if clip.get("enabled", True) else None,
        clip_grad_norm_type=clip.get("norm_type", 2.0),
        amp_enabled=bool(_get(cfg, "train.amp.enabled", False)),
        amp_precision=_get(cfg, "train.amp.precision", "bf16"),
        device_type=device.type,
        resume_fast_forward=bool(_get(cfg, "train.resume_fast_forward", False)),
    )
    checkpointer = _checkpointer(cfg, model, cfg.train.output_dir, trainer=trainer, ema=ema)
    max_iter = int(cfg.train.max_iter)
    trainer.register_hooks(
        build_train_hooks(
            checkpointer=checkpointer,
            lr_multiplier=instantiate(cfg.lr_multiplier),
            test_fn=lambda: do_test(cfg, model, ema if _get(cfg, "train.ema.eval_both", True) else None),
            output_dir=cfg.train.output_dir,
            max_iter=max_iter,
            checkpoint_period=int(cfg.train.checkpointer.period),
            max_to_keep=_get(cfg, "train.checkpointer.max_to_keep"),
            eval_period=int(_get(cfg, "train.eval_period", 0) or 0),
            log_period=int(_get(cfg, "train.log_period", 20)),
            ema_hook=EMAHook(ema, model) if ema is not None else None,
            tensorboard=bool(_get(cfg, "train.tensorboard", True)),
        )
    )

    checkpointer.resume_or_load(cfg.train.init_checkpoint, resume=args.resume)
    if ema is not None and not ema.loaded:
        ema.reset(model)  # average from the initial (or init_checkpoint) weights
    if args.resume and checkpointer.has_checkpoint():
        # The checkpoint stores the iteration that just finished: start at the next one.
        check_resume_iteration(trainer.iter, max_iter, checkpointer.get_checkpoint_file())
        start_iter = trainer.iter + 1
    else:
        start_iter = 0
    trainer.train(start_iter, max_iter)
    if ema is not None and comm.is_main_process() and trainer.iter >= max_iter:
        # The EMA weights alone, loadable like any model file (e.g. by tools/demo.py --weights).
        path = os.path.join(cfg.train.output_dir, "model_final_ema.pth")
        atomic_torch_save({"model": ema.state, "iteration": max_iter - 1}, path)
        logger.info(f"Saved the EMA weights to {path}")


def do_eval_only(cfg):
    """Load ``train.init_checkpoint`` and evaluate it (raw and, when stored and enabled, EMA weights)."""
    device = resolve_device(_get(cfg, "train.device"))
    model = instantiate(cfg.model)
    model.to(device)
    ema = _build_ema(cfg, model)
    model = create_ddp_model(model, device=device, **_get(cfg, "train.ddp", {}))
    check_eval_only_weights(cfg)
    strict = bool(_get(cfg, "train.strict_eval_load", True))
    _checkpointer(cfg, model, strict=strict, ema=ema).load(cfg.train.init_checkpoint)
    if ema is not None and not ema.loaded:
        logger.warning("train.ema.enabled but the checkpoint has no EMA weights: evaluating the raw weights only")
        ema = None
    return do_test(cfg, model, ema)


def check_eval_only_weights(cfg) -> str:
    """The checkpoint ``--eval-only`` evaluates; raise a clear error when there is none to load.

    Raises:
        ValueError: ``train.init_checkpoint`` is empty.
        FileNotFoundError: it names a local file that does not exist (the message lists similar
            names in its directory).
    """
    path = _get(cfg, "train.init_checkpoint") or ""
    if not path:
        raise ValueError(
            "--eval-only needs trained weights, but train.init_checkpoint is empty: pass "
            "train.init_checkpoint=PATH (e.g. <output_dir>/model_final.pth or a converted official checkpoint)"
        )
    if "://" not in path and not os.path.isfile(path):
        directory = os.path.dirname(path) or "."
        names = sorted(os.listdir(directory)) if os.path.isdir(directory) else []
        close = difflib.get_close_matches(os.path.basename(path), names, n=3, cutoff=0.5)
        hint = f"; similar files there: {', '.join(close)}" if close else (
            f"; directory '{directory}' does not exist" if not os.path.isdir(directory) else "")
        raise FileNotFoundError(f"--eval-only: train.init_checkpoint={path} does not exist{hint}")
    return path


def setup_config(args):
    """Load ``args.config_file`` with the ``args.opts`` overrides (strict) and apply ``train.fast_dev_run``."""
    cfg = load_config(args.config_file, args.opts)
    if _get(cfg, "train.fast_dev_run.enabled", False):
        cfg.train.max_iter = 20
        cfg.train.eval_period = 10
        cfg.train.log_period = 1
        cfg.train.checkpointer.period = 10
    return cfg


def main(args, cfg=None):
    """One process of the job (``launch`` runs it in every process; each loads the config itself)."""
    if cfg is None:
        cfg = setup_config(args)
    dataset_size = None if args.eval_only else fill_dataset_size(cfg)
    default_setup(cfg, args)
    if dataset_size is not None:
        logger.info(f"train.dataset_size={dataset_size}: max_iter={cfg.train.max_iter}")

    if args.eval_only:
        print(do_eval_only(cfg))
    else:
        do_train(args, cfg)


def get_parser():
    return default_argument_parser(epilog=EPILOG)


def _check_and_launch(args) -> None:
    # Checked here, before any process starts, so that bad input ends in one line and exit status 2.
    cfg = setup_config(args)
    if args.eval_only:
        check_eval_only_weights(cfg)
    if args.num_gpus * args.num_machines == 1:
        main(args, cfg)
        return
    launch(
        main,
        args.num_gpus,
        num_machines=args.num_machines,
        machine_rank=args.machine_rank,
        dist_url=args.dist_url,
        args=(args,),
    )


def invoke_main(argv=None) -> int:
    args = get_parser().parse_args(argv)
    return run_cli(lambda _argv: _check_and_launch(args), PROG, [])


if __name__ == "__main__":
    sys.exit(invoke_main())  # pragma: no cover
