"""``VCOCOEvaluator``: Detectron2 DatasetEvaluator scoring with the official V-COCO protocol (vsrl_eval).

Each query of the model becomes one vsrl_eval detection, as RLIPv2's ``generate_vcoco_official.py``
builds them: person box = subject box; for an agent-only verb ``<action>_agent`` = its score; for a
role verb ``<action>_<role>`` = [object box, score] and ``<action>_agent`` = that score (the max over
both roles for hit / eat / cut); an object predicted as the "missing object" class gets a NaN role box.
There is no top-k cut. The ground truth comes from the official files (``vcoco_test.json``,
``instances_vcoco_all_2014.json``, ``vcoco_test.ids``), given as arguments or as the metadata fields
``vcoco_test_json``, ``vcoco_coco_json`` and ``vcoco_ids_file``. ``evaluate()`` writes the detections
as vsrl_eval's pickle (``vcoco_detections.pkl``, for the official script) and as arrays
(``vcoco_detections.npz``, for ``python -m rlipv2.evaluation.vcoco``), and returns
``{"vcoco": {"agent_mAP", "role_mAP_s1", "role_mAP_s2", "role_mAP_s1_24", "role_mAP_s2_24"}}``.
"""
from __future__ import annotations

import json
import logging
import os
import pickle
import tempfile
from pathlib import Path

import numpy as np
from detectron2.evaluation import DatasetEvaluator

from .hico_io import METADATA_DIR, write_json_atomic, write_npz_atomic
from .units import is_count
from .vcoco_core import VCOCODetections, evaluate_vcoco, load_vcoco_gt, write_vcoco_reports

logger = logging.getLogger(__name__)


def _percent_text(metrics: dict) -> str:
    """Metrics for the log: percent with two decimals (counts as they are); returned dicts keep fractions."""
    return ", ".join(f"{k} {v:.0f}" if is_count(k) else f"{k} {100 * float(v):.2f}%" for k, v in metrics.items())

__all__ = ["VCOCOEvaluator"]


class VCOCOEvaluator(DatasetEvaluator):
    def __init__(self, dataset_name: str, output_dir: str | None = None, *, vcoco_test_json=None, coco_json=None,
                 ids_file=None, missing_object_label: int | None = None, distributed: bool = True):
        from detectron2.data import MetadataCatalog

        self.dataset_name = dataset_name
        self.output_dir = output_dir
        self.distributed = distributed
        meta = MetadataCatalog.get(dataset_name)
        self.files = (vcoco_test_json or getattr(meta, "vcoco_test_json", None),
                      coco_json or getattr(meta, "vcoco_coco_json", None),
                      ids_file or getattr(meta, "vcoco_ids_file", None))
        if None in self.files:
            raise ValueError(f"{dataset_name}: VCOCOEvaluator needs vcoco_test_json, coco_json and ids_file "
                             "(arguments or metadata vcoco_test_json / vcoco_coco_json / vcoco_ids_file)")
        things = list(getattr(meta, "thing_classes", []) or [])
        self.missing = missing_object_label if missing_object_label is not None else (
            len(things) - 1 if things and "missing" in things[-1] else -1)
        info = json.loads((METADATA_DIR / "vcoco_actions.json").read_text())
        self.verbs = [(v["action"], v["role"]) for v in info["verb_classes_29"]]
        self.gt = load_vcoco_gt(*self.files)
        self.action_index = {a: i for i, a in enumerate(self.gt.actions)}
        self.pair_index = {(self.gt.actions[a], self.gt.roles[a][r + 1]): k for k, (a, r) in enumerate(self.gt.pairs)}
        self.reset()

    def reset(self):
        self._dets = []

    def process(self, inputs, outputs):
        n_act, n_pair = len(self.gt.actions), len(self.gt.pairs)
        for inp, out in zip(inputs, outputs):
            inst = out["instances"].to("cpu")
            boxes = inst.pred_boxes.tensor.numpy().astype(np.float32)
            labels = inst.pred_classes.numpy()
            pairs = out["pairs"]
            sub, obj = np.asarray(pairs["subject"].cpu()), np.asarray(pairs["object"].cpu())
            rs = pairs["relation_scores"].detach().cpu().numpy().astype(np.float32)
            if rs.ndim != 2 or rs.shape[1] != len(self.verbs):
                raise ValueError(f"model output for image {inp.get('image_id')}: relation_scores must be "
                                 f"(Q, {len(self.verbs)}), got {rs.shape}")
            if not np.isfinite(rs).all():
                raise ValueError(f"model output for image {inp.get('image_id')}: relation_scores contain NaN or inf")
            q = len(sub)
            agent = np.full((q, n_act), -np.inf, np.float32)
            roles = np.zeros((q, n_pair, 5), np.float32)
            obj_boxes = boxes[obj].copy()
            obj_boxes[labels[obj] == self.missing] = np.nan
            for v, (action, role) in enumerate(self.verbs):
                a = self.action_index[action]
                agent[:, a] = np.maximum(agent[:, a], rs[:, v])
                if role != "agent":
                    k = self.pair_index[(action, role)]
                    roles[:, k, :4] = obj_boxes
                    roles[:, k, 4] = rs[:, v]
            self._dets.append((int(inp["image_id"]), boxes[sub], agent, roles))

    def evaluate(self):
        dets = self._dets
        if self.distributed:
            from detectron2.utils import comm

            comm.synchronize()
            parts = comm.gather(dets, dst=0)
            if not comm.is_main_process():
                return {}
            dets = [d for part in parts for d in part]
        seen, keep = set(), []
        for d in dets:  # drop the sampler's padding repeats
            if d[0] not in seen:
                seen.add(d[0])
                keep.append(d)
        if not keep:
            return {}
        det = VCOCODetections(np.concatenate([np.full(len(d[1]), d[0], np.int64) for d in keep]),
                              np.concatenate([d[1] for d in keep]), np.concatenate([d[2] for d in keep]),
                              np.concatenate([d[3] for d in keep]))
        res = evaluate_vcoco(self.gt, det)
        if self.output_dir:
            out = Path(self.output_dir)
            write_npz_atomic(out / "vcoco_detections.npz", [("image_ids", det.image_ids),
                                                            ("person_boxes", det.person_boxes),
                                                            ("agent_scores", det.agent_scores),
                                                            ("role_boxes", det.role_boxes)])
            self._write_pickle(out / "vcoco_detections.pkl", det)
            write_json_atomic(out / "vcoco_results.json", res)
            write_vcoco_reports(out, res)
        logger.info("V-COCO (vsrl_eval protocol), percent: %s", _percent_text(res["vcoco"]))
        return {"vcoco": {k: float(v) for k, v in res["vcoco"].items()}}

    def _write_pickle(self, path, det: VCOCODetections):
        """vsrl_eval's input: one dict per detection with every <action>_agent and <action>_<role> key."""
        items = []
        for i in range(len(det.image_ids)):
            d = {"image_id": int(det.image_ids[i]), "person_box": det.person_boxes[i].tolist()}
            for a, name in enumerate(self.gt.actions):
                d[f"{name}_agent"] = float(det.agent_scores[i, a])
            for k, (a, r) in enumerate(self.gt.pairs):
                d[f"{self.gt.actions[a]}_{self.gt.roles[a][r + 1]}"] = det.role_boxes[i, k].tolist()
            items.append(d)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            pickle.dump(items, f, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, path)
