"""The official step schedule as an lr multiplier: ``0.1 ** (epoch // train.lr_drop)``.

``epoch = iteration * train.epochs // train.max_iter`` (see ``rlipv2/engine/schedule.py``), so with
the default 20 epochs and drop 15 the lr falls tenfold at 75 % of ``train.max_iter``. No warm-up,
as in the official code.
"""
from detectron2.config import LazyCall as L

from rlipv2.engine.schedule import EpochStepParamScheduler

lr_multiplier = L(EpochStepParamScheduler)(
    max_iter="${train.max_iter}",
    epochs="${train.epochs}",
    lr_drop="${train.lr_drop}",
    gamma=0.1,
)
