"""RLIPv2-ParSeDA R50, HICO-DET NF zero-shot: the pre-trained model evaluated without fine-tuning.

Official script: zero_shot_RLIP_ParSeDA_v2_resnet.sh (``--eval --zero_shot_eval hico``): evaluation
only, 200 queries, subject classification; pairs whose subject is not classified "person" are dropped
(subject filter); batch 16 on 1 GPU. Run with ``--eval-only
train.init_checkpoint=weights/rlipv2_r50_pretrain.pth`` (the converted pre-trained model).
"""
from .rlipv2_parseda_r50_hico import dataloader, lr_multiplier, model, optimizer, train  # noqa: F401

model.decoder.num_queries = 200
model.head.subject_class = True
model.postprocessor.zero_shot_subject_filter = True

dataloader.test.dataset.names = "hico_det_test"
dataloader.test.batch_size = 16
train.truncate_queries = False
train.output_dir = "./output/rlipv2_parseda_r50_hico_nf_zero_shot"
