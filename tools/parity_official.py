#!/usr/bin/env python
"""Compare this implementation with the official RLIPv2-ParSeDA code, on CPU, with random weights.

    python tools/parity_official.py --official /path/to/RLIPv2 [--backbone r50|swin_t] [--gate VXAc]
        [--num-queries 8] [--size 160x224] [--train-mode] [--variant parseda|parsed|tagger] [--full-slots]

``--variant tagger`` compares the R-Tagger (official ``RLIP_ParSeD`` with ``--verb_tagger``, given pairs as
``targets``) with ``RTagger.forward_tagger``; ``--train-mode`` then runs without box/label noise, and
``--full-slots`` fills every pair slot with a repeated subject so that the official duplicate-entity
attention mask is active (ours: ``official_attn_mask=True``).

The official repository (github.com/JacobYuan7/RLIPv2, a checkout given by ``--official``) is imported,
not copied. To run it here without its CUDA op and its pinned packages, this script:
- routes the official ``MSDeformAttnFunction`` to the official pure-PyTorch ``ms_deform_attn_core_pytorch``;
- provides ``timm.models.layers`` (DropPath, to_2tuple, trunc_normal_) when timm is missing;
- gives the official ``RobertaLayer`` the ``get_extended_attention_mask`` of transformers 4.5.1
  ((1 - mask) * -10000) and the helpers newer transformers moved;
- makes the fusion block's language width 768 for a local text-encoder directory (the official code
  only recognises the names "roberta-base"/"bert-base-uncased").
It builds the official model (random weights perturbed from their initialisation, random FrozenBN
statistics), a small random RoBERTa (768 wide, 2 layers, locally trained tokenizer), runs the official
two-pass evaluation forward on a padded batch of two images, converts the official state dict with
``rlipv2.modeling.checkpoint_conversion`` and runs ``RLIPv2.forward_raw`` on the same inputs. It prints
the max abs difference of every output of every decoder layer and exits 1 above ``--tol`` (1e-4).
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import types

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OBJECTS = ["person", "bicycle", "cup", "dog"]
RELATIONS = ["hold", "ride", "sit on", "walk", "drink with"]


def _install_shims():
    import torch
    import transformers.modeling_utils as mu  # before the timm stand-in: transformers probes timm
    import transformers.pytorch_utils as pu

    def unavailable(*a, **k):  # head pruning is never used by RLIPv2
        raise NotImplementedError("removed from transformers")

    for name in ("find_pruneable_heads_and_indices", "prune_linear_layer", "apply_chunking_to_forward"):
        if not hasattr(mu, name):
            setattr(mu, name, getattr(pu, name, unavailable))
    try:
        import timm.models.layers  # noqa: F401
    except ImportError:
        from rlipv2.modeling.backbone.swin import DropPath

        layers = types.ModuleType("timm.models.layers")
        layers.DropPath = DropPath
        layers.to_2tuple = lambda x: tuple(x) if isinstance(x, (tuple, list)) else (x, x)
        layers.trunc_normal_ = torch.nn.init.trunc_normal_
        sys.modules.update({"timm": types.ModuleType("timm"), "timm.models": types.ModuleType("timm.models"),
                            "timm.models.layers": layers})
    sys.modules.setdefault("MultiScaleDeformableAttention", types.ModuleType("MultiScaleDeformableAttention"))

    import models.dab_deformable.ops.modules.ms_deform_attn as dab_mod
    import models.modeling_roberta as mr
    import models.ops.functions.ms_deform_attn_func as func
    import models.ops.modules.ms_deform_attn as ddetr_mod

    class PyTorchMSDeformAttnFunction:
        @staticmethod
        def apply(value, shapes, level_start_index, locations, weights, im2col_step):
            return func.ms_deform_attn_core_pytorch(value, shapes, locations, weights)

    ddetr_mod.MSDeformAttnFunction = PyTorchMSDeformAttnFunction
    dab_mod.MSDeformAttnFunction = PyTorchMSDeformAttnFunction

    def get_extended_attention_mask(self, attention_mask, input_shape, device=None):
        ext = attention_mask[:, None, None, :].to(dtype=next(self.parameters()).dtype)
        return (1.0 - ext) * -10000.0

    mr.RobertaLayer.get_extended_attention_mask = get_extended_attention_mask


def _zero_dropout(model) -> None:
    """Set every dropout probability to 0 (nn.Dropout, attention-probability dropouts, drop path)."""
    import torch

    for m in model.modules():
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.0
        if isinstance(getattr(m, "dropout", None), float):
            m.dropout = 0.0
        if hasattr(m, "drop_prob"):
            m.drop_prob = 0.0
        if isinstance(m, torch.nn.MultiheadAttention):
            m.dropout = 0.0


def main() -> int:
    from rlipv2.utils.cli import nonnegative_float, nonnegative_int, positive_int

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--official", required=True, help="checkout of github.com/JacobYuan7/RLIPv2")
    p.add_argument("--backbone", choices=["r50", "swin_t"], default="r50")
    p.add_argument("--variant", choices=["parseda", "parsed", "tagger"], default="parseda",
                   help="parseda: RLIP_ParSeDA (DAB decoders); parsed: RLIP_ParSeD (plain Deformable-DETR decoders); "
                        "tagger: the R-Tagger (RLIP_ParSeD --verb_tagger, queries from given pairs; use --gate GLIP; "
                        "--train-mode runs without box/label noise)")
    p.add_argument("--gate", default="VXAc")
    p.add_argument("--num-queries", type=positive_int, default=8)
    p.add_argument("--size", default="160x224", help="padded batch size HxW; image 2 is padded")
    p.add_argument("--tol", type=nonnegative_float, default=1e-4)
    p.add_argument("--seed", type=nonnegative_int, default=1)
    p.add_argument("--train-mode", action="store_true",
                   help="compare the training-mode forward (dropout set to 0; the official code encodes the labels "
                        "itself and applies its sum<=0 text mask, reproduced with text_mask_quirk=True)")
    p.add_argument("--full-slots", action="store_true",
                   help="tagger: fill every pair slot, with repeated subjects, so that the official training-mode "
                        "duplicate-entity attention mask is active (compared with official_attn_mask=True)")
    args = p.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    sys.path.insert(0, os.path.abspath(args.official))

    import torch
    _install_shims()
    import models.fuse_helper as fh
    from detectron2.config import LazyConfig, instantiate
    from models.dab_deformable.deformable_transformer import RLIP_ParSeDABDeformableTransformer_v2
    from models.hoi import RLIP_ParSeDA
    from transformers import RobertaConfig, RobertaModel
    from util.misc import NestedTensor

    from rlipv2.modeling.checkpoint_conversion import convert_official_state_dict
    from rlipv2.utils.testing import build_local_tokenizer

    texts = OBJECTS + ["no objects"] + RELATIONS
    text_dir = os.path.join(tempfile.mkdtemp(), "tiny_roberta")  # "roberta" in the name: official tokenizer path
    tok = build_local_tokenizer(texts)
    tok.save_pretrained(text_dir)
    torch.manual_seed(0)
    RobertaModel(RobertaConfig(vocab_size=len(tok), hidden_size=768, num_hidden_layers=2, num_attention_heads=12,
                               intermediate_size=3072, max_position_embeddings=130, pad_token_id=tok.pad_token_id,
                               bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                               type_vocab_size=1)).save_pretrained(text_dir)
    orig_init_configs = fh.RLIPv2_VLFuse.init_configs

    def init_configs(self, a):
        orig_init_configs(self, a)
        self.lang_dim = 768

    fh.RLIPv2_VLFuse.init_configs = init_configs

    nq = args.num_queries
    tagger = args.variant == "tagger"
    off_args = argparse.Namespace(
        fusion_type="GLIP_attn", fusion_interval=2, fusion_last_vis=True, lang_aux_loss=True,
        gating_mechanism=args.gate, verb_query_tgt_type="vanilla" if tagger else "vanilla_MBF", stable_softmax_2d=False,
        clamp_min_for_underflow=False, clamp_max_for_overflow=False, separate_bidirectional=False,
        do_lang_proj_outside_checkpoint=False, use_checkpoint_fusion=False, num_feature_levels=4,
        text_encoder_type=text_dir, hidden_dim=256, position_embedding="sine", lr_backbone=1e-5, masks=False,
        backbone="resnet50" if args.backbone == "r50" else "swin_tiny", dilation=False, load_backbone="none",
        num_queries=nq, drop_path_rate=0.2, use_checkpoint=False, pretrained_swin="", verb_tagger=tagger,
        label_noise_scale=0.0 if tagger else 0.2, box_noise_scale=0.0 if tagger else 0.4)
    if args.backbone == "r50":
        from models.DDETR_backbone import build_backbone
    else:
        from models.swin.backbone import build_backbone
    torch.manual_seed(args.seed)
    backbone = build_backbone(off_args)
    common = dict(d_model=256, nhead=8, num_encoder_layers=6, num_decoder_layers=3, activation="relu",
                  return_intermediate_dec=True, num_feature_levels=4, dec_n_points=4, enc_n_points=4, two_stage=False,
                  two_stage_num_proposals=nq, text_encoder_type=text_dir, args=off_args)
    if args.variant == "parseda":
        transformer = RLIP_ParSeDABDeformableTransformer_v2(dim_feedforward=2048, dropout=0.0, use_dab=True, **common)
        official = RLIP_ParSeDA(backbone, transformer, num_queries=nq, num_feature_levels=4, aux_loss=True,
                                with_box_refine=True, two_stage=False, use_dab=True, num_patterns=0,
                                random_refpoints_xy=False, subject_class=True, pseudo_verb=False, args=off_args)
    else:
        from models.hoi import RLIP_ParSeD
        from models.ParSetransformer import RLIP_ParSeDTransformer_v2

        transformer = RLIP_ParSeDTransformer_v2(dim_feedforward=1024, dropout=0.1, **common)
        official = RLIP_ParSeD(backbone, transformer, num_queries=nq, num_feature_levels=4, aux_loss=True,
                               with_box_refine=True, two_stage=False, subject_class=True, verb_curing=False,
                               masked_entity_modeling=False, pseudo_verb=False, matcher=None, args=off_args)
    official.eval()
    g = torch.Generator().manual_seed(args.seed)
    with torch.no_grad():
        for _, prm in official.named_parameters():
            prm.add_(0.05 * torch.randn(prm.shape, generator=g))
        # shift the pooler bias so that the training-mode "sum <= 0" text mask hits about half of the labels
        enc, tokens = official.transformer.text_encoder, official.transformer.tokenizer(
            texts, padding="longest", return_tensors="pt")
        lo, hi = -3.0, 3.0
        for _ in range(30):
            mid = (lo + hi) / 2
            enc.pooler.dense.bias.add_(mid)
            median = torch.quantile(enc(**tokens).pooler_output.sum(-1), 0.5)  # between two labels
            enc.pooler.dense.bias.sub_(mid)
            lo, hi = (mid, hi) if median < 0 else (lo, mid)
        enc.pooler.dense.bias.add_(hi)
        for n, b in official.named_buffers():
            if n.endswith("running_var"):
                b.uniform_(0.5, 1.5, generator=g)
            elif n.endswith("running_mean"):
                b.normal_(0, 0.1, generator=g)

    h, w = (int(s) for s in args.size.split("x"))
    images = torch.randn(2, 3, h, w, generator=g)
    mask = torch.zeros(2, h, w, dtype=torch.bool)
    images[1, :, :, int(w * 0.45):] = 0
    mask[1, :, int(w * 0.45):] = True
    images[1, :, int(h * 0.8):] = 0
    mask[1, int(h * 0.8):] = True
    if args.train_mode:
        official.train()
        _zero_dropout(official)
        tokenizer = official.transformer.tokenizer
        if not hasattr(type(tokenizer), "batch_encode_plus"):  # removed in transformers 5: same as __call__
            object.__setattr__(tokenizer, "batch_encode_plus", lambda batch, **kw: tokenizer(batch, **kw))
    with torch.no_grad():
        if args.train_mode:  # engine.py training: label texts, encoded inside the model
            text = [(OBJECTS + ["no objects"], RELATIONS)]
        else:  # engine.py evaluate_hoi_with_text: pre-encoded labels, all-False mask
            tokens = official.transformer.tokenizer(texts, padding="longest", return_tensors="pt")
            pooled = official.transformer.text_encoder(**tokens).pooler_output
            text = (torch.zeros(len(texts), 2, dtype=torch.bool), pooled.unsqueeze(1).repeat(1, 2, 1),
                    torch.tensor([[len(OBJECTS) + 1, len(RELATIONS)]]))
        samples = NestedTensor(images, mask)
        extra = {}
        if tagger:  # given pairs: 3 in image 1, 2 in image 2 (of nq/2 slots); normalised cxcywh boxes
            pairs = []
            counts = (nq // 2, nq // 2) if args.full_slots else (min(3, nq // 2), min(2, nq // 2))
            for p in counts:
                cxcy, wh = 0.3 + 0.4 * torch.rand(2, p, 2, generator=g), 0.1 + 0.3 * torch.rand(2, p, 2, generator=g)
                pair = {"sub_boxes": torch.cat([cxcy[0], wh[0]], -1), "obj_boxes": torch.cat([cxcy[1], wh[1]], -1),
                        "sub_labels": torch.randint(0, len(OBJECTS), (p,), generator=g),
                        "obj_labels": torch.randint(0, len(OBJECTS), (p,), generator=g)}
                if args.full_slots:  # the same subject (label and box) in every pair: duplicates to mask
                    pair["sub_boxes"][:] = pair["sub_boxes"][0]
                    pair["sub_labels"][:] = pair["sub_labels"][0]
                pairs.append(pair)
            extra["targets"] = pairs
        cache = official(samples, encode_and_save=True, text=text, **extra)
        ref = official(samples, encode_and_save=False, memory_cache=cache, text=text, **extra)

    name = "rlipv2_parseda_r50.py" if args.backbone == "r50" else "rlipv2_parseda_swin_t.py"
    cfg = LazyConfig.load(os.path.join(REPO, "configs", "common", "models", name))
    if args.variant == "parsed":
        cfg.model.decoder = LazyConfig.load(os.path.join(REPO, "configs", "common", "models",
                                                         "rlipv2_parsed_r50.py")).model.decoder
    if tagger:
        tagger_model = LazyConfig.load(os.path.join(REPO, "configs", "common", "models", "rtagger_r50.py")).model
        tagger_model.backbone, tagger_model.neck = cfg.model.backbone, cfg.model.neck
        tagger_model.position_embedding = cfg.model.position_embedding
        tagger_model.queries.box_noise = tagger_model.queries.label_noise = 0.0
        tagger_model.queries.official_attn_mask = args.full_slots
        cfg.model = tagger_model
    cfg.model.text_encoder.name_or_path = text_dir
    cfg.model.decoder.num_queries = nq
    cfg.model.encoder.gating_mechanism = args.gate
    cfg.model.text_mask_quirk = args.train_mode
    ours = instantiate(cfg.model).eval()
    converted, unmapped, _ = convert_official_state_dict(official.state_dict(), args.variant)
    result = ours.load_state_dict(converted, strict=False)
    print(f"unmapped official keys: {unmapped}; missing: {result.missing_keys}; unexpected: {result.unexpected_keys}")
    if args.train_mode:
        ours.train()
        _zero_dropout(ours)
    with torch.no_grad():
        if tagger:
            out = ours.forward_tagger(images, mask, texts, len(OBJECTS), pairs)
        else:
            out = ours.forward_raw(images, mask, texts, len(OBJECTS))
        if args.train_mode:
            masked = int((ours.text_encoder(texts).sum(-1) <= 0).sum())
            print(f"training-mode text mask: {masked} of {len(texts)} labels masked")
    worst = 0.0
    for lvl, (a, b) in enumerate(zip([*ref["aux_outputs"], ref], [*out["aux_outputs"], out])):
        for k in ("pred_sub_logits", "pred_obj_logits", "pred_verb_logits", "pred_sub_boxes", "pred_obj_boxes"):
            d = float((a[k] - b[k]).abs().max())
            worst = max(worst, d)
            print(f"decoder layer {lvl} {k:17s} max|diff| {d:.2e}  (max|value| {float(a[k].abs().max()):.2e})")
    ok = worst <= args.tol and not unmapped and not result.missing_keys and not result.unexpected_keys
    print(f"worst max|diff| {worst:.3e} (tolerance {args.tol:g}): {'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
