"""Losses, pair targets and criteria of RLIPv2 against hand computations on tiny cases."""
import math

import pytest
import torch
from detectron2.structures import Boxes, Instances

from rlipv2.modeling.criterion import SetCriterionHOI, TaggerCriterion
from rlipv2.modeling.losses import (
    entity_cross_entropy,
    focal_relation_loss,
    pair_box_losses,
    quality_focal_loss,
    relation_text_similarity,
    relational_pseudo_labels,
    relational_quality_scores,
)
from rlipv2.modeling.targets import build_batch_pair_targets, build_pair_targets, pair_targets_from_label_sequence

L = math.log


# ---------------------------------------------------------------- elementary losses


def test_focal_relation_loss_by_hand():
    p = torch.tensor([[0.8, 0.3], [0.1, 0.6]])
    t = torch.tensor([[1.0, 0.0], [0.0, 0.5]])
    pos = L(0.8) * 0.2**2
    neg = L(0.7) * 0.3**2 * 1 + L(0.9) * 0.1**2 * 1 + L(0.4) * 0.6**2 * 0.5**4
    assert focal_relation_loss(p, t).item() == pytest.approx(-(pos + neg) / 1, rel=1e-6)
    # No positives: the negative sum alone.
    t0 = torch.zeros(2, 2)
    neg0 = L(0.2) * 0.64 + L(0.7) * 0.09 + L(0.9) * 0.01 + L(0.4) * 0.36
    assert focal_relation_loss(p, t0).item() == pytest.approx(-neg0, rel=1e-6)


def test_quality_focal_loss_by_hand():
    p = torch.tensor([[0.8, 0.3], [0.1, 0.6]])
    t = torch.tensor([[0.5, 0.0], [0.0, 0.25]])
    terms = [
        (0.5 - 0.8) ** 2 * (0.5 * L(0.8) + 0.5 * L(0.2)),
        0.3**2 * L(0.7),
        0.1**2 * L(0.9),
        (0.25 - 0.6) ** 2 * (0.25 * L(0.6) + 0.75 * L(0.4)),
    ]
    assert quality_focal_loss(p, t).item() == pytest.approx(-sum(terms) / 2, rel=1e-6)
    # beta = 1 changes the modulating factor
    terms1 = [0.3 * (0.5 * L(0.8) + 0.5 * L(0.2)), 0.3 * L(0.7), 0.1 * L(0.9), 0.35 * (0.25 * L(0.6) + 0.75 * L(0.4))]
    assert quality_focal_loss(p, t, beta=1).item() == pytest.approx(-sum(terms1) / 2, rel=1e-6)


def test_entity_cross_entropy_no_object_weight():
    logits = torch.tensor([[2.0, 0.0, 1.0], [0.5, 0.5, 3.0]])
    target = torch.tensor([0, 2])  # second query -> "no objects"
    nll = lambda row, c: -(row[c] - math.log(sum(math.exp(v) for v in row)))
    rows = logits.tolist()
    expected = (1.0 * nll(rows[0], 0) + 0.1 * nll(rows[1], 2)) / 1.1
    assert entity_cross_entropy(logits, target, eos_coef=0.1).item() == pytest.approx(expected, rel=1e-6)


def test_pair_box_losses_missing_object_masking():
    src_sub = torch.tensor([[0.5, 0.5, 0.2, 0.2], [0.3, 0.3, 0.2, 0.2]])
    tgt_sub = torch.tensor([[0.5, 0.5, 0.2, 0.2], [0.4, 0.3, 0.2, 0.2]])
    src_obj = torch.tensor([[0.2, 0.2, 0.4, 0.4], [0.7, 0.7, 0.1, 0.1]])
    tgt_obj = torch.tensor([[0.4, 0.2, 0.4, 0.4], [0.0, 0.0, 0.0, 0.0]])  # second object missing
    out = pair_box_losses(src_sub, src_obj, tgt_sub, tgt_obj, num_interactions=2.0)
    assert out["loss_sub_bbox"].item() == pytest.approx(0.1 / 2, abs=1e-6)
    # first object: L1 = 0.2; the missing object contributes nothing; normaliser = 1 + 1e-4
    assert out["loss_obj_bbox"].item() == pytest.approx(0.2 / (1 + 1e-4), abs=1e-6)
    # sub pair 2: xyxy [0.2,0.2,0.4,0.4] vs [0.3,0.2,0.5,0.4]: IoU = 0.02/0.06, hull = 0.3*0.2 = union -> GIoU = 1/3
    assert out["loss_sub_giou"].item() == pytest.approx((0 + (1 - 1 / 3)) / 2, abs=1e-6)
    # obj pair 1: [0,0,0.4,0.4] vs [0.2,0,0.6,0.4]: IoU = 1/3, hull 0.24 = union -> GIoU 1/3
    assert out["loss_obj_giou"].item() == pytest.approx((1 - 1 / 3) / (1 + 1e-4), abs=1e-6)


