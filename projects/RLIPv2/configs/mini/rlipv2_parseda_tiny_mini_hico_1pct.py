"""RLIPv2 in miniature: HOI fine-tuning on a seeded 1 % of the downstream training images (15): 100 iterations
at lr 1e-4 (the paper's fine-tuning lr).

With 15 images only a few verb-object combinations are seen; at the lr of the larger fractions (1e-3) any
pre-trained start forgets the relations the 15 images do not show within 200 iterations (measured: (b)'s NF
zero-shot 25.0 mAP fell to 11.5). A tenfold lower lr over 100 iterations adapts without erasing it.
"""
from .rlipv2_parseda_tiny_mini_hico import dataloader, lr_multiplier, model, optimizer, train, world  # noqa: F401

dataloader.train.dataset.names = "synthetic_mini_hoi_train_1pct"
optimizer.lr = 1e-4  # the backbone follows (${..lr})
train.max_iter = 100
train.output_dir = "./output/reproduce_mini/finetune_1pct"
