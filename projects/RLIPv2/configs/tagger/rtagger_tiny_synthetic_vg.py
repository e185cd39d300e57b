"""A tiny R-Tagger trained on the synthetic world's VG-format split (``synthetic_vg_train``): a smoke run on CPU.

``model.text_encoder.name_or_path`` must point to a local tiny RoBERTa directory
(``rlipv2.utils.testing.save_tiny_text_encoder``), e.g.::

    python tools/lazyconfig_train_net.py --config-file projects/RLIPv2/configs/tagger/rtagger_tiny_synthetic_vg.py \\
        model.text_encoder.name_or_path=/path/to/tiny_roberta train.max_iter=20
"""
from rlipv2.model_zoo import get_config

from .rtagger_r50_vg import dataloader, lr_multiplier, optimizer, train  # noqa: F401  (config entries)
from .rtagger_r50_vg import model as _vg_model

model = get_config("common/models/rtagger_tiny.py").model

TRAIN_SET = "synthetic_vg_train"

model.label_sequence_builder = _vg_model.label_sequence_builder
model.label_sequence_builder.metadata.name = TRAIN_SET
model.label_sequence_builder.num_labels = 16
dataloader["train"].dataset.names = TRAIN_SET
dataloader["train"].mapper.dataset_name = TRAIN_SET
dataloader["train"].mapper.min_sizes = (160, 192)
dataloader["train"].mapper.max_size = 256
dataloader["train"].mapper.random_crop = False
dataloader["train"].total_batch_size = 2
dataloader["train"].num_workers = 0

optimizer.lr = 2e-4
train.epochs = 2
train.lr_drop = 1
train.device = "cpu"
train.log_period = 1
train.output_dir = "./output/rtagger_tiny_synthetic_vg"
