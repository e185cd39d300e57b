"""RLIPv2 in miniature: HOI fine-tuning on a seeded 10 % of the downstream training images (150), 500 iterations."""
from .rlipv2_parseda_tiny_mini_hico import dataloader, lr_multiplier, model, optimizer, train, world  # noqa: F401

dataloader.train.dataset.names = "synthetic_mini_hoi_train_10pct"
train.max_iter = 500
train.output_dir = "./output/reproduce_mini/finetune_10pct"
