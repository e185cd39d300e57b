"""Job set-up shared by the train script, the demo and the tests.

* :func:`resolve_device` turns ``train.device`` (``None`` / "auto" / "cpu" / "cuda" / "cuda:1")
  into a ``torch.device``;
* :func:`create_ddp_model` wraps a model in DDP when there is more than one process, on GPU
  (``device_ids=[local_rank]``) or CPU (gloo, ``device_ids=None``);
* :func:`default_setup` is Detectron2's ``default_setup`` with an atomic ``config.yaml`` write
  (``config_eval.yaml`` for ``--eval-only``, so that evaluating never replaces the training run's
  config) and ``seed + rank`` seeding (official RLIPv2: 42 + rank);
* :func:`fill_dataset_size` sets ``train.dataset_size`` from the training dataset when the config
  derives ``train.max_iter`` from epochs and it was left ``None``.
"""
from __future__ import annotations

import logging
import os

import torch
from detectron2.config import LazyConfig, instantiate
from detectron2.utils import comm
from detectron2.utils.env import seed_all_rng
from detectron2.utils.logger import setup_logger
from omegaconf import DictConfig, OmegaConf

__all__ = ["resolve_device", "create_ddp_model", "default_setup", "fill_dataset_size", "save_config"]

logger = logging.getLogger("rlipv2")


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``None``, "" or "auto" -> "cuda" when available else "cpu"; anything else as given.

    Raises a clear error when CUDA is requested on a machine without it.
    """
    if device is None or str(device) in ("", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"train.device={device} but CUDA is not available; use train.device=cpu")
    return device


def create_ddp_model(model: torch.nn.Module, *, device: torch.device, fp16_compression: bool = False, **kwargs):
    """Wrap ``model`` in ``DistributedDataParallel`` when the world size is > 1 (else return it).

    Args:
        device: the device the model lives on; decides ``device_ids`` (GPU: the local rank; CPU: None).
        fp16_compression: register the fp16 gradient-compression communication hook.
        kwargs: other DDP arguments, e.g. ``find_unused_parameters=True`` (needed by RLIPv2).
    """
    if comm.get_world_size() == 1:
        return model
    if device.type == "cuda":
        kwargs.setdefault("device_ids", [comm.get_local_rank()])
    else:
        kwargs["device_ids"] = None
    ddp = torch.nn.parallel.DistributedDataParallel(model, **kwargs)
    if fp16_compression:
        from torch.distributed.algorithms.ddp_comm_hooks import default as comm_hooks

        ddp.register_comm_hook(state=None, hook=comm_hooks.fp16_compress_hook)
    return ddp


def save_config(cfg: DictConfig, path: str) -> None:
    """``LazyConfig.save`` into a temporary file next to ``path``, then rename it atomically."""
    dirname = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(dirname, f".{os.path.basename(path)}.{os.getpid()}.tmp")
    try:
        LazyConfig.save(cfg, tmp)
        os.replace(tmp, path)
        if os.path.exists(tmp + ".pkl"):  # LazyConfig.save's fallback for unserialisable configs
            os.replace(tmp + ".pkl", path + ".pkl")
    finally:
        for p in (tmp, tmp + ".pkl"):
            if os.path.exists(p):
                os.unlink(p)


def default_setup(cfg: DictConfig, args) -> None:
    """Logging, environment report, config backup and seeding at the start of a job.

    * loggers "detectron2", "fvcore" and "rlipv2" write to the console and ``<output_dir>/log.txt``;
    * the full config is saved (atomically) to ``<output_dir>/config.yaml``, or to
      ``<output_dir>/config_eval.yaml`` when ``args.eval_only`` (the training run's ``config.yaml``
      in the same directory is left as it is);
    * every RNG is seeded with ``train.seed + rank`` (a random seed when ``train.seed < 0``).
    """
    output_dir = OmegaConf.select(cfg, "train.output_dir", default=None)
    rank = comm.get_rank()
    if comm.is_main_process() and output_dir:
        os.makedirs(output_dir, exist_ok=True)
    for name in ("fvcore", "rlipv2"):
        setup_logger(output_dir, distributed_rank=rank, name=name)
    log = setup_logger(output_dir, distributed_rank=rank)
    log.info(f"Rank of current process: {rank}. World size: {comm.get_world_size()}")
    log.info("Command line arguments: " + str(args))
    if comm.is_main_process() and output_dir:
        path = os.path.join(output_dir, "config_eval.yaml" if getattr(args, "eval_only", False) else "config.yaml")
        save_config(cfg, path)
        log.info(f"Full config saved to {path}")
    seed = OmegaConf.select(cfg, "train.seed", default=-1)
    seed = -1 if seed is None else int(seed)
    seed_all_rng(None if seed < 0 else seed + rank)
    if not getattr(args, "eval_only", False):
        torch.backends.cudnn.benchmark = bool(OmegaConf.select(cfg, "train.cudnn_benchmark", default=False))


def _train_resolves(cfg: DictConfig) -> bool:
    """Whether train.max_iter / checkpointer.period / eval_period resolve to numbers."""
    try:
        values = [OmegaConf.select(cfg, k, default=0) for k in
                  ("train.max_iter", "train.checkpointer.period", "train.eval_period")]
    except Exception:
        return False
    return all(v is not None for v in values)


def fill_dataset_size(cfg: DictConfig) -> int | None:
    """Set ``train.dataset_size`` to the number of training images if it is ``None`` and needed.

    It is needed when ``train.*`` (e.g. ``max_iter``, derived from epochs) cannot be resolved
    without it. The size is ``len(instantiate(cfg.dataloader.train.dataset))``: the dataset dicts
    the train loader samples from (after Detectron2's filtering of images without annotations).

    Returns:
        the size that was set, or None when nothing had to be done.
    """
    if "train" not in cfg or OmegaConf.select(cfg, "train.dataset_size", default=None) is not None:
        return None
    if "dataset_size" not in cfg.train or _train_resolves(cfg):
        return None
    dataset_node = OmegaConf.select(cfg, "dataloader.train.dataset", default=None)
    if dataset_node is None:
        raise ValueError(
            "train.max_iter is derived from train.epochs and train.dataset_size, but train.dataset_size is None "
            "and cfg.dataloader.train.dataset is missing: set train.dataset_size or train.max_iter"
        )
    dataset = instantiate(dataset_node)
    n = len(dataset)
    cfg.train.dataset_size = n
    logger.info(f"train.dataset_size set to {n} (images in cfg.dataloader.train.dataset)")
    return n