# ---------------------------------------------------------------- RQL / RPL


def test_rql_scores_by_hand():
    sub = torch.tensor([[0.5, 0.5, 0.2, 0.2], [0.5, 0.5, 0.2, 0.2]])
    pred_obj = torch.tensor([[0.4, 0.2, 0.4, 0.4], [0.4, 0.2, 0.4, 0.4]])
    tgt_obj = torch.tensor([[0.2, 0.2, 0.4, 0.4], [0.0, 0.0, 0.0, 0.0]])
    s = relational_quality_scores(sub, pred_obj, sub, tgt_obj)
    # pair 0: GIoU_sub = 1, GIoU_obj = 1/3 -> (1/3 + 1) / 2
    # pair 1 (missing object): GIoU(pred_obj, 0-box) = 0 - (0.24 - 0.16)/0.24 = -1/3; s = (1 - 1/3 + 1) / 2
    assert s.tolist() == pytest.approx([2 / 3, 5 / 6], abs=1e-6)
    assert not s.requires_grad


def test_rpl_similarity_and_pseudo_labels_by_hand():
    emb = torch.tensor([[0.0, 0.0], [1.0, 0.0], [3.0, 0.0]])
    sim = relation_text_similarity(emb)
    # d = [[0,1,3],[1,0,2],[3,2,0]] -> sim = rowmax - d
    assert sim.tolist() == [pytest.approx(r, abs=1e-4) for r in ([3, 2, 0], [1, 2, 0], [0, 1, 3])]
    y = torch.tensor([[1.0, 0, 0], [1.0, 1, 0], [0, 0, 1.0], [0, 1.0, 0], [0, 0, 0]])
    r = relational_pseudo_labels(y, emb, threshold=0.3)
    expected = [[0, 2 / 3, 0], [0, 0, 0], [0, 1 / 3, 0], [0.5, 0, 0], [0, 0, 0]]
    for got, exp in zip(r.tolist(), expected):
        assert got == pytest.approx(exp, abs=1e-4)
    assert torch.isfinite(r).all()  # the all-zero row gives zeros, not NaN
    r_hi = relational_pseudo_labels(y, similarity=sim, threshold=0.7)
    assert r_hi.sum().item() == 0.0
    with pytest.raises(ValueError, match="relation columns"):
        relational_pseudo_labels(torch.zeros(1, 2), emb)


# ---------------------------------------------------------------- pair targets


def _instances():
    inst = Instances((100, 200))
    inst.gt_boxes = Boxes(torch.tensor([[0.0, 0, 100, 50], [100, 50, 200, 100], [50, 0, 150, 100]]))
    inst.gt_classes = torch.tensor([0, 5, 3])
    return inst


