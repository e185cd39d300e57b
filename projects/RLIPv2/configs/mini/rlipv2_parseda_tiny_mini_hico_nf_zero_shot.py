"""RLIPv2 in miniature: NF zero-shot, a pre-trained model evaluated on the downstream test set without
fine-tuning (as ``rlipv2_parseda_r50_hico_nf_zero_shot.py``: pairs whose subject is not classified
"person" are dropped). Evaluation only::

    python tools/lazyconfig_train_net.py --config-file <this> --eval-only train.init_checkpoint=<pre-trained>
"""
from .rlipv2_parseda_tiny_mini_hico import dataloader, lr_multiplier, model, optimizer, train, world  # noqa: F401

model.postprocessor.zero_shot_subject_filter = True
train.output_dir = "./output/reproduce_mini/zero_shot"
