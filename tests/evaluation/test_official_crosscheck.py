"""Cross-check against the official RLIPv2 evaluators themselves (not part of this repository).

Runs only when RLIPV2_OFFICIAL_DIR points to a checkout of github.com/JacobYuan7/RLIPv2 (its
``datasets/hico_eval.py`` and ``datasets/oi_sgg_eval.py`` are imported from there, unmodified, with a
tiny tensor stand-in); skipped otherwise.
"""
import contextlib
import importlib.util
import io
import os
import types
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from rlipv2.evaluation.hico import score_hico
from rlipv2.evaluation.hico_core import CandidateSelector, HOIGroundTruth
from rlipv2.evaluation.oi import evaluate_oi_rlipv2

OFFICIAL = os.environ.get("RLIPV2_OFFICIAL_DIR")
pytestmark = pytest.mark.skipif(not OFFICIAL or not Path(OFFICIAL, "datasets", "hico_eval.py").exists(),
                                reason="set RLIPV2_OFFICIAL_DIR to an RLIPv2 checkout")


def _load(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


class _T:
    """Stand-in for a tensor: ``.to('cpu').numpy()``."""

    def __init__(self, a):
        self.a = a

    def to(self, device):
        return self

    def numpy(self):
        return self.a


def _case(seed):
    tp = _load("tp", Path(__file__).with_name("test_hico_protocols.py"))
    rng = np.random.default_rng(seed)
    cm, gts, preds = tp._random_case(rng, n_img=30)
    for p in preds:
        n = p["verb_scores"].size
        p["verb_scores"] = (rng.permutation(n).reshape(p["verb_scores"].shape) / n + 0.01).astype(np.float32)
    counts = Counter()
    for g in gts:
        for s, o, v in g["hois"]:
            counts[(int(g["labels"][s]), int(g["labels"][o]), int(v))] += int(rng.integers(1, 15))
    return cm, gts, preds, counts


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("nms", [False, True])
def test_hico_qpic_equals_official(seed, nms):
    import matplotlib

    matplotlib.use("Agg")
    off = _load("hico_eval_official", Path(OFFICIAL, "datasets", "hico_eval.py"))
    cm, gts, preds, counts = _case(seed)
    rare = [t for t, c in counts.items() if c < 10]
    non = [t for t, c in counts.items() if c >= 10]
    args = types.SimpleNamespace(use_nms_filter=nms, thres_nms=0.7, nms_alpha=1.0, nms_beta=0.5)
    opreds = [{k: _T(np.asarray(v)) for k, v in p.items()} for p in preds]
    ogts = [{"filename": g["file_name"], "boxes": _T(g["boxes"]), "labels": _T(np.asarray(g["labels"])),
             "hois": _T(np.asarray(g["hois"]).reshape(-1, 3)), "id": _T(np.array(i))} for i, g in enumerate(gts)]
    with contextlib.redirect_stdout(io.StringIO()):
        o = off.HICOEvaluator(opreds, ogts, 0, rare, non, cm, args=args).evaluate()
    sel = CandidateSelector(cm, 100, "qpic")
    for i, p in enumerate(preds):
        sel.add(i, p["boxes"], p["labels"], p["verb_scores"], p["sub_ids"], p["obj_ids"])
    f = score_hico(HOIGroundTruth.from_images(gts), sel.finish(), cm, train_counts=counts, nms=nms).summary
    assert (o["mAP"], o["mAP rare"], o["mAP non-rare"], o["mean max recall"]) == \
        (f["mAP"], f["mAP_rare"], f["mAP_non_rare"], f["mean_max_recall"])


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("nms", [False, True])
def test_oi_rlipv2_equals_official(seed, nms):
    import matplotlib

    matplotlib.use("Agg")
    off = _load("oi_sgg_eval_official", Path(OFFICIAL, "datasets", "oi_sgg_eval.py"))
    _, gts, preds, _ = _case(seed)
    keep = [i for i, g in enumerate(gts) if len(g["hois"]) or not len(g["boxes"])]  # the official crashes else
    gts, preds = [gts[i] for i in keep], [preds[i] for i in keep]
    args = types.SimpleNamespace(use_nms_filter=nms, thres_nms=0.7, nms_alpha=1.0, nms_beta=0.5, thres_nms_phr=0.5)
    for k in (10, 5):
        opreds = [{"boxes": _T(p["boxes"]), "labels": _T(np.asarray(p["labels"])),
                   "verb_scores": _T(p["verb_scores"].copy()), "sub_ids": _T(p["sub_ids"]),
                   "obj_ids": _T(p["obj_ids"])} for p in preds]
        ogts = [{"filename": g["file_name"], "boxes": _T(g["boxes"]), "labels": _T(np.asarray(g["labels"])),
                 "rels": _T(np.asarray(g["hois"]).reshape(-1, 3)), "id": _T(np.array(0))} for g in gts]
        with contextlib.redirect_stdout(io.StringIO()):
            o = off.OISGGEvaluator(opreds, ogts, None, topK=k, args=args).evaluate()
        raw = [(i, p["boxes"], p["labels"], p["verb_scores"], p["sub_ids"], p["obj_ids"], "")
               for i, p in enumerate(preds)]
        f = evaluate_oi_rlipv2(HOIGroundTruth.from_images(gts), raw, 4, 3, k, nms)
        for kind, tag in (("rel", "RelD"), ("phr", "PhrD")):
            assert o[f"mAP@{k} ({tag})"] == f[f"mAP_{kind}@{k}"]
            assert o[f"wmAP@{k} ({tag})"] == f[f"wmAP_{kind}@{k}"]
            assert o[f"max recall@{k} ({tag})"] == f[f"R_{kind}@{k}"]