def test_build_pair_targets_groups_pairs():
    rel = torch.tensor([[0, 1, 2], [0, 2, 0], [0, 1, 1], [2, -1, 3]])
    t = build_pair_targets(_instances(), rel, num_object_labels=6, num_relation_labels=4)
    assert t["pairs"].tolist() == [[0, 1], [0, 2], [2, -1]]
    assert t["verb_labels"].tolist() == [[0, 1, 1, 0], [1, 0, 0, 0], [0, 0, 0, 1]]
    assert t["sub_labels"].tolist() == [0, 0, 3]
    assert t["obj_labels"].tolist() == [5, 3, 6]  # missing object -> "no objects" (index K)
    assert t["sub_boxes"][0].tolist() == pytest.approx([0.25, 0.25, 0.5, 0.5])
    assert t["obj_boxes"][0].tolist() == pytest.approx([0.75, 0.75, 0.5, 0.5])
    assert t["obj_boxes"][2].tolist() == [0, 0, 0, 0]
    assert t["verb_labels"].dtype == torch.float32

    faithful = build_pair_targets(_instances(), rel, 6, 4, faithful_hoi_subject_label=True)
    assert faithful["sub_labels"].tolist() == [1, 1, 1]
    # label-sequence re-indexing
    re = build_pair_targets(
        _instances(), rel, 6, 9, object_labels=torch.tensor([4, 2, 1]), relation_labels=torch.tensor([8, 7, 6, 5])
    )
    assert re["sub_labels"].tolist() == [4, 4, 1] and re["obj_labels"].tolist() == [2, 1, 6]
    assert re["verb_labels"][0].nonzero().flatten().tolist() == [6, 8]

    empty = build_pair_targets(_instances(), torch.zeros(0, 3, dtype=torch.int64), 6, 4)
    assert empty["verb_labels"].shape == (0, 4) and empty["obj_boxes"].shape == (0, 4)

    with pytest.raises(ValueError, match=r"image 7 \(a.jpg\).*outside"):
        build_batch_pair_targets(
            [{"instances": _instances(), "relations": torch.tensor([[0, 5, 0]]), "image_id": 7, "file_name": "a.jpg"}],
            6,
            4,
        )


def test_pair_targets_from_label_sequence():
    from types import SimpleNamespace

    # contract 3: texts = objects + ["no objects"] + relations; targets re-indexed into the sequence
    seq = SimpleNamespace(
        texts=["person", "cup", "dog", "no objects", "hold", "ride"],
        num_object_labels=3,
        targets=[{"labels": torch.tensor([0, 2, 1]), "relations": torch.tensor([[0, 1, 1], [0, 1, 0], [0, -1, 1]])}],
    )
    batch = [{"instances": _instances(), "relations": torch.tensor([[0, 1, 7], [0, 1, 9], [0, -1, 8]])}]
    (t,) = pair_targets_from_label_sequence(batch, seq)
    assert t["verb_labels"].tolist() == [[1, 1], [0, 1]]
    assert t["sub_labels"].tolist() == [0, 0] and t["obj_labels"].tolist() == [2, 3]
    with pytest.raises(ValueError, match="label-sequence targets"):
        pair_targets_from_label_sequence(batch * 2, seq)


# ---------------------------------------------------------------- criterion


def _outputs(q=3, k=2, r=2, seed=0, grad=True):
    g = torch.Generator().manual_seed(seed)
    out = {
        "pred_sub_logits": torch.randn(1, q, k + 1, generator=g),
        "pred_obj_logits": torch.randn(1, q, k + 1, generator=g),
        "pred_verb_logits": torch.randn(1, q, r, generator=g),
        "pred_sub_boxes": torch.tensor([[[0.5, 0.5, 0.2, 0.2], [0.3, 0.3, 0.2, 0.2], [0.6, 0.6, 0.3, 0.3]]])[:, :q],
        "pred_obj_boxes": torch.tensor([[[0.2, 0.2, 0.4, 0.4], [0.7, 0.7, 0.1, 0.1], [0.4, 0.5, 0.2, 0.2]]])[:, :q],
    }
    if grad:
        for v in out.values():
            v.requires_grad_(True)
    return out


def _target():
    # One pair, matched (by construction below) to query 1.
    return {
        "sub_labels": torch.tensor([0]),
        "obj_labels": torch.tensor([1]),
        "verb_labels": torch.tensor([[1.0, 0.0]]),
        "sub_boxes": torch.tensor([[0.32, 0.3, 0.2, 0.2]]),
        "obj_boxes": torch.tensor([[0.7, 0.68, 0.12, 0.1]]),
    }


def _force_match_to_query1(out):
    with torch.no_grad():
        out["pred_obj_logits"][0, 1] = torch.tensor([0.0, 3.0, 0.0])
        out["pred_sub_logits"][0, 1] = torch.tensor([3.0, 0.0, 0.0])


