"""Captions files in the accepted formats, the template captioner and BLIP generation (tiny random weights)."""
import json
import os

import pytest
import torch
from PIL import Image

from rlipv2.pseudo_labeling.captions import (
    BlipCaptioner,
    TemplateCaptioner,
    build_captioner,
    clean_captions,
    load_captions_json,
)
from rlipv2.pseudo_labeling.io import IssueLog


def _write(tmp_path, obj, name="caps.json"):
    p = tmp_path / name
    p.write_text(json.dumps(obj))
    return str(p)


def test_dict_format(tmp_path):
    caps = load_captions_json(_write(tmp_path, {"1": ["a man riding a horse", "a horse"], "2": "a cat"}))
    assert caps == {"1": ["a man riding a horse", "a horse"], "2": ["a cat"]}


def test_coco_captions_format(tmp_path):
    coco = {"images": [{"id": 5}], "annotations": [{"image_id": 5, "id": 1, "caption": "a dog"},
                                                   {"image_id": 5, "id": 2, "caption": "a dog on grass"}]}
    assert load_captions_json(_write(tmp_path, coco)) == {"5": ["a dog", "a dog on grass"]}


def test_record_list_format(tmp_path):
    recs = [{"image_id": 3, "captions": ["x", "y"]}, {"image_id": 3, "caption": "z"}, {"image_id": "a", "caption": ""}]
    assert load_captions_json(_write(tmp_path, recs)) == {"3": ["x", "y", "z"], "a": [""]}


def test_bad_captions_files_name_the_problem(tmp_path):
    with pytest.raises(ValueError, match="caption #0 of image 1 must be a string"):
        load_captions_json(_write(tmp_path, {"1": [3]}))
    with pytest.raises(ValueError, match="record #0 has no field 'image_id'"):
        load_captions_json(_write(tmp_path, [{"caption": "x"}]))
    with pytest.raises(FileNotFoundError, match="captions file not found"):
        load_captions_json(str(tmp_path / "none.json"))


def test_empty_captions_are_counted():
    log = IssueLog()
    assert clean_captions(9, [" a man ", "", "   "], log) == ["a man"]
    assert log.counts["empty_caption"] == 2 and "image 9" in log.examples["empty_caption"][0]


def test_template_captioner():
    c = build_captioner("TemplateCaptioner", relations={1: [["man", "riding", "horse"]]})
    assert isinstance(c, TemplateCaptioner) and not c.needs_images
    assert c.caption([None, None], [{"image_id": "1"}, {"image_id": 2}]) == [["a man riding a horse."], []]


def _tiny_blip(d):
    from transformers import (
        BertTokenizerFast,
        BlipConfig,
        BlipForConditionalGeneration,
        BlipImageProcessor,
        BlipProcessor,
    )

    words = "a man dog riding horse on the beach with cat sitting near picture of".split()
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[DEC]"] + words
    with open(os.path.join(d, "vocab.txt"), "w") as f:
        f.write("\n".join(vocab))
    tok = BertTokenizerFast(os.path.join(d, "vocab.txt"), bos_token="[DEC]")
    cfg = BlipConfig(
        text_config=dict(vocab_size=len(vocab), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                         num_attention_heads=2, max_position_embeddings=32, bos_token_id=tok.bos_token_id,
                         sep_token_id=tok.sep_token_id, pad_token_id=0, eos_token_id=tok.sep_token_id),
        vision_config=dict(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                           image_size=32, patch_size=16),
        projection_dim=16)
    torch.manual_seed(0)
    BlipForConditionalGeneration(cfg).save_pretrained(d)
    BlipProcessor(BlipImageProcessor(size={"height": 32, "width": 32}), tok).save_pretrained(d)
    return tok


def test_blip_captioner_sampling_settings(tmp_path):
    tok = _tiny_blip(str(tmp_path))
    c = BlipCaptioner(str(tmp_path), seed=0, batch_size=2)
    assert (c.num_captions, c.top_p, c.min_length, c.max_length) == (10, 0.9, 5, 20)
    seen = {}
    generate = c.model.generate

    def spy(**kwargs):
        seen.update(kwargs)
        seen["sequences"] = generate(**kwargs)
        return seen["sequences"]

    c.model.generate = spy
    images = [Image.new("RGB", (40, 30), (255, 0, 0)), Image.new("RGB", (50, 60), (0, 0, 255))]
    out = c.caption(images, [{}, {}])
    assert len(out) == 2 and all(len(o) == 10 for o in out)
    assert seen["do_sample"] is True and seen["top_p"] == 0.9 and seen["num_return_sequences"] == 10
    assert seen["repetition_penalty"] == 1.1
    prompt_ids = tok("a picture of", add_special_tokens=False)["input_ids"]
    assert seen["input_ids"][0, 1:1 + len(prompt_ids)].tolist() == prompt_ids  # BLIP's caption prompt
    seqs = seen["sequences"]
    assert bool((seqs[:, 1:1 + len(prompt_ids)] == torch.tensor(prompt_ids)).all())  # generation continues it
    decoded_rest = [tok.decode(s[1 + len(prompt_ids):], skip_special_tokens=True).strip() for s in seqs]
    assert out[0] + out[1] == decoded_rest  # the prompt is cut from the captions
    assert seqs.shape[0] == 20 and seqs.shape[1] <= 20  # 10 per image, at most 20 tokens
    lengths = (seqs != tok.pad_token_id).sum(1)
    assert bool((lengths >= 5).all())  # at least 5 tokens each
    assert len(set(out[0])) > 1  # sampling, not beam search: the 10 captions differ
    assert BlipCaptioner(str(tmp_path), seed=0).caption(images, [{}, {}]) == out  # seeded


def test_blip_captioner_needs_local_weights(tmp_path):
    with pytest.raises(FileNotFoundError, match="BLIP weights directory not found"):
        BlipCaptioner(str(tmp_path / "missing"))
