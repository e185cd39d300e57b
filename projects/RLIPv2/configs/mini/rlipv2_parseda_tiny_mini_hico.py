"""RLIPv2 in miniature (``tools/reproduce_mini.py``): HOI fine-tuning on 100 % of the downstream training set.

The base of every config in this folder. The model and optimisation are ``make demo``'s (tiny ParSeDA,
frozen all-MiniLM-L6-v2 label-text encoder, pair denoising); the world is the synthetic relation world with
its pre-training sets (``world`` below, generated once and cached):

- downstream HOI set (HICO format): 1,500 training images (few-shot subsets ``_hoi_train_1pct`` /
  ``_10pct``: seeded random 1 % / 10 %), 300 test images, four verb-object combinations held out of
  training (reported as "unseen", UC-style);
- relation set (VG format, ``synthetic_mini_vg_train``): 600 images with four more person-object verbs and
  the object-object "on";
- caption set (COCO format + captions): 2,400 images for pseudo-labelling.

Fine-tuning schedules are in iterations (batch 8) and shared by every starting point (scratch, pre-trained
on the relation set, pre-trained on relation set + pseudo-labels): 100 % 1,200, 10 % 500 (lr 1e-3), 1 % 100
(lr 1e-4), with the lr dropped tenfold for the last 10 %. Start from a pre-trained model with
``train.init_checkpoint=...``.
"""
from rlipv2.model_zoo import get_config

dataloader, lr_multiplier, model, optimizer, train, use_world = get_config(
    "demo/rlipv2_parseda_tiny_synthetic.py", ("dataloader", "lr_multiplier", "model", "optimizer", "train", "use_world")
)

world = dict(
    prefix="synthetic_mini",
    image_size=128,
    max_people=1,
    num_train=1500,
    num_test=300,
    num_vg=600,
    pretraining_sets=True,
    num_coco=2400,
)
use_world(dataloader, **world)
# as the demo: one scale, no random crop
dataloader.train.mapper.random_crop = False
dataloader.train.mapper.min_sizes = (128,)
# the test split reports seen and held-out combinations: the extra pass over its held-out images is left out
del dataloader.extra_tests

model.metadata_dataset = "synthetic_mini_hoi_train"

train.max_iter = 1200
train.epochs = 10  # the lr drop at 9/10 of max_iter
train.lr_drop = 9
train.eval_period = 0  # evaluated once, after the last iteration (eval_results.json in train.output_dir)
train.output_dir = "./output/reproduce_mini/finetune_100pct"