def _hand_losses(out, tgt, matched_q, rql):
    """Expected unweighted losses of one image by explicit loops."""
    q_num, c = out["pred_obj_logits"].shape[1:]
    nll = lambda row, cls: -(row[cls] - math.log(sum(math.exp(v) for v in row)))
    ce = {}
    labels = (("pred_obj_logits", tgt["obj_labels"][0].item()), ("pred_sub_logits", tgt["sub_labels"][0].item()))
    for key, lab in labels:
        num = den = 0.0
        for q in range(q_num):
            cls = lab if q == matched_q else c - 1
            w = 1.0 if cls != c - 1 else 0.1
            num += w * nll(out[key][0, q].tolist(), cls)
            den += w
        ce[key] = num / den
    sb, ob = out["pred_sub_boxes"][0, matched_q].tolist(), out["pred_obj_boxes"][0, matched_q].tolist()
    tsb, tob = tgt["sub_boxes"][0].tolist(), tgt["obj_boxes"][0].tolist()
    xyxy = lambda b: [b[0] - b[2] / 2, b[1] - b[3] / 2, b[0] + b[2] / 2, b[1] + b[3] / 2]

    def giou(a, b):
        a, b = xyxy(a), xyxy(b)
        inter = max(0, min(a[2], b[2]) - max(a[0], b[0])) * max(0, min(a[3], b[3]) - max(a[1], b[1]))
        union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
        hull = (max(a[2], b[2]) - min(a[0], b[0])) * (max(a[3], b[3]) - min(a[1], b[1]))
        return inter / union - (hull - union) / hull

    s = (min(giou(sb, tsb), giou(ob, tob)) + 1) / 2
    verb = 0.0
    npos = 0
    for q in range(q_num):
        for v in range(out["pred_verb_logits"].shape[-1]):
            p = 1 / (1 + math.exp(-out["pred_verb_logits"][0, q, v].item()))
            y = tgt["verb_labels"][0, v].item() if q == matched_q else 0.0
            if rql:
                t = y * s
                npos += t > 0
                verb += abs(t - p) ** 2 * (t * L(p) + (1 - t) * L(1 - p))
            elif y == 1:
                npos += 1
                verb += (1 - p) ** 2 * L(p)
            else:
                verb += p**2 * (1 - y) ** 4 * L(1 - p)
    return {
        "loss_obj_ce": ce["pred_obj_logits"] + ce["pred_sub_logits"],
        "loss_verb_ce": -verb / max(npos, 1),
        "loss_sub_bbox": sum(abs(a - b) for a, b in zip(sb, tsb)) / 1,
        "loss_obj_bbox": sum(abs(a - b) for a, b in zip(ob, tob)) / (1 + 1e-4),
        "loss_sub_giou": 1 - giou(sb, tsb),
        "loss_obj_giou": (1 - giou(ob, tob)) / (1 + 1e-4),
    }


@pytest.mark.parametrize("rql", [False, True])
def test_criterion_equals_hand_computation(rql):
    out = _outputs()
    _force_match_to_query1(out)
    tgt = _target()
    crit = SetCriterionHOI(use_rql=rql)
    assert crit.matcher(out, [tgt])[0][0].tolist() == [1]
    losses = crit(out, [tgt])
    expected = _hand_losses(out, tgt, matched_q=1, rql=rql)
    for k, v in expected.items():
        assert losses[k].item() == pytest.approx(v, rel=1e-5, abs=1e-6), k
    assert "obj_cardinality_error" in losses and "obj_class_error" in losses and "sub_class_error" in losses
    # without subject_class only the object CE remains in loss_obj_ce
    no_sub = SetCriterionHOI(subject_class=False)(out, [tgt])
    assert no_sub["loss_obj_ce"].item() < losses["loss_obj_ce"].item()
    assert "sub_class_error" not in no_sub


def test_aux_losses_rematched_and_weighted():
    out = _outputs()
    _force_match_to_query1(out)
    aux = _outputs(seed=5)
    with torch.no_grad():  # aux layer: query 2 is the obvious match
        aux["pred_sub_boxes"][0, 2] = _target()["sub_boxes"][0]
        aux["pred_obj_boxes"][0, 2] = _target()["obj_boxes"][0]
    out["aux_outputs"] = [aux, _outputs(seed=6)]
    crit = SetCriterionHOI(weight_dict={"loss_verb_ce": 3.0})
    losses = crit(out, [_target()])
    for i in range(2):
        for k in ("loss_obj_ce", "loss_verb_ce", "loss_sub_bbox", "loss_obj_bbox", "loss_sub_giou", "loss_obj_giou"):
            assert f"{k}_{i}" in losses
    assert "obj_class_error_0" not in losses  # logged only for the last layer
    expected_aux0 = _hand_losses(aux, _target(), matched_q=2, rql=False)
    for k, v in expected_aux0.items():
        assert losses[f"{k}_0"].item() == pytest.approx(v, rel=1e-5, abs=1e-6), k
    weighted = crit.weighted_losses(losses)
    assert "obj_cardinality_error" not in weighted and "obj_class_error" not in weighted
    assert weighted["loss_verb_ce_1"].item() == pytest.approx(3.0 * losses["loss_verb_ce_1"].item())
    assert weighted["loss_sub_bbox_0"].item() == pytest.approx(2.5 * losses["loss_sub_bbox_0"].item())
    assert len(weighted) == 18
    no_aux = SetCriterionHOI(aux_loss=False)(out, [_target()])
    assert not any(k.endswith("_0") for k in no_aux)


