"""The RLIPv2 meta-architecture on CPU with a tiny config: forward, backward, quirk flags, configs."""
from __future__ import annotations

import pytest
import torch
from detectron2.structures import Boxes, Instances

from .conftest import OBJECTS, RELATIONS, build_tiny_model, label_texts, random_batch


def _inputs(h, w, seed=0):
    g = torch.Generator().manual_seed(seed)
    inst = Instances((h, w), gt_boxes=Boxes(torch.tensor([[2.0, 3.0, 30.0, 40.0], [10.0, 12.0, 50.0, 45.0],
                                                          [0.0, 0.0, 20.0, 20.0]])),
                     gt_classes=torch.tensor([0, 2, 3]))
    return {"image": torch.randint(0, 255, (3, h, w), dtype=torch.uint8, generator=g), "height": 2 * h,
            "width": 2 * w, "instances": inst, "file_name": f"img{seed}.jpg",
            "relations": torch.tensor([[0, 1, 0], [0, 1, 4], [0, 2, 1]])}


def test_forward_raw_shapes_and_ranges(tiny_model):
    images, mask = random_batch()
    texts, num_obj = label_texts()
    tiny_model.eval()
    with torch.no_grad():
        out = tiny_model.forward_raw(images, mask, texts, num_obj)
    q = tiny_model.num_queries // 2
    assert out["pred_obj_logits"].shape == (2, q, len(OBJECTS) + 1)
    assert out["pred_sub_logits"].shape == (2, q, len(OBJECTS) + 1)
    assert out["pred_verb_logits"].shape == (2, q, len(RELATIONS))
    assert out["pred_sub_boxes"].shape == out["pred_obj_boxes"].shape == (2, q, 4)
    assert out["text_embeddings_prefusion"].shape == (len(RELATIONS), 64)
    assert len(out["aux_outputs"]) == 2
    for d in [out, *out["aux_outputs"]]:
        for k in ("pred_obj_logits", "pred_verb_logits", "pred_sub_boxes", "pred_obj_boxes"):
            assert torch.isfinite(d[k]).all()
        assert (d["pred_sub_boxes"] > 0).all() and (d["pred_sub_boxes"] < 1).all()


def test_training_backward_reaches_parameters(tiny_model):
    tiny_model.train()
    losses = tiny_model([_inputs(64, 80, 0), _inputs(48, 64, 1)])
    assert {"loss_obj_ce", "loss_verb_ce", "loss_sub_bbox", "loss_obj_giou", "loss_obj_ce_0"} <= set(losses)
    total = sum(losses.values())
    assert torch.isfinite(total)
    total.backward()
    grads = {n: p.grad for n, p in tiny_model.named_parameters() if p.requires_grad}
    for prefix in ("backbone.res3.", "neck.", "text_encoder.model.encoder.layer.0.", "encoder.layers.0.",
                   "encoder.fusion_layers.0.attn.", "encoder.lang_layers.2.", "encoder.level_embed",
                   "decoder.entity_decoder.layers.2.", "decoder.relation_decoder.layers.0.", "decoder.tgt_embed",
                   "decoder.verb_tgt_embed", "decoder.refpoint_embed", "decoder.relation_query_fusion.",
                   "decoder.sub_bbox_embed.0.", "head.projection_text", "head.bias_pred_a"):
        hit = [n for n, g in grads.items() if n.startswith(prefix) and g is not None and g.abs().sum() > 0]
        assert hit, f"no gradient reaches {prefix}"
    # official behaviour: the relation decoder's box heads (3..5) refine detached references only
    assert all(grads[n] is None for n in grads if n.startswith("decoder.sub_bbox_embed.3."))
    assert not any(p.requires_grad for n, p in tiny_model.named_parameters() if n.startswith("backbone.stem."))
    assert not any(p.requires_grad for n, p in tiny_model.named_parameters() if n.startswith("backbone.res2."))


def test_inference_returns_contract_4(tiny_model):
    tiny_model.eval()
    with torch.no_grad():
        results = tiny_model([_inputs(64, 80, 0), _inputs(48, 64, 1)])
    q = tiny_model.num_queries // 2
    assert len(results) == 2
    inst = results[1]["instances"]
    assert inst.image_size == (96, 128)
    assert inst.pred_boxes.tensor.shape == (2 * q, 4)
    assert results[1]["pairs"]["relation_scores"].shape == (q, len(RELATIONS))
    assert float(inst.pred_boxes.tensor[:, 2].max()) <= 128 + 1e-3
    assert int(inst.pred_classes.max()) < len(OBJECTS)


