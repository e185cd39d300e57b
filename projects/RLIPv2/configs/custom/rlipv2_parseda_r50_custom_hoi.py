"""Fine-tune RLIPv2-ParSeDA R50 on your own HOI dataset (the recipe: docs/custom_dataset.md).

Copy this file anywhere (your project folder), put the dataset where ``ROOT`` says (or change
``ROOT``), then::

    python tools/lazyconfig_train_net.py --config-file my_hoi.py --num-gpus 8
    python tools/lazyconfig_train_net.py --config-file my_hoi.py --eval-only \\
        train.init_checkpoint=output/my_hoi/model_final.pth train.output_dir=output/my_hoi_eval

Data: HICO-DET (QPIC / PPDM) format, with your own vocabulary (``object_names.json``:
``{"person": 1, "ball": 2, ...}`` in label order; ``verb_names.txt``: ``001 ride`` ... with
1-based ids) and optionally the valid verb-object combinations (``corre_mat.npy``, [verbs, objects]).
The dataset names are ``registered_dataset`` nodes: every process that builds the loaders, the
evaluator or the model (each training process, ``--eval-only``, ``tools/demo.py``) registers the
two splits; their paths can be overridden on the command line, e.g.
``dataloader.train.dataset.names.json_file=/data/other.json``.

Recipe: the official HICO-DET fine-tuning (``hico/rlipv2_parseda_r50_hico.py``: 20 epochs, lr drop
at 15, RQL, 128 queries truncated from the 200-query pre-trained model), started from the
converted official pre-trained checkpoint::

    python tools/convert_official_checkpoint.py checkpoint0019.pth weights/rlipv2_r50_pretrain.pth
"""
import os

from detectron2.config import LazyCall as L

from rlipv2.data import registered_dataset
from rlipv2.model_zoo import get_config

# The dataset folder: images/{train,test}/ and annotations/ (docs/custom_dataset.md).
ROOT = os.path.join(os.environ.get("DETECTRON2_DATASETS", "datasets"), "myhoi")
ANNOTATIONS = os.path.join(ROOT, "annotations")
VOCABULARY = dict(
    object_names_file=os.path.join(ANNOTATIONS, "object_names.json"),
    verb_names_file=os.path.join(ANNOTATIONS, "verb_names.txt"),
    correct_mat_file=os.path.join(ANNOTATIONS, "corre_mat.npy"),  # None: every verb-object pair is valid
)

_recipe = get_config("hico/rlipv2_parseda_r50_hico.py")
dataloader, model, optimizer, lr_multiplier, train = (
    _recipe.dataloader, _recipe.model, _recipe.optimizer, _recipe.lr_multiplier, _recipe.train
)

# ---------------------------------------------------------------- data
dataloader.train.dataset.names = L(registered_dataset)(
    name="myhoi_train", format="hico", json_file=os.path.join(ANNOTATIONS, "trainval_hoi.json"),
    image_root=os.path.join(ROOT, "images", "train"), **VOCABULARY,
)
dataloader.test.dataset.names = L(registered_dataset)(
    name="myhoi_test", format="hico", json_file=os.path.join(ANNOTATIONS, "test_hoi.json"),
    image_root=os.path.join(ROOT, "images", "test"),
    # rare (< 10 training instances) / non-rare classes are counted in the training file
    rare_from=os.path.join(ANNOTATIONS, "trainval_hoi.json"), **VOCABULARY,
)
dataloader.train.total_batch_size = 16

# ---------------------------------------------------------------- model
# The label texts come from the test set's vocabulary (model.metadata_dataset). Subject boxes get the
# label of entry 0 of object_names.json: put "person" (or your subject class) first.
model.postprocessor.subject_category_id = 0

# ---------------------------------------------------------------- run
train.init_checkpoint = "weights/rlipv2_r50_pretrain.pth"  # converted official pre-trained model
train.output_dir = "./output/myhoi_r50"