def test_gradients_flow_to_every_prediction():
    out = _outputs()
    out["aux_outputs"] = [_outputs(seed=3)]
    crit = SetCriterionHOI(use_rql=True)
    total = sum(crit.weighted_losses(crit(out, [_target()])).values())
    total.backward()
    for layer in (out, out["aux_outputs"][0]):
        for k, v in layer.items():
            if k != "aux_outputs":
                assert v.grad is not None and v.grad.abs().sum() > 0, k


def test_missing_object_masking_in_criterion():
    out = _outputs()
    _force_match_to_query1(out)
    tgt = _target()
    tgt["obj_boxes"] = torch.zeros(1, 4)
    tgt["obj_labels"] = torch.tensor([2])  # "no objects"
    losses = SetCriterionHOI()(out, [tgt])
    assert losses["loss_obj_bbox"].item() == 0.0 and losses["loss_obj_giou"].item() == 0.0
    assert losses["loss_sub_bbox"].item() > 0
    losses["loss_obj_bbox"].backward()
    assert out["pred_obj_boxes"].grad.abs().sum() == 0


def test_rpl_targets_in_criterion():
    r = 3
    out = _outputs(r=r)
    _force_match_to_query1(out)
    emb = torch.tensor([[0.0, 0.0], [1.0, 0.0], [3.0, 0.0]], requires_grad=True)
    out["text_embeddings_prefusion"] = emb
    tgt = _target()
    tgt["verb_labels"] = torch.tensor([[1.0, 0.0, 0.0]])
    crit = SetCriterionHOI(use_rql=True, use_rpl=True)
    pseudo = crit.pseudo_labels(out, [tgt])
    assert pseudo[0].tolist()[0] == pytest.approx([0, 2 / 3, 0], abs=1e-4)
    indices = crit.matcher(out, [tgt])
    target = crit.relation_targets(out, [tgt], indices, pseudo)
    src_sub, src_obj = out["pred_sub_boxes"][0, 1:2], out["pred_obj_boxes"][0, 1:2]
    s = relational_quality_scores(src_sub, src_obj, tgt["sub_boxes"], tgt["obj_boxes"])
    assert target[0, 1].tolist() == pytest.approx([s.item(), 2 / 3 * s.item(), 0.0], abs=1e-4)
    assert target[0, 0].abs().sum() == 0 and target[0, 2].abs().sum() == 0
    batched = dict(out, text_embeddings_prefusion=emb[None].expand(2, -1, -1))
    assert crit.pseudo_labels(batched, [tgt])[0].tolist() == pseudo[0].tolist()
    crit(out, [tgt])["loss_verb_ce"].backward()
    assert emb.grad is None  # targets are constants by default
    faithful = SetCriterionHOI(use_rql=True, use_rpl=True, rpl_target_grad=True)
    faithful(out, [tgt])["loss_verb_ce"].backward()
    assert emb.grad is not None and emb.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="use_rql"):
        SetCriterionHOI(use_rpl=True)
    del out["text_embeddings_prefusion"]
    with pytest.raises(KeyError, match="text_embeddings_prefusion"):
        crit(out, [tgt])


def test_empty_targets_give_finite_losses():
    out = _outputs()
    empty = {k: v[:0] for k, v in _target().items()}
    losses = SetCriterionHOI(use_rql=True)(out, [empty])
    assert all(torch.isfinite(v) for v in losses.values())
    assert losses["loss_sub_bbox"].item() == 0.0


