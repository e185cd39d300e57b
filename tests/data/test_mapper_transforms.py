"""The mapper outputs contract 2; crops and flips keep relations right (property tests)."""

import numpy as np
import pytest
import torch
from detectron2.data import transforms as T
from detectron2.structures import BoxMode, Instances
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from relation_fixtures import write_image

from rlipv2.data import RelationDatasetMapper, build_relation_augmentations, remap_relations
from rlipv2.data.transforms import ColorJitter, RandomSelect, RandomSizeCrop


@pytest.fixture(scope="module")
def image_file(tmp_path_factory):
    p = tmp_path_factory.mktemp("img") / "a.jpg"
    write_image(str(p), w=160, h=120)
    return str(p)


def _record(path, boxes, rels, w=160, h=120):
    return {
        "file_name": path,
        "image_id": 1,
        "height": h,
        "width": w,
        # category id = original box index, so the output classes tell which box is which
        "annotations": [
            {"bbox": list(b), "bbox_mode": BoxMode.XYXY_ABS, "category_id": i} for i, b in enumerate(boxes)
        ],
        "relations": [
            {"subject": s, "object": o, "predicate": p, "confidence": 0.5 + 0.01 * k}
            for k, (s, o, p) in enumerate(rels)
        ],
    }


def _mapper(is_train=True, **kw):
    return RelationDatasetMapper(
        is_train=is_train,
        thing_classes=[f"obj{i}" for i in range(50)],
        predicate_classes=["on the left of", "on the right of", "hold", "ride"],
        **kw,
    )


def test_contract_2_output(image_file):
    rec = _record(image_file, [[10, 10, 50, 80], [60, 20, 150, 110]], [(0, 1, 2), (0, -1, 3)])
    out = _mapper(is_train=False)(rec)
    assert out["image"].dtype == torch.uint8 and out["image"].shape[0] == 3
    H, W = out["image"].shape[1:]
    assert min(H, W) == 800 and max(H, W) <= 1333
    assert (out["height"], out["width"]) == (120, 160) and out["image_id"] == 1 and out["file_name"] == image_file
    inst = out["instances"]
    assert isinstance(inst, Instances) and inst.image_size == (H, W)
    assert inst.gt_classes.dtype == torch.int64 and inst.gt_boxes.tensor.shape == (2, 4)
    assert torch.allclose(inst.gt_boxes.tensor[0], torch.tensor([10, 10, 50, 80.0]) * 800 / 120, atol=0.5)
    assert out["relations"].dtype == torch.int64 and out["relations"].tolist() == [[0, 1, 2], [0, -1, 3]]
    assert out["relation_confidence"].dtype == torch.float32 and out["relation_confidence"].shape == (2,)
    assert out["object_texts"] == ["obj0", "obj1"] and out["predicate_texts"] == ["hold", "ride"]
    assert rec["relations"][0] == {"subject": 0, "object": 1, "predicate": 2, "confidence": 0.5}  # input untouched


def test_train_filters_caps_and_skips(image_file):
    m = _mapper(augmentations=[])
    assert m(_record(image_file, [[0, 0, 10, 10]], [])) is None
    assert _mapper(augmentations=[], filter_no_relations=False)(_record(image_file, [[0, 0, 10, 10]], [])) is not None
    rels = [(0, 1, k % 4) for k in range(150)]
    out = m(_record(image_file, [[0, 0, 10, 10], [5, 5, 30, 30]], rels))
    assert out["relations"].shape == (100, 3) and out["relations"][:, 2].tolist() == [k % 4 for k in range(100)]
    out = _mapper(is_train=False)(_record(image_file, [[0, 0, 10, 10], [5, 5, 30, 30]], rels))
    assert out["relations"].shape == (150, 3)  # no cap at test time


def test_remap_relations():
    rels = np.array([[0, 1, 5], [2, 1, 6], [3, -1, 7], [1, 3, 8]])
    keep = np.array([True, False, True, True])
    assert remap_relations(rels, keep).tolist() == [[2, -1, 7]]
    keep = np.array([True, True, False, True])
    assert remap_relations(rels, keep).tolist() == [[0, 1, 5], [2, -1, 7], [1, 2, 8]]