def test_preprocess_pads_without_size_divisibility(tiny_model):
    a, b = _inputs(50, 70, 0), _inputs(41, 66, 1)
    images, mask = tiny_model.preprocess_image([a, b])
    assert images.shape == (2, 3, 50, 70)
    assert not mask[0].any() and mask[1, 41:].all() and mask[1, :, 66:].all() and not mask[1, :41, :66].any()
    assert (images[1, :, 41:] == 0).all()
    expected = (a["image"][:, 5, 7].float() - torch.tensor([123.675, 116.28, 103.53])) / torch.tensor(
        [58.395, 57.12, 57.375])
    torch.testing.assert_close(images[0, :, 5, 7], expected)


def test_each_decoder_layer_uses_its_own_language_state(tiny_model):
    images, mask = random_batch(n=1)
    texts, num_obj = label_texts()
    tiny_model.eval()
    resizer = tiny_model.encoder.resizer
    orig = resizer.forward
    with torch.no_grad():
        base = tiny_model.forward_raw(images, mask, texts, num_obj)

        def perturbed(x):
            y = orig(x).clone()
            y[0] = y[0] + torch.randn_like(y[0])  # language state 0 only
            return y

        resizer.forward = perturbed
        try:
            out = tiny_model.forward_raw(images, mask, texts, num_obj)
        finally:
            resizer.forward = orig
    assert not torch.allclose(out["aux_outputs"][0]["pred_obj_logits"], base["aux_outputs"][0]["pred_obj_logits"])
    torch.testing.assert_close(out["aux_outputs"][1]["pred_obj_logits"], base["aux_outputs"][1]["pred_obj_logits"])
    torch.testing.assert_close(out["pred_verb_logits"], base["pred_verb_logits"])


def test_relation_reference_is_mean_of_entity_boxes(tiny_model):
    images, mask = random_batch(n=1)
    texts, num_obj = label_texts()
    tiny_model.eval()
    seen = []
    with torch.no_grad():  # box heads start with a zero last layer: make the refinement visible
        for heads in (tiny_model.decoder.sub_bbox_embed, tiny_model.decoder.obj_bbox_embed):
            for h in heads:
                h.layers[-1].weight.normal_(0, 0.1)
    dec = tiny_model.decoder.relation_decoder
    orig = dec.run_layer

    def spy(lid, output, ref_boxes, *args):
        seen.append(ref_boxes.clone())
        return orig(lid, output, ref_boxes, *args)

    dec.run_layer = spy
    try:
        with torch.no_grad():
            out = tiny_model.forward_raw(images, mask, texts, num_obj)
    finally:
        dec.run_layer = orig
    assert len(seen) == 3
    torch.testing.assert_close(seen[0], 0.5 * (out["pred_sub_boxes"] + out["pred_obj_boxes"]))
    assert not torch.allclose(seen[1], seen[0])  # refined by the relation decoder's own box heads


@pytest.mark.parametrize("quirk", [False, True])
def test_text_mask_quirk_flag(tiny_text_dir, quirk):
    model = build_tiny_model(tiny_text_dir, text_mask_quirk=quirk)
    captured = {}
    orig = model.encoder.forward

    def spy(srcs, masks, pos, lang, lang_padding_mask=None):
        captured["mask"] = lang_padding_mask
        captured["lang"] = lang
        return orig(srcs, masks, pos, lang, lang_padding_mask)

    model.encoder.forward = spy
    images, mask = random_batch(n=1, h=32, w=32)
    texts, num_obj = label_texts()
    model.train()
    model.forward_raw(images, mask, texts, num_obj)
    if quirk:
        torch.testing.assert_close(captured["mask"], captured["lang"].sum(-1) <= 0)
    else:
        assert captured["mask"] is None
    model.eval()
    with torch.no_grad():
        model.forward_raw(images, mask, texts, num_obj)
    assert captured["mask"] is None  # never at evaluation


