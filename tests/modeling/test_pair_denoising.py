"""Pair denoising (DN-DETR-style training queries for ParSeDA): isolation, layout, losses, inference."""
from __future__ import annotations

import pytest
import torch

from rlipv2.modeling import PairDenoising

from .conftest import build_tiny_model, label_texts, random_batch
from .test_rlipv2_model import _inputs


def _targets(num_pairs=(2, 1), num_obj=4, num_rel=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    out = []
    for p in num_pairs:
        cxcy = torch.rand(p, 2, generator=g) * 0.5 + 0.25
        wh = torch.rand(p, 2, generator=g) * 0.3 + 0.1
        out.append({"sub_labels": torch.zeros(p, dtype=torch.int64),
                    "obj_labels": torch.randint(0, num_obj, (p,), generator=g),
                    "verb_labels": (torch.rand(p, num_rel, generator=g) > 0.6).float(),
                    "sub_boxes": torch.cat([cxcy, wh], -1), "obj_boxes": torch.cat([cxcy.flip(-1), wh], -1),
                    "pairs": torch.zeros(p, 2, dtype=torch.int64)})
    return out


def _decoder_run(model, images, mask, dn):
    """Raw outputs of ``forward_raw`` with denoising queries ``dn`` (None: matching queries only)."""
    texts, num_obj = label_texts()
    torch.manual_seed(0)
    return model.forward_raw(images, mask, texts, num_obj, denoising=dn)


def test_queries_layout_and_masks():
    dn = PairDenoising(d_model=16, num_groups=3).train()
    q = dn.queries(_targets((2, 1)), num_matching=4)
    p, d = 2, 6
    assert q["num_pairs"] == p
    assert q["sub_boxes"].shape == q["obj_boxes"].shape == (2, d, 4)
    assert q["sub_content"].shape == (2, d, 16)
    # image 1 has one pair: slot 1 of every group is empty and masked as a key
    pad = q["key_padding_mask"]
    assert pad.shape == (2, 4 + d) and not pad[:, :4].any()
    assert pad[1, 4:].tolist() == [False, True] * 3 and not pad[0].any()
    rel = q["relation_attn_mask"]
    assert rel.shape == (4 + d, 4 + d)
    assert not rel[:, :4].any()  # everyone may see the matching queries
    assert rel[:4, 4:].all()  # matching queries never see denoising ones
    assert not rel[4:6, 4:6].any() and rel[4:6, 6:].all()  # group 0 sees itself, not groups 1-2
    ent = q["entity_attn_mask"]
    assert ent.shape == (2 * (4 + d), 2 * (4 + d))
    assert ent[:4, 4 + d + 4:].all() and not ent[4 + d + 4:4 + d + 6, 4:6].any()  # object dn sees subject dn
    # anchors are jittered copies of the ground truth, inside [0, 1]
    t = _targets((2, 1))
    assert (q["sub_boxes"] > 0).all() and (q["sub_boxes"] <= 1).all()
    assert (q["sub_boxes"][0, :2] - t[0]["sub_boxes"]).abs().max() < 0.4
    assert not torch.equal(q["sub_boxes"][0, :2], q["sub_boxes"][0, 2:4])  # each group its own noise


def test_disabled_at_inference_and_with_zero_groups():
    t = _targets()
    assert PairDenoising(16, num_groups=2).eval().queries(t, 4) is None
    assert PairDenoising(16, num_groups=0).train().queries(t, 4) is None
    assert PairDenoising(16, num_groups=2).train().queries(_targets((0, 0)), 4) is None
    with pytest.raises(ValueError, match="num_groups"):
        PairDenoising(16, num_groups=-1)


def test_matching_outputs_do_not_see_denoising_queries(tiny_text_dir):
    """The attention masks make the matching pairs' outputs independent of the denoising queries,
    and each group independent of the others."""
    model = build_tiny_model(tiny_text_dir, **{"encoder.fusion_dropout": 0.0, "encoder.resizer_dropout": 0.0})
    model.pair_denoising = PairDenoising(d_model=64, num_groups=2).train()
    model.eval()  # no dropout; queries() is called directly
    images, mask = random_batch()
    q = model.num_queries // 2
    with torch.no_grad():
        plain = _decoder_run(model, images, mask, None)
        dn = model.pair_denoising.train().queries(_targets((2, 1)), q)
        both = _decoder_run(model, images, mask, dn)
        match, den = PairDenoising.split_outputs(both, q)
        for k in ("pred_obj_logits", "pred_verb_logits", "pred_sub_boxes", "pred_obj_boxes", "pred_sub_logits"):
            assert den[k].shape[1] == 4
            torch.testing.assert_close(match[k], plain[k], atol=1e-5, rtol=1e-5)
            torch.testing.assert_close(match["aux_outputs"][0][k], plain["aux_outputs"][0][k], atol=1e-5, rtol=1e-5)
        # moving group 1's anchors leaves group 0 unchanged
        dn2 = dict(dn)
        dn2["sub_boxes"] = dn["sub_boxes"].clone()
        dn2["sub_boxes"][:, 2:] = 0.3
        _, den2 = PairDenoising.split_outputs(_decoder_run(model, images, mask, dn2), q)
        # (box heads start at zero, so compare the object logits, which depend on the states)
        torch.testing.assert_close(den2["pred_obj_logits"][:, :2], den["pred_obj_logits"][:, :2], atol=1e-5, rtol=1e-5)
        assert (den2["pred_obj_logits"][:, 2:] - den["pred_obj_logits"][:, 2:]).abs().max() > 1e-4


def test_training_adds_denoising_losses_and_gradients(tiny_text_dir):
    model = build_tiny_model(tiny_text_dir)
    model.pair_denoising = PairDenoising(d_model=64, num_groups=2)
    model.train()
    losses = model([_inputs(64, 80, 0), _inputs(48, 64, 1)])
    dn_keys = {k for k in losses if k.startswith("loss_dn_")}
    assert {"loss_dn_sub_bbox", "loss_dn_obj_giou", "loss_dn_obj_ce", "loss_dn_verb_ce", "loss_dn_obj_ce_0"} <= dn_keys
    assert {"loss_obj_ce", "loss_sub_bbox"} <= set(losses)  # the matching losses stay
    total = sum(losses.values())
    assert torch.isfinite(total)
    total.backward()
    assert model.pair_denoising.content.weight.grad.abs().sum() > 0
    assert model.pair_denoising.rel_content.weight.grad.abs().sum() > 0
    # inference is unchanged: Q pairs out, no denoising
    model.eval()
    images, mask = random_batch()
    with torch.no_grad():
        out = _decoder_run(model, images, mask, None)
    assert out["pred_verb_logits"].shape[1] == model.num_queries // 2


def test_denoising_loss_is_small_for_perfect_reconstruction():
    """Slot p of each group is scored against pair p: outputs equal to the targets give ~zero box loss,
    a shifted pair order does not."""
    dn = PairDenoising(d_model=8, num_groups=2)
    t = _targets((2, 2), num_obj=3, num_rel=4)
    sub = torch.stack([x["sub_boxes"] for x in t]).repeat(1, 2, 1)
    obj = torch.stack([x["obj_boxes"] for x in t]).repeat(1, 2, 1)
    logits = torch.zeros(2, 4, 4)
    out = {"pred_sub_boxes": sub, "pred_obj_boxes": obj, "pred_sub_logits": logits, "pred_obj_logits": logits,
           "pred_verb_logits": torch.zeros(2, 4, 4), "aux_outputs": []}
    good = dn.losses(out, t, num_pairs=2)
    assert good["loss_dn_sub_bbox"] < 1e-6 and good["loss_dn_obj_giou"] < 1e-6
    out_bad = dict(out, pred_sub_boxes=sub.flip(1))
    bad = dn.losses(out_bad, t, num_pairs=2)
    assert bad["loss_dn_sub_bbox"] > 0.01
