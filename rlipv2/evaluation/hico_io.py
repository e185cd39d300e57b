"""Reading and writing the files of the HICO-DET evaluation: community JSONs, correct-mat, predictions.

Formats:
- ground truth / training set: the community ``test_hico.json`` / ``trainval_hico.json`` (QPIC / PPDM):
  a list of {"file_name", "annotations": [{"bbox": [x1, y1, x2, y2], "category_id"}],
  "hoi_annotation": [{"subject_id", "object_id", "category_id"}]} with dataset ids (HICO-DET: COCO-91
  object ids, verbs 1..117).
- triplet predictions (JSON): a list of {"file_name", "predictions": [{"bbox", "category_id"}],
  "hoi_prediction": [{"subject_id", "object_id", "category_id", "score"}]} with the same ids as the GT.
- raw predictions (.npz): ``file_names`` and, for image i, ``boxes_{i}`` (2Q, 4) xyxy (subjects then
  objects), ``labels_{i}`` (2Q,) dataset object ids, ``verb_scores_{i}`` (Q, V) in contiguous verb order,
  ``sub_ids_{i}``, ``obj_ids_{i}`` (Q,).
"""
from __future__ import annotations

import ast
import json
import logging
import os
import tempfile
import zipfile
from collections import Counter
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)

METADATA_DIR = Path(__file__).resolve().parent.parent / "data" / "metadata"

__all__ = [
    "IdMaps",
    "load_correct_mat",
    "load_json",
    "hico_coco80_ids",
    "gt_images_from_json",
    "train_counts_from_json",
    "NpzReader",
    "write_npz_atomic",
    "write_json_atomic",
    "hico_zero_shot_pairs",
]


def load_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON ({e})") from None


def load_correct_mat(path) -> np.ndarray:
    cm = np.load(path, allow_pickle=False)
    if cm.ndim != 2:
        raise ValueError(f"{path}: correct_mat must be 2-D (num_verbs, num_objects), got shape {cm.shape}")
    return cm


def hico_coco80_ids() -> list:
    """The 80 COCO-91 ids of the HICO-DET objects, in contiguous label order (hico_object_names.txt)."""
    return list(load_json(METADATA_DIR / "hico_object_names.txt").values())


class IdMaps:
    """Dataset ids <-> contiguous ids for objects (arbitrary ids) and verbs (an offset)."""

    def __init__(self, object_ids, verb_offset: int, num_verbs: int):
        self.object_ids = np.asarray(object_ids, np.int64)  # contiguous -> dataset id
        self.obj_to_contig = {int(d): i for i, d in enumerate(self.object_ids)}
        self.verb_offset = int(verb_offset)
        self.num_verbs = int(num_verbs)
        lut_size = int(self.object_ids.max()) + 1 if len(self.object_ids) else 1
        self._lut = np.full(lut_size, -1, np.int64)
        self._lut[self.object_ids] = np.arange(len(self.object_ids))

    @classmethod
    def from_spec(cls, correct_mat: np.ndarray, object_ids: str = "auto", verb_offset: str = "auto") -> IdMaps:
        """``object_ids``: auto | coco80 | identity | a JSON file with the list of dataset ids.

        ``auto`` = coco80 with verb offset 1 when correct_mat has HICO-DET's shape (117, 80), otherwise
        identity (0-based contiguous ids) with verb offset 0.
        """
        nv, no = correct_mat.shape
        hico = (nv, no) == (117, 80)
        if object_ids == "auto":
            object_ids = "coco80" if hico else "identity"
        if object_ids == "coco80":
            ids = hico_coco80_ids()
            if no != 80:
                raise ValueError(f"--object-ids coco80 needs 80 object columns in correct_mat, got {no}")
        elif object_ids == "identity":
            ids = list(range(no))
        else:
            ids = load_json(object_ids)
            if len(ids) != no:
                raise ValueError(f"{object_ids}: {len(ids)} object ids but correct_mat has {no} object columns")
        off = (1 if hico else 0) if verb_offset == "auto" else int(verb_offset)
        return cls(ids, off, nv)

    def objects(self, ids, where: str) -> np.ndarray:
        ids = np.asarray(ids, np.int64).reshape(-1)
        if ids.size == 0:
            return ids
        bad = (ids < 0) | (ids >= len(self._lut))
        out = np.where(bad, -1, self._lut[np.clip(ids, 0, len(self._lut) - 1)])
        if (out < 0).any():
            raise ValueError(f"{where}: unknown object category_id {int(ids[np.argmax(out < 0)])} "
                             f"(known: {self.object_ids.tolist()[:10]}...; see --object-ids)")
        return out

    def verbs(self, ids, where: str) -> np.ndarray:
        v = np.asarray(ids, np.int64).reshape(-1) - self.verb_offset
        if v.size and (v.min() < 0 or v.max() >= self.num_verbs):
            bad = int(np.asarray(ids).reshape(-1)[np.argmax((v < 0) | (v >= self.num_verbs))])
            raise ValueError(f"{where}: verb category_id {bad} out of range (offset {self.verb_offset}, "
                             f"{self.num_verbs} verbs; see --verb-offset)")
        return v


