"""RLIPv2 in miniature: HOI fine-tuning on a seeded 1 % of the downstream training images (15), 200 iterations."""
from .rlipv2_parseda_tiny_mini_hico import dataloader, lr_multiplier, model, optimizer, train, world  # noqa: F401

dataloader.train.dataset.names = "synthetic_mini_hoi_train_1pct"
train.max_iter = 200
train.output_dir = "./output/reproduce_mini/finetune_1pct"