def test_tagger_criterion_by_hand():
    out = _outputs(q=3)
    out["aux_outputs"] = [_outputs(q=3, seed=9)]
    tgt = {
        "sub_labels": torch.tensor([0, 1]),
        "obj_labels": torch.tensor([1, 2]),
        "verb_labels": torch.tensor([[1.0, 0.0], [0.0, 0.0]]),  # second pair: a negative pair
        "sub_boxes": torch.tensor([[0.5, 0.5, 0.2, 0.2], [0.4, 0.3, 0.2, 0.2]]),
        "obj_boxes": torch.tensor([[0.4, 0.2, 0.4, 0.4], [0.0, 0.0, 0.0, 0.0]]),
    }
    crit = TaggerCriterion()
    losses = crit(out, [tgt])
    nll = lambda row, cls: -(row[cls] - math.log(sum(math.exp(v) for v in row)))
    lo, ls = out["pred_obj_logits"][0].tolist(), out["pred_sub_logits"][0].tolist()
    ce_obj = (nll(lo[0], 1) + 0.1 * nll(lo[1], 2)) / 1.1
    ce_sub = (nll(ls[0], 0) + nll(ls[1], 1)) / 2.0
    assert losses["loss_obj_ce"].item() == pytest.approx(ce_obj + ce_sub, rel=1e-5)
    p = torch.sigmoid(out["pred_verb_logits"][0, :2]).tolist()
    verb = (1 - p[0][0]) ** 2 * L(p[0][0]) + p[0][1] ** 2 * L(1 - p[0][1])
    verb += p[1][0] ** 2 * L(1 - p[1][0]) + p[1][1] ** 2 * L(1 - p[1][1])
    assert losses["loss_verb_ce"].item() == pytest.approx(-verb, rel=1e-5)
    boxes = pair_box_losses(
        out["pred_sub_boxes"][0, :2], out["pred_obj_boxes"][0, :2], tgt["sub_boxes"], tgt["obj_boxes"], 2.0
    )
    for k, v in boxes.items():
        assert losses[k].item() == pytest.approx(v.item(), rel=1e-6)
    # the negative pair's missing object is masked: only pair 0's object counts
    assert losses["loss_obj_bbox"].item() == pytest.approx(
        (out["pred_obj_boxes"][0, 0] - tgt["obj_boxes"][0]).abs().sum().item() / (1 + 1e-4), rel=1e-5
    )
    assert "loss_verb_ce_0" in losses and "obj_class_error_0" in losses
    sum(crit.weighted_losses(losses).values()).backward()
    assert out["pred_verb_logits"].grad[0, 2].abs().sum() == 0  # query 2 has no pair
    assert out["pred_verb_logits"].grad[0, :2].abs().sum() > 0


def test_half_precision_outputs_are_computed_in_float32():
    out = _outputs(grad=False)
    with torch.no_grad():
        out["pred_verb_logits"][0, 0, 0] = 30.0  # sigmoid == 1 in half precision
    half = {k: v.to(torch.bfloat16) for k, v in out.items()}
    ref = {k: v.float() for k, v in half.items()}
    crit = SetCriterionHOI(use_rql=True)
    got, exp = crit(half, [_target()]), crit(ref, [_target()])
    for k in exp:
        assert torch.isfinite(got[k]) and got[k].dtype == torch.float32
        assert got[k].item() == pytest.approx(exp[k].item(), rel=1e-6), k


def _dist_worker(rank, store, out_dir):
    import torch.distributed as dist

    from rlipv2.modeling.criterion import num_interactions_across_processes

    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=2)
    try:
        p = 1 if rank == 0 else 4  # (1 + 4) / 2 = 2.5 pairs per process
        targets = [{"obj_labels": torch.zeros(p, dtype=torch.int64)}]
        value = num_interactions_across_processes(targets, torch.device("cpu"))
        (out_dir / f"rank{rank}.txt").write_text(str(value))
    finally:
        dist.destroy_process_group()


def test_num_interactions_single_process():
    from rlipv2.modeling.criterion import num_interactions_across_processes

    assert num_interactions_across_processes([_target(), _target()], torch.device("cpu")) == 2.0
    assert num_interactions_across_processes([{"obj_labels": torch.zeros(0)}], torch.device("cpu")) == 1.0  # clamp


@pytest.mark.slow
def test_num_interactions_all_reduced_across_processes(tmp_path):
    torch.multiprocessing.spawn(_dist_worker, args=(tmp_path / "store", tmp_path), nprocs=2, join=True)
    assert [float((tmp_path / f"rank{r}.txt").read_text()) for r in range(2)] == [2.5, 2.5]
