"""RLIPv2-ParSeDA R50 fine-tuned on Open Images v6 scene-graph generation.

Official script: fine_tune_RLIP_ParSeDA_v2_oi_sgg.sh (``--sgg``): 20 epochs, lr drop at 15, lr 1e-4
(backbone and text 1e-5), 8 per GPU x 4 GPUs = 32, 200 queries, subject classification (subjects
are any of the 288 classes), RQL, no RPL. ``train.init_checkpoint=weights/rlipv2_r50_pretrain.pth``.
"""
from detectron2.config import LazyCall as L

from rlipv2.model_zoo import get_config
from rlipv2.modeling import SGGPostProcessor

dataloader = get_config("common/data/open_images.py").dataloader
model = get_config("common/models/rlipv2_parseda_r50.py").model
optimizer = get_config("common/optim.py").optimizer
lr_multiplier = get_config("common/schedule.py").lr_multiplier
train = get_config("common/train.py").train

model.decoder.num_queries = 200
model.head.subject_class = True
model.criterion.use_rql = True
model.criterion.use_rpl = False
model.metadata_dataset = "${dataloader.test.dataset.names}"
# subject label and score from the subject classifier; relation score x subject x object score
model.postprocessor = L(SGGPostProcessor)()

dataloader.train.total_batch_size = 32  # 8 per GPU x 4 GPUs
dataloader.evaluator.output_dir = "${train.output_dir}"

optimizer.lr = 1e-4
optimizer.params.backbone_lr = 1e-5
optimizer.params.text_encoder_lr = "${.backbone_lr}"

train.epochs = 20
train.lr_drop = 15
train.truncate_queries = False  # 200 queries, as the pre-trained model
train.init_checkpoint = "weights/rlipv2_r50_pretrain.pth"
train.output_dir = "./output/rlipv2_parseda_r50_oi"
