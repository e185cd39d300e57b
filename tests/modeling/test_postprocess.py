"""HOI/SGG post-processors: contract-4 structure, box scaling to the original size, score formulas."""
import math

import pytest
import torch
from detectron2.structures import Boxes, Instances

from rlipv2.modeling.postprocess import HOIPostProcessor, SGGPostProcessor

Q, K, R = 2, 3, 2  # queries, object labels (+ "no objects"), relation labels


def _outputs():
    return {
        # query 0: object argmax is "no objects" (column K) -> must be excluded; best real class is 2
        "pred_obj_logits": torch.tensor([[[0.0, 1.0, 2.0, 5.0], [3.0, 0.0, 0.0, 0.0]]]),
        # query 0: subject argmax person (0); query 1: argmax class 1
        "pred_sub_logits": torch.tensor([[[4.0, 0.0, 0.0, 0.0], [0.0, 2.0, 0.0, 1.0]]]),
        "pred_verb_logits": torch.tensor([[[0.0, 1.0], [-1.0, 2.0]]]),
        "pred_sub_boxes": torch.tensor([[[0.5, 0.5, 0.2, 0.4], [0.25, 0.75, 0.5, 0.5]]]),
        "pred_obj_boxes": torch.tensor([[[0.1, 0.2, 0.2, 0.2], [0.5, 0.5, 1.0, 1.0]]]),
    }


def _softmax(row):
    e = [math.exp(v) for v in row]
    return [v / sum(e) for v in e]


def _sig(x):
    return 1 / (1 + math.exp(-x))


def _check_contract(res, size, q):
    assert set(res) == {"instances", "pairs"}
    inst = res["instances"]
    assert isinstance(inst, Instances) and inst.image_size == size
    assert isinstance(inst.pred_boxes, Boxes) and inst.pred_boxes.tensor.shape == (2 * q, 4)
    assert inst.pred_classes.dtype == torch.int64 and inst.pred_classes.shape == (2 * q,)
    assert inst.scores.shape == (2 * q,)
    assert res["pairs"]["subject"].tolist() == list(range(q))
    assert res["pairs"]["object"].tolist() == list(range(q, 2 * q))
    assert res["pairs"]["relation_scores"].shape == (q, R)


def test_hoi_postprocessor_contract_scores_and_boxes():
    out = _outputs()
    size = (300, 400)  # original (h, w)
    (res,) = HOIPostProcessor(subject_category_id=0)(out, [size])
    _check_contract(res, size, Q)
    inst = res["instances"]
    p0 = _softmax([0.0, 1.0, 2.0, 5.0])
    p1 = _softmax([3.0, 0.0, 0.0, 0.0])
    obj_scores = [p0[2], p1[0]]
    assert inst.pred_classes.tolist() == [0, 0, 2, 0]  # subjects forced to person
    assert inst.scores.tolist() == pytest.approx([1.0, 1.0] + obj_scores, rel=1e-6)
    expected_rel = [
        [_sig(0.0) * obj_scores[0], _sig(1.0) * obj_scores[0]],
        [_sig(-1.0) * obj_scores[1], _sig(2.0) * obj_scores[1]],
    ]
    for got, exp in zip(res["pairs"]["relation_scores"].tolist(), expected_rel):
        assert got == pytest.approx(exp, rel=1e-6)
    # cxcywh (0.5, 0.5, 0.2, 0.4) -> xyxy (0.4, 0.3, 0.6, 0.7) * (w, h, w, h) = (160, 90, 240, 210)
    boxes = inst.pred_boxes.tensor.tolist()
    assert boxes[0] == pytest.approx([160, 90, 240, 210])
    assert boxes[1] == pytest.approx([0, 150, 200, 300])
    assert boxes[2] == pytest.approx([0, 30, 80, 90])
    assert boxes[3] == pytest.approx([0, 0, 400, 300])


def test_hoi_postprocessor_batch_sizes_and_zero_shot_filter():
    out = {k: torch.cat([v, v]) for k, v in _outputs().items()}
    res = HOIPostProcessor()(out, [(100, 100), (50, 200)])
    assert res[1]["instances"].image_size == (50, 200)
    assert res[1]["instances"].pred_boxes.tensor[3].tolist() == pytest.approx([0, 0, 200, 50])
    filtered = HOIPostProcessor(zero_shot_subject_filter=True)(out, [(100, 100), (50, 200)])
    for r in filtered:  # only query 0 has a person subject
        _check_contract(r, r["instances"].image_size, 1)
        kept = r["pairs"]["relation_scores"][0].tolist()
        assert kept == pytest.approx(res[0]["pairs"]["relation_scores"][0].tolist())
    with pytest.raises(ValueError, match="image sizes"):
        HOIPostProcessor()(out, [(1, 1)])


def test_hoi_postprocessor_correct_mat():
    correct = torch.tensor([[1, 1, 0], [0, 1, 1]])  # (R, K): relation 0 invalid with object 2
    (res,) = HOIPostProcessor(correct_mat=correct)(_outputs(), [(10, 10)])
    (plain,) = HOIPostProcessor()(_outputs(), [(10, 10)])
    rs, ps = res["pairs"]["relation_scores"], plain["pairs"]["relation_scores"]
    # query 0 object label 2: relation 0 invalid, relation 1 valid; query 1 object 0: relation 1 invalid
    assert rs[0].tolist() == pytest.approx([0.0, ps[0, 1].item()])
    assert rs[1].tolist() == pytest.approx([ps[1, 0].item(), 0.0])


def test_sgg_postprocessor_scores_and_labels():
    out = _outputs()
    (res,) = SGGPostProcessor()(out, [(300, 400)])
    _check_contract(res, (300, 400), Q)
    s0 = _softmax([4.0, 0.0, 0.0, 0.0])
    s1 = _softmax([0.0, 2.0, 0.0, 1.0])
    o0 = _softmax([0.0, 1.0, 2.0, 5.0])
    o1 = _softmax([3.0, 0.0, 0.0, 0.0])
    inst = res["instances"]
    assert inst.pred_classes.tolist() == [0, 1, 2, 0]
    assert inst.scores.tolist() == pytest.approx([s0[0], s1[1], o0[2], o1[0]], rel=1e-6)
    rel = res["pairs"]["relation_scores"]
    assert rel[1, 1].item() == pytest.approx(_sig(2.0) * o1[0] * s1[1], rel=1e-6)
    assert rel[0, 0].item() == pytest.approx(0.5 * o0[2] * s0[0], rel=1e-6)
    assert inst.pred_boxes.tensor[0].tolist() == pytest.approx([160, 90, 240, 210])
