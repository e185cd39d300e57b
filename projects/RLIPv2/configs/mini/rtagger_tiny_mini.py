"""RLIPv2 in miniature: the R-Tagger trained on the relation set (``synthetic_mini_vg_train``).

As ``tagger/rtagger_r50_vg.py`` scaled down to the downstream configs' network (narrow ResNet from scratch,
d_model 64, 2 encoder and 2 decoder layers, frozen all-MiniLM-L6-v2 label-text encoder), 16 pair slots,
pre-training label sequences of up to 32 labels, 800 iterations of batch 8. Used by ``tools/pseudo_label.py
--tagger LazyConfigTagger --tagger-config <this> --tagger-weights <model_final.pth> --tagger-opt min_size=128
--tagger-opt max_size=256``.
"""
from rlipv2.model_zoo import get_config

from .rlipv2_parseda_tiny_mini_hico import world  # noqa: F401  (registers the world)

_demo = get_config("demo/rlipv2_parseda_tiny_synthetic.py").model
dataloader, lr_multiplier, model, optimizer, train = get_config(
    "tagger/rtagger_tiny_synthetic_vg.py", ("dataloader", "lr_multiplier", "model", "optimizer", "train")
)

TRAIN_SET = "synthetic_mini_vg_train"

for key in ("backbone", "neck", "text_encoder", "position_embedding"):
    model[key] = _demo[key]
model.encoder.num_layers = _demo.encoder.num_layers
model.encoder.fusion_embed_dim = _demo.encoder.fusion_embed_dim
model.encoder.n_points = _demo.encoder.n_points
model.decoder.num_layers = 2
model.decoder.num_queries = 32  # 16 pairs
model.decoder.d_model = 64
model.decoder.d_ffn = 256
model.decoder.n_levels = 3
model.decoder.n_heads = 4
model.decoder.n_points = 2
model.label_sequence_builder.metadata.name = TRAIN_SET
model.label_sequence_builder.num_labels = 32
model.label_sequence_builder.object_fraction = 1 / 3
dataloader["train"].dataset.names = TRAIN_SET
dataloader["train"].mapper.dataset_name = TRAIN_SET
dataloader["train"].mapper.min_sizes = (128,)
dataloader["train"].mapper.max_size = 256
dataloader["train"].total_batch_size = 8
dataloader["train"].num_workers = 1

optimizer.lr = 1e-3
optimizer.foreach = True
optimizer.params.backbone_lr = "${..lr}"
optimizer.params.text_encoder_lr = 0.0  # frozen
train.max_iter = 800
train.epochs = 10
train.lr_drop = 9
train.clip_grad.max_norm = 1.0
train.log_period = 20
train.checkpointer.period = "${..max_iter}"
train.eval_period = 0
train.output_dir = "./output/reproduce_mini/tagger"
