"""Training settings shared by every RLIPv2 experiment (the ``train`` namespace).

Length of training, as in the official recipes, is given in epochs:

    iters_per_epoch = max(1, dataset_size // total_batch_size)      (last partial batch dropped)
    max_iter        = epochs * iters_per_epoch

``dataset_size`` is the number of training images per epoch; leave it ``None`` and the train script
counts ``cfg.dataloader.train.dataset``. ``total_batch_size`` follows the train loader. Setting
``train.max_iter=N`` on the command line replaces the derived value (the lr drop then stays at
``lr_drop / epochs`` of the run). Checkpoints are saved and evaluation runs once per epoch.
"""
import rlipv2.engine.schedule  # noqa: F401  (registers the rlipv2.* OmegaConf resolvers used below)

train = dict(
    output_dir="./output/rlipv2",
    # Weights loaded before training (converted official or detection-pretrained checkpoint), or the
    # checkpoint evaluated by --eval-only. Ignored by --resume when output_dir has a last_checkpoint.
    init_checkpoint="",
    # Official 200 -> N query truncation of tgt_embed / verb_tgt_embed / refpoint_embed on load.
    truncate_queries=False,
    # --eval-only refuses a checkpoint that does not match the model exactly (wrong architecture).
    strict_eval_load=True,
    epochs=20,
    lr_drop=15,
    dataset_size=None,
    total_batch_size="${dataloader.train.total_batch_size}",
    iters_per_epoch="${rlipv2.iters_per_epoch:${.dataset_size},${.total_batch_size}}",
    max_iter="${rlipv2.max_iter:${.epochs},${.dataset_size},${.total_batch_size}}",
    # Mixed precision through torch.amp: "bf16" (no loss scaling) or "fp16" (GradScaler, GPU only).
    amp=dict(enabled=False, precision="bf16"),
    ddp=dict(broadcast_buffers=False, find_unused_parameters=True, fp16_compression=False),
    clip_grad=dict(enabled=True, max_norm=0.1, norm_type=2.0),
    # EMA of the weights: stored in every checkpoint under "ema"; evaluated next to the raw weights
    # (results under "ema/<task>") when eval_both.
    ema=dict(enabled=False, decay=0.9998, warmup=0.0, device="", eval_both=True),
    # max_to_keep: periodic checkpoints kept in output_dir, across restarts (model_final.pth is always kept).
    # frozen_weights_once: store the weights that do not train (requires_grad=False, e.g. a frozen
    # pretrained text encoder) once per run in frozen_weights_<hash>.pth instead of in every checkpoint;
    # loading reads them back by name. Off by default and in the paper configs (their text encoder trains).
    checkpointer=dict(period="${..iters_per_epoch}", max_to_keep=3, frozen_weights_once=False),
    # On --resume, replay (load and discard) the batches the interrupted run consumed, so the data
    # order and, with the RNG states stored in every checkpoint, the whole run continue exactly as
    # an uninterrupted one. Costs the loading time of those batches; off by default.
    resume_fast_forward=False,
    eval_period="${.iters_per_epoch}",
    log_period=20,
    tensorboard=True,
    seed=42,  # each process uses seed + rank, as the official code
    # None: "cuda" when available, else "cpu".
    device=None,
    cudnn_benchmark=False,
    # Smoke-run switch: 20 iterations, evaluation at 10 and 20, log every iteration.
    fast_dev_run=dict(enabled=False),
)
