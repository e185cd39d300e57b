"""Data section for the synthetic relation world (``make demo``, end-to-end tests).

``world`` describes the world (``rlipv2.data.synthetic.SyntheticWorldConfig`` fields); the config
registers it, lazily (nothing is generated until a loader asks for it), under the prefix
``world.prefix``: ``{prefix}_hoi_train``, ``{prefix}_hoi_test`` (seen and held-out combinations) and
``{prefix}_hoi_test_unseen`` (the test images with a held-out verb-object combination). With the
default prefix ``synthetic`` and no changes, these are the default registered names.

``dataloader.evaluator`` scores ``_hoi_test`` with the HICO evaluator in the zero-shot convention:
``hoi/mAP_seen`` over the seen combinations, ``hoi/mAP_unseen`` over the held-out ones;
``dataloader.extra_tests.unseen`` scores ``_hoi_test_unseen`` the same way (``unseen/hoi/...``).

An experiment that changes the world calls :func:`use_world` with the new settings, which
re-registers it and points every dataset name of this section at it.
"""
from detectron2.config import LazyCall as L
from detectron2.data import DatasetCatalog, build_detection_test_loader, build_detection_train_loader
from omegaconf import OmegaConf

from rlipv2.data import RelationDatasetMapper, get_relation_dataset_dicts
from rlipv2.data.synthetic import SyntheticWorldConfig, register_synthetic_world
from rlipv2.evaluation import HICOEvaluator


def register_world(prefix: str = "synthetic", root: str | None = None, **world) -> str:
    """Register the synthetic world ``SyntheticWorldConfig(**world)`` under ``prefix`` (once per process).

    The default prefix with no settings is the package's default world (already registered on
    ``import rlipv2``). Returns ``prefix``.
    """
    if prefix == "synthetic" and not world and root is None:
        return prefix
    config = SyntheticWorldConfig(**world)
    if f"{prefix}_hoi_train" in DatasetCatalog.list():
        from detectron2.data import MetadataCatalog

        tag = getattr(MetadataCatalog.get(f"{prefix}_hoi_train"), "synthetic_world", None)
        if tag != config.tag:
            raise ValueError(f"dataset prefix {prefix!r} is already registered for world {tag}, not {config.tag}")
        return prefix
    register_synthetic_world(root, config, prefix=prefix)
    return prefix


dataloader = OmegaConf.create(dict(
    train=L(build_detection_train_loader)(
        dataset=L(get_relation_dataset_dicts)(names="synthetic_hoi_train", filter_no_relations=True),
        # the official augmentations with scales for 192-px images
        mapper=L(RelationDatasetMapper)(
            is_train=True, min_sizes=(160, 176, 192, 208, 224), max_size=400,
            crop_resize_sizes=(160, 192), crop_size=(128, 192),
        ),
        total_batch_size=8,
        num_workers=1,
    ),
    test=L(build_detection_test_loader)(
        dataset=L(get_relation_dataset_dicts)(names="synthetic_hoi_test"),
        mapper=L(RelationDatasetMapper)(is_train=False, test_min_size=192, test_max_size=400),
        batch_size=8,
        num_workers=1,
    ),
    evaluator=L(HICOEvaluator)(dataset_name="synthetic_hoi_test", zero_shot=True, distributed=True,
                               write_outputs=False),
    extra_tests=dict(
        unseen=dict(
            test=L(build_detection_test_loader)(
                dataset=L(get_relation_dataset_dicts)(names="synthetic_hoi_test_unseen"),
                mapper=L(RelationDatasetMapper)(is_train=False, test_min_size=192, test_max_size=400),
                batch_size=8,
                num_workers=1,
            ),
            evaluator=L(HICOEvaluator)(dataset_name="synthetic_hoi_test_unseen", zero_shot=True, distributed=True,
                                       write_outputs=False),
        ),
    ),
))


def use_world(dataloader, image_size: int = 192, prefix: str = "synthetic", **world) -> None:
    """Point ``dataloader`` (this section) at the world ``SyntheticWorldConfig(image_size=..., **world)``
    registered under ``prefix``, and scale the train / test sizes to ``image_size``."""
    register_world(prefix, image_size=image_size, **world)
    train, test, evaluator = dataloader["train"], dataloader["test"], dataloader["evaluator"]
    unseen = dataloader["extra_tests"]["unseen"]
    train.dataset.names = f"{prefix}_hoi_train"
    test.dataset.names = f"{prefix}_hoi_test"
    evaluator.dataset_name = f"{prefix}_hoi_test"
    unseen["test"].dataset.names = f"{prefix}_hoi_test_unseen"
    unseen["evaluator"].dataset_name = f"{prefix}_hoi_test_unseen"
    s = int(image_size)
    m = train.mapper
    m.min_sizes = tuple(int(round(s * f / 8)) * 8 for f in (0.84, 0.92, 1.0, 1.08, 1.16))
    m.max_size = 2 * s
    m.crop_resize_sizes = (int(round(s * 0.84 / 8)) * 8, s)
    m.crop_size = (int(round(s * 0.67 / 8)) * 8, s)
    test.mapper.test_min_size = s
    test.mapper.test_max_size = 2 * s
    unseen["test"].mapper.test_min_size = s
    unseen["test"].mapper.test_max_size = 2 * s