def _image_record(rec, path, i):
    if not isinstance(rec, dict) or "file_name" not in rec:
        raise ValueError(f"{path}: record {i} has no 'file_name'")
    return rec["file_name"]


def gt_images_from_json(path, ids: IdMaps) -> list:
    """Per-image GT dicts (contiguous ids) from a community test_hico.json."""
    data = load_json(path)
    if not isinstance(data, list):
        raise ValueError(f"{path}: expected a list of image records")
    out = []
    for i, rec in enumerate(data):
        name = _image_record(rec, path, i)
        where = f"{path} record {i} ({name})"
        anns = rec.get("annotations", [])
        try:
            boxes = np.array([a["bbox"] for a in anns], np.float64).reshape(-1, 4)
            labels = ids.objects([a["category_id"] for a in anns], where)
            hois = rec.get("hoi_annotation", [])
            h = np.array([[x["subject_id"], x["object_id"], x["category_id"]] for x in hois], np.int64).reshape(-1, 3)
        except (KeyError, TypeError, ValueError) as e:
            if isinstance(e, ValueError) and "category_id" in str(e):
                raise
            raise ValueError(f"{where}: malformed annotation ({e!r})") from None
        h[:, 2] = ids.verbs(h[:, 2], where)
        out.append({"file_name": name, "boxes": boxes, "labels": labels, "hois": h})
    return out


def train_counts_from_json(path, ids: IdMaps) -> Counter:
    """Training hoi counts per (subject label, object label, verb) triplet (RLIPv2 ``set_rare_hois``)."""
    counts = Counter()
    for i, rec in enumerate(load_json(path)):
        anns = rec.get("annotations", [])
        where = f"{path} record {i}"
        labels = ids.objects([a["category_id"] for a in anns], where)
        for h in rec.get("hoi_annotation", []):
            try:
                s, o = labels[h["subject_id"]], labels[h["object_id"]]
            except (IndexError, KeyError):
                raise ValueError(f"{where}: hoi {h} refers to a missing box") from None
            counts[(int(s), int(o), int(ids.verbs([h["category_id"]], where)[0]))] += 1
    return counts


