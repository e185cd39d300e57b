"""Training and inference engine: optimiser groups, step schedule, trainer, EMA, safe checkpoints,
hooks and the custom-image predictor."""
from .checkpoint import (
    QUERY_EMBED_SUFFIXES,
    SAFE_GLOBALS,
    CheckpointMismatchError,
    RLIPv2Checkpointer,
    UnsafeCheckpointError,
    safe_pickle_load,
    safe_torch_load,
    truncate_query_embeddings,
)
from .defaults import create_ddp_model, default_setup, fill_dataset_size, resolve_device, save_config
from .ema import EMAHook, ModelEMA, unwrap_model
from .hooks import PeriodicCheckpointer, RNGStateHook, build_train_hooks, build_writers
from .optimizer import build_rlipv2_optimizer, get_rlipv2_param_groups, param_group_of
from .predictor import RelationPredictor
from .rng import get_rng_state, preserved_rng_state, set_rng_state
from .schedule import EpochStepParamScheduler, compute_iters_per_epoch, compute_max_iter, lr_drop_iterations
from .trainer import RLIPv2Trainer, resolve_amp_dtype

__all__ = [
    "QUERY_EMBED_SUFFIXES", "SAFE_GLOBALS", "RLIPv2Checkpointer", "UnsafeCheckpointError", "CheckpointMismatchError",
    "safe_pickle_load",
    "safe_torch_load", "truncate_query_embeddings", "create_ddp_model", "default_setup", "fill_dataset_size",
    "resolve_device", "save_config", "EMAHook", "ModelEMA", "unwrap_model", "build_train_hooks", "build_writers",
    "RNGStateHook", "PeriodicCheckpointer", "get_rng_state", "set_rng_state", "preserved_rng_state",
    "build_rlipv2_optimizer", "get_rlipv2_param_groups", "param_group_of", "RelationPredictor",
    "EpochStepParamScheduler", "compute_iters_per_epoch", "compute_max_iter", "lr_drop_iterations",
    "RLIPv2Trainer", "resolve_amp_dtype",
]