def test_fusion_padding_flag_changes_padded_batch_outputs(tiny_text_dir):
    images, mask = random_batch()
    images[1, :, :, 32:] = 0
    mask[1, :, 32:] = True  # the coarsest (1x2) level of image 1 gets a padded token
    texts, num_obj = label_texts()
    outs = []
    for flag in (False, True):
        model = build_tiny_model(tiny_text_dir, **{"encoder.mask_fusion_padding": flag}).eval()
        with torch.no_grad():
            outs.append(model.forward_raw(images, mask, texts, num_obj))
    # same weights (same seed): only the padded image changes
    torch.testing.assert_close(outs[0]["pred_verb_logits"][0], outs[1]["pred_verb_logits"][0])
    assert not torch.allclose(outs[0]["pred_verb_logits"][1], outs[1]["pred_verb_logits"][1], atol=1e-6)


def test_bad_inputs_raise_clear_errors(tiny_model):
    images, mask = random_batch(n=1, h=32, w=32)
    with pytest.raises(ValueError, match="num_object_labels"):
        tiny_model.forward_raw(images, mask, ["a", "no objects"], 1)
    with pytest.raises(ValueError, match="mask"):
        tiny_model.forward_raw(images, mask[:, :10], *label_texts())
    bad = _inputs(32, 32)
    bad["object_texts"] = ["person", "unicorn", "dog"]
    tiny_model.train()
    with pytest.raises(ValueError, match="unicorn"):
        tiny_model.prepare_targets([bad], OBJECTS, RELATIONS)


def test_targets_use_label_sequence_and_subject_quirk(tiny_text_dir):
    x = _inputs(32, 40)
    x["object_texts"] = ["person", "cup", "dog"]
    x["predicate_texts"] = ["hold", "drink with", "ride"]
    for faithful in (False, True):
        model = build_tiny_model(tiny_text_dir, faithful_hoi_subject_label=faithful)
        t = model.prepare_targets([x], ["dog", "person", "cup"], ["ride", "hold", "drink with"])[0]
        assert t["sub_labels"].tolist() == ([1, 1] if faithful else [1, 1])
        assert t["obj_labels"].tolist() == [2, 0]
        assert t["verb_labels"].tolist() == [[0.0, 1.0, 1.0], [1.0, 0.0, 0.0]]
    model = build_tiny_model(tiny_text_dir, faithful_hoi_subject_label=True)
    t = model.prepare_targets([x], ["person", "dog", "cup"], ["ride", "hold", "drink with"])[0]
    assert t["sub_labels"].tolist() == [1, 1]  # "person" is 0, the official quirk gives 1


def test_autocast_bf16_forward_is_finite(tiny_model):
    images, mask = random_batch(n=1, h=48, w=48)
    tiny_model.eval()
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        out = tiny_model.forward_raw(images, mask, *label_texts())
    for k in ("pred_obj_logits", "pred_verb_logits", "pred_sub_boxes"):
        assert torch.isfinite(out[k].float()).all()


def test_label_sequence_builder_object_is_used(tiny_text_dir):
    class Seq:  # the shape of rlipv2.data.label_sequence.LabelSequence
        object_labels = ["dog", "cup", "person", "bicycle", "cat"]
        relation_labels = ["walk", "hold", "drink with", "ride", "sit on", "feed"]

    model = build_tiny_model(tiny_text_dir, label_sequence_builder=lambda batch: Seq())
    assert model.training_label_sequence([_inputs(32, 32)]) == (Seq.object_labels, Seq.relation_labels)
    t = model.prepare_targets([_inputs(32, 32)], Seq.object_labels, Seq.relation_labels)[0]
    assert t["obj_labels"].tolist() == [1, 0] and t["sub_labels"].tolist() == [2, 2]
    assert t["verb_labels"].shape == (2, 6) and t["verb_labels"][0].tolist() == [0, 1, 1, 0, 0, 0]


@pytest.mark.slow
def test_loss_falls_when_overfitting_two_images(tiny_text_dir):
    model = build_tiny_model(tiny_text_dir).train()
    batch = [_inputs(48, 56, 0), _inputs(48, 56, 1)]
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3, weight_decay=1e-4)
    history = []
    for _ in range(15):
        losses = model(batch)
        total = sum(losses.values())
        opt.zero_grad()
        total.backward()
        opt.step()
        history.append(float(total))
    assert sum(history[-3:]) / 3 < 0.85 * sum(history[:3]) / 3, history