class NpzReader:
    """Fast random access to the members of an (uncompressed or compressed) .npz without pickles.

    ``np.load`` costs tens of microseconds per member; this reader parses each distinct .npy header once.
    """

    def __init__(self, path):
        self.path = str(path)
        self._zip = zipfile.ZipFile(self.path)
        self._names = {n[:-4] for n in self._zip.namelist() if n.endswith(".npy")}
        self._headers: dict = {}

    def __contains__(self, key) -> bool:
        return key in self._names

    def keys(self):
        return sorted(self._names)

    def __getitem__(self, key) -> np.ndarray:
        if key not in self._names:
            raise KeyError(f"{self.path}: no array {key!r}")
        raw = self._zip.read(key + ".npy")
        if raw[:6] != b"\x93NUMPY":
            raise ValueError(f"{self.path}: member {key!r} is not a .npy array")
        major = raw[6]
        if major == 1:
            hlen, start = int.from_bytes(raw[8:10], "little"), 10
        else:
            hlen, start = int.from_bytes(raw[8:12], "little"), 12
        header = raw[start : start + hlen]
        parsed = self._headers.get(header)
        if parsed is None:
            d = ast.literal_eval(header.decode("latin1"))
            dtype = np.dtype(d["descr"])
            if dtype.hasobject:
                raise ValueError(f"{self.path}: member {key!r} holds Python objects (pickles are not loaded)")
            parsed = (dtype, tuple(d["shape"]), bool(d["fortran_order"]))
            self._headers[header] = parsed
        dtype, shape, fortran = parsed
        arr = np.frombuffer(raw, dtype=dtype, offset=start + hlen, count=int(np.prod(shape)) if shape else 1)
        return arr.reshape(shape, order="F" if fortran else "C")

    def close(self):
        self._zip.close()


def _atomic_path(path):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix="." + path.name, suffix=".tmp")
    os.close(fd)
    return path, tmp


def write_npz_atomic(path, arrays) -> None:
    """Write an uncompressed .npz from an iterable of (name, array) (streamed), atomically."""
    path, tmp = _atomic_path(path)
    try:
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
            for name, arr in arrays:
                with zf.open(name + ".npy", "w", force_zip64=True) as f:
                    np.lib.format.write_array(f, np.asarray(arr), allow_pickle=False)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _json_default(o):
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def _nan_to_none(o):
    if isinstance(o, float) and not np.isfinite(o):
        return None
    if isinstance(o, dict):
        return {k: _nan_to_none(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_nan_to_none(v) for v in o]
    return o


def write_json_atomic(path, obj) -> None:
    """Write JSON atomically; NaN / inf become null."""
    path, tmp = _atomic_path(path)
    try:
        with open(tmp, "w") as f:
            json.dump(_nan_to_none(json.loads(json.dumps(obj, default=_json_default))), f, indent=1)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def hico_zero_shot_pairs(setting: str):
    """(unseen, seen) lists of (verb, object) contiguous pairs for a HICO-DET zero-shot setting.

    ``setting``: UC-RF / RF-UC / rare_first, UC-NF / NF-UC / non_rare_first, UO, UV (packaged metadata),
    or a JSON file {"unseen": [[verb, object], ...], "seen": [...] (optional)}.
    """
    if os.path.isfile(setting):
        d = load_json(setting)
        unseen = [tuple(int(x) for x in p) for p in d["unseen"]]
        seen = [tuple(int(x) for x in p) for p in d["seen"]] if "seen" in d else None
        return unseen, seen
    zs = load_json(METADATA_DIR / "hico_zero_shot_unseen.json")["settings"]
    key = None
    for name, s in zs.items():
        if setting.lower() in [name.lower()] + [a.lower() for a in s.get("aliases", [])]:
            key = name
    if key is None:
        raise ValueError(f"unknown zero-shot setting {setting!r}; known: {sorted(zs)} (or a JSON file)")
    pairs = _hico_hoi_pairs()
    unseen_ids = set(zs[key]["unseen_hoi_ids"])
    unseen = [pairs[i] for i in zs[key]["unseen_hoi_ids"]]
    seen = [p for i, p in enumerate(pairs) if i not in unseen_ids]
    return unseen, seen


def _hico_hoi_pairs():
    """The 600 HICO-DET HOI classes as (verb, object) contiguous pairs, in HOI id order."""
    objs = {n.replace(" ", "_"): i for i, n in enumerate(load_json(METADATA_DIR / "hico_object_names.txt"))}
    verbs = {}
    for i, line in enumerate((METADATA_DIR / "hico_verb_names.txt").read_text().splitlines()):
        verbs[line.split()[1]] = i
    pairs = []
    for line in (METADATA_DIR / "hico_verb_obj_pair.txt").read_text().splitlines():
        _, o, v = line.split()
        pairs.append((verbs[v], objs[o]))
    return pairs