boxes_st = st.lists(
    st.tuples(st.floats(0, 150), st.floats(0, 110), st.floats(1, 80), st.floats(1, 80)).map(
        lambda t: [t[0], t[1], min(160.0, t[0] + t[2]), min(120.0, t[1] + t[3])]
    ),
    min_size=1,
    max_size=8,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(boxes=boxes_st, data=st.data(), seed=st.integers(0, 2**31 - 1))
def test_crop_and_flip_keep_relations_right(image_file, boxes, data, seed):
    n = len(boxes)
    rels = data.draw(
        st.lists(st.tuples(st.integers(0, n - 1), st.integers(-1, n - 1), st.integers(2, 3)), min_size=1, max_size=10)
    )
    np.random.seed(seed)
    augs = [T.RandomFlip(prob=0.5), RandomSizeCrop(20, 100)]
    out = _mapper(augmentations=augs)(_record(image_file, boxes, rels))
    H, W = out["image"].shape[1:]
    b = out["instances"].gt_boxes.tensor
    cls = out["instances"].gt_classes.tolist()  # original indices of the kept boxes
    assert (b[:, 2] > b[:, 0]).all() and (b[:, 3] > b[:, 1]).all()
    assert (b[:, 0] >= 0).all() and (b[:, 2] <= W).all() and (b[:, 1] >= 0).all() and (b[:, 3] <= H).all()
    kept = set(cls)
    expected = [(s, o, p, 0.5 + 0.01 * k) for k, (s, o, p) in enumerate(rels) if s in kept and (o == -1 or o in kept)]
    got = []
    for (s, o, p), c in zip(out["relations"].tolist(), out["relation_confidence"].tolist()):
        assert 0 <= s < len(cls) and -1 <= o < len(cls)
        got.append((cls[s], -1 if o == -1 else cls[o], p, c))
    assert [g[:3] for g in got] == [e[:3] for e in expected]
    assert np.allclose([g[3] for g in got], [e[3] for e in expected])
    assert out["object_texts"] == [f"obj{c}" for c in cls]


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(boxes=boxes_st)
def test_flip_moves_boxes_and_swaps_left_right(image_file, boxes):
    rels = [(0, 0, 0), (0, 0, 2)]
    out = _mapper(augmentations=[T.RandomFlip(prob=1.0)])(_record(image_file, boxes, rels))
    b = out["instances"].gt_boxes.tensor.numpy()
    src = np.array(boxes, dtype=np.float32)
    keep = (src[:, 2] > src[:, 0]) & (src[:, 3] > src[:, 1])
    assert np.allclose(b[:, 0], 160 - src[keep, 2], atol=1e-3) and np.allclose(b[:, 2], 160 - src[keep, 0], atol=1e-3)
    if keep[0]:
        assert out["predicate_texts"] == ["on the right of", "hold"] and out["relations"][:, 2].tolist() == [1, 2]


def test_official_augmentations(image_file):
    augs = build_relation_augmentations(True)
    assert isinstance(augs[0], T.RandomFlip) and isinstance(augs[1], ColorJitter) and isinstance(augs[2], RandomSelect)
    m = _mapper(augmentations=augs)
    np.random.seed(0)
    sizes = set()
    for _ in range(20):
        out = m(_record(image_file, [[10, 10, 50, 80], [60, 20, 150, 110]], [(0, 1, 2)]))
        h, w = out["image"].shape[1:]
        sizes.add(min(h, w))
        assert max(h, w) <= 1333
    assert sizes <= set(range(480, 801, 32)) and len(sizes) > 3
    test = build_relation_augmentations(False)
    assert len(test) == 1 and test[0].short_edge_length == (800, 800) and test[0].max_size == 1333


def test_color_jitter_changes_pixels_only():
    img = np.random.default_rng(0).integers(0, 255, (30, 40, 3), dtype=np.uint8)
    t = ColorJitter(0.4, 0.4, 0.4)
    np.random.seed(1)
    tr = t.get_transform(img)
    out = tr.apply_image(img)
    assert out.shape == img.shape and out.dtype == np.uint8 and not np.array_equal(out, img)
    coords = np.array([[1.0, 2.0]])
    assert np.array_equal(tr.apply_coords(coords), coords)
    assert 0.6 <= tr.brightness <= 1.4 and sorted(tr.order) == [0, 1, 2]


def test_random_size_crop_ranges():
    img = np.zeros((700, 900, 3), np.uint8)
    np.random.seed(0)
    for _ in range(50):
        t = RandomSizeCrop(384, 600).get_transform(img)
        assert 384 <= t.w <= 600 and 384 <= t.h <= 600 and t.x0 + t.w <= 900 and t.y0 + t.h <= 700
    small = np.zeros((100, 200, 3), np.uint8)
    t = RandomSizeCrop(384, 600).get_transform(small)
    assert (t.w, t.h) == (200, 100)


def test_from_config_and_lazy_kwargs():
    from detectron2.config import get_cfg

    cfg = get_cfg()
    cfg.INPUT.MIN_SIZE_TRAIN = (200, 232)
    cfg.INPUT.MAX_SIZE_TRAIN = 400
    cfg.DATASETS.TRAIN = ("hico_det_train",)
    m = RelationDatasetMapper(cfg, is_train=True)
    assert m.dataset_name == "hico_det_train"
    rs = [a for a in m.augmentations.augs if isinstance(a, T.ResizeShortestEdge)]
    assert rs and tuple(rs[0].short_edge_length) == (200, 232) and rs[0].max_size == 400
    m2 = RelationDatasetMapper(is_train=True, min_sizes=(160, 192), max_size=300, random_crop=False)
    assert tuple(m2.augmentations.augs[-1].short_edge_length) == (160, 192)
    kw = RelationDatasetMapper.from_config(None, is_train=False, test_min_size=192)
    assert kw == {"is_train": False, "test_min_size": 192}


def test_exif_orientation_is_ignored_like_the_official_loader(tmp_path):
    from PIL import Image

    arr = np.zeros((20, 40, 3), np.uint8)
    arr[:, :10] = 255  # white band on the left
    im = Image.fromarray(arr)
    exif = im.getexif()
    exif[0x0112] = 6  # "rotate 90 CW" tag
    path = str(tmp_path / "exif.jpg")
    im.save(path, exif=exif, quality=95)
    out = _mapper(is_train=False, test_min_size=20, test_max_size=100)(_record(path, [[0, 0, 10, 20]], [], w=40, h=20))
    img = out["image"]
    assert (
        tuple(img.shape[1:]) == (20, 40) and img[:, :, :8].float().mean() > 200 and img[:, :, 20:].float().mean() < 50
    )


def test_flip_keeps_predicates_without_a_mirror(image_file):
    m = RelationDatasetMapper(
        is_train=True, augmentations=[T.RandomFlip(prob=1.0)], thing_classes=["a", "b"], predicate_classes=["left of"]
    )
    out = m(_record(image_file, [[0, 0, 10, 10], [5, 5, 30, 30]], [(0, 1, 0)]))
    assert out["predicate_texts"] == ["left of"] and out["relations"][:, 2].tolist() == [0]
