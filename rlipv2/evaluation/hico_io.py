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

import json
import logging
import os
import zipfile
import zlib
from collections import Counter
from pathlib import Path

import numpy as np

from ..schemas.core import gc_paused
from ..schemas.hico import HICO_SCHEMA
from ..schemas.oi import check_id_list
from ..schemas.predictions import (
    TRIPLET_JSON_SCHEMA,
    check_declared_size,
    check_npz_array,
    max_array_bytes,
    parse_npy_header,
)
from ..utils.file_io import atomic_open, atomic_write_json
from .hico_core import CandidateSelector, HOICandidates, HOIGroundTruth, select_triplet_candidates

logger = logging.getLogger(__name__)

METADATA_DIR = Path(__file__).resolve().parent.parent / "data" / "metadata"

__all__ = [
    "prediction_image_indexer",
    "IdMaps",
    "load_correct_mat",
    "load_json",
    "hico_coco80_ids",
    "gt_images_from_json",
    "gt_from_json",
    "train_counts_from_json",
    "NpzReader",
    "write_npz_atomic",
    "write_json_atomic",
    "hico_zero_shot_pairs",
    "load_predictions",
    "write_hico_npz",
    "read_prediction_meta",
    "hico_names",
]


def load_json(path):
    try:
        with open(path) as f, gc_paused():
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
    """Dataset ids <-> contiguous ids for objects (arbitrary ids) and verbs (an offset, or arbitrary ids)."""

    def __init__(self, object_ids, verb_offset: int, num_verbs: int, verb_ids=None):
        # ids size the lookup table below: bounded by the schema (MAX_CLASS_ID) before any allocation
        object_ids = check_id_list([int(i) if isinstance(i, np.integer) else i for i in object_ids], "object ids")
        self.object_ids = np.asarray(object_ids, np.int64)  # contiguous -> dataset id
        self.obj_to_contig = {int(d): i for i, d in enumerate(self.object_ids)}
        self.num_verbs = int(num_verbs)
        if verb_ids is not None:
            verb_ids = check_id_list([int(i) for i in verb_ids], "verb ids")
            if len(verb_ids) != self.num_verbs:
                raise ValueError(f"verb ids: {len(verb_ids)} ids for {self.num_verbs} verbs")
            first = verb_ids[0] if verb_ids else 0
            if verb_ids == list(range(first, first + len(verb_ids))):
                verb_offset, verb_ids = first, None  # consecutive ids: a plain offset
        self.verb_offset = int(verb_offset)
        self.verb_ids = np.arange(self.num_verbs, dtype=np.int64) + self.verb_offset if verb_ids is None else \
            np.asarray(verb_ids, np.int64)
        self._verb_lut = None
        if verb_ids is not None:
            self._verb_lut = np.full(int(self.verb_ids.max()) + 1, -1, np.int64)
            self._verb_lut[self.verb_ids] = np.arange(self.num_verbs)
        lut_size = int(self.object_ids.max()) + 1 if len(self.object_ids) else 1
        self.lut = np.full(lut_size, -1, np.int64)  # dataset id -> contiguous id, -1 = unknown
        self.lut[self.object_ids] = np.arange(len(self.object_ids))
        self._lut = self.lut

    @property
    def predicate_ids(self):
        """The dataset verb ids (for the schema checks)."""
        if self._verb_lut is None:
            return range(self.verb_offset, self.verb_offset + self.num_verbs)
        return {int(v) for v in self.verb_ids}

    def verb_index(self, ids) -> np.ndarray:
        """Contiguous verb index of dataset verb ids, -1 where unknown."""
        ids = np.asarray(ids, np.int64).reshape(-1)
        if self._verb_lut is None:
            v = ids - self.verb_offset
            return np.where((v >= 0) & (v < self.num_verbs), v, -1)
        ok = (ids >= 0) & (ids < len(self._verb_lut))
        return np.where(ok, self._verb_lut[np.clip(ids, 0, len(self._verb_lut) - 1)], -1)

    @classmethod
    def from_spec(cls, correct_mat: np.ndarray, object_ids="auto", verb_offset: str = "auto") -> IdMaps:
        """``object_ids``: auto | coco80 | identity | a list of dataset ids (in label order) | a JSON file
        with that list, or an object-names file ``{name: dataset id}`` in label order.

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
            where = "--object-ids (inline list)" if isinstance(object_ids, list) else str(object_ids)
            ids = object_ids if isinstance(object_ids, list) else load_json(object_ids)
            if isinstance(ids, dict):  # {name: id} in label order
                ids = list(ids.values())
            ids = check_id_list(ids, where)
            if len(ids) != no:
                raise ValueError(f"{where}: {len(ids)} object ids but correct_mat has {no} object columns")
        off = (1 if hico else 0) if verb_offset == "auto" else int(verb_offset)
        return cls(ids, off, nv)

    def objects(self, ids, where: str) -> np.ndarray:
        ids = np.asarray(ids, np.int64).reshape(-1)
        if ids.size == 0:
            return ids
        lo, hi = ids.min(), ids.max()
        if lo >= 0 and hi < len(self._lut):  # the usual case: one lookup, one check
            out = self._lut[ids]
            if out.min() >= 0:
                return out
        bad = (ids < 0) | (ids >= len(self._lut))
        out = np.where(bad, -1, self._lut[np.clip(ids, 0, len(self._lut) - 1)])
        if (out < 0).any():
            raise ValueError(f"{where}: unknown object category_id {int(ids[np.argmax(out < 0)])} "
                             f"(known: {self.object_ids.tolist()[:10]}...; see --object-ids)")
        return out

    def verbs(self, ids, where: str) -> np.ndarray:
        v = self.verb_index(ids)
        if v.size and v.min() < 0:
            bad = int(np.asarray(ids).reshape(-1)[np.argmax(v < 0)])
            raise ValueError(f"{where}: verb category_id {bad} out of range ({self._describe_verbs()}; see "
                             "--verb-offset)")
        return v

    def _describe_verbs(self) -> str:
        if self._verb_lut is None:
            return f"offset {self.verb_offset}, {self.num_verbs} verbs"
        return f"{self.num_verbs} verbs with the ids of the predictions file"


def _flatten_records(path, data, ids: IdMaps, validate: bool = True):
    """Flat arrays of a community-format list: names, per-image box / hoi counts, boxes, labels, hois.

    The records are first checked against their schema (``rlipv2.schemas.hico``; ``validate=False`` when
    the caller did): the first broken rule raises one error naming the file, the record and the field.
    """
    if validate:
        HICO_SCHEMA.validate(data, str(path), {
            "object_ids": ids.obj_to_contig, "allow_outside_root": True,  # names only, never opened here
            "predicate_ids": ids.predicate_ids}).raise_first()
    names, nbox, nhoi, boxes, cats, hois = [], [], [], [], [], []
    for i, rec in enumerate(data):
        if not isinstance(rec, dict) or "file_name" not in rec:
            raise ValueError(f"{path}: record {i} has no 'file_name'")
        try:
            anns = rec.get("annotations", [])
            hh = rec.get("hoi_annotation", [])
            boxes.extend(a["bbox"] for a in anns)
            cats.extend(a["category_id"] for a in anns)
            hois.extend((h["subject_id"], h["object_id"], h["category_id"]) for h in hh)
        except (KeyError, TypeError) as e:
            raise ValueError(f"{path} record {i} ({rec.get('file_name')}): malformed annotation ({e!r})") from None
        names.append(rec["file_name"])
        nbox.append(len(anns))
        nhoi.append(len(hh))
    try:
        boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    except ValueError:
        raise ValueError(f"{path}: every 'bbox' must be [x1, y1, x2, y2]") from None
    nbox, nhoi = np.asarray(nbox, np.int64), np.asarray(nhoi, np.int64)
    box_rec = np.repeat(np.arange(len(names)), nbox)
    hoi_rec = np.repeat(np.arange(len(names)), nhoi)
    hois = np.asarray(hois, np.int64).reshape(-1, 3)

    def where(kind, idx):
        r = int(idx)
        return f"{path} record {r} ({names[r]}), {kind}"

    try:
        labels = ids.objects(cats, f"{path}")
    except ValueError:
        bad = np.nonzero(~np.isin(np.asarray(cats, np.int64), ids.object_ids))[0][0]
        raise ValueError(f"{where('annotations', box_rec[bad])}: unknown object category_id {cats[bad]} "
                         f"(see --object-ids)") from None
    v = ids.verb_index(hois[:, 2])
    bad = v < 0
    if bad.any():
        k = np.nonzero(bad)[0][0]
        raise ValueError(f"{where('hoi_annotation', hoi_rec[k])}: verb category_id {hois[k, 2]} out of range "
                         f"({ids._describe_verbs()}; see --verb-offset)")
    hois[:, 2] = v
    lim = nbox[hoi_rec]
    bad = (hois[:, 0] < 0) | (hois[:, 1] < 0) | (hois[:, 0] >= lim) | (hois[:, 1] >= lim)
    if bad.any():
        k = np.nonzero(bad)[0][0]
        raise ValueError(f"{where('hoi_annotation', hoi_rec[k])}: subject_id/object_id {hois[k, :2].tolist()} "
                         f"out of range [0, {lim[k]})")
    return names, nbox, nhoi, boxes, labels, hois


def gt_from_json(path, ids: IdMaps, box_dtype=np.float32):
    """HOIGroundTruth (contiguous ids) from a community test_hico.json, built with array code."""
    from .boxes import check_boxes
    from .hico_core import HOIGroundTruth

    names, nbox, nhoi, boxes, labels, hois = _flatten_records(path, load_json(path), ids)
    try:
        check_boxes(boxes, str(path))
    except ValueError as e:
        raise ValueError(f"{e} (global box index; see the record with that many boxes before it)") from None
    box_off = np.concatenate(([0], np.cumsum(nbox)))
    hoi_off = np.concatenate(([0], np.cumsum(nhoi)))
    base = np.repeat(box_off[:-1], nhoi)
    return HOIGroundTruth(list(names), box_off, boxes.astype(box_dtype), labels, hoi_off, hois[:, 0] + base,
                          hois[:, 1] + base, hois[:, 2].copy())


def gt_images_from_json(path, ids: IdMaps) -> list:
    """Per-image GT dicts {"file_name", "boxes", "labels", "hois"} (contiguous ids) from a test_hico.json."""
    names, nbox, nhoi, boxes, labels, hois = _flatten_records(path, load_json(path), ids)
    bo, ho = np.concatenate(([0], np.cumsum(nbox))), np.concatenate(([0], np.cumsum(nhoi)))
    return [{"file_name": n, "boxes": boxes[bo[i]:bo[i + 1]], "labels": labels[bo[i]:bo[i + 1]],
             "hois": hois[ho[i]:ho[i + 1]]} for i, n in enumerate(names)]


def train_counts_from_json(path, ids: IdMaps) -> Counter:
    """Training hoi counts per (subject label, object label, verb) triplet (RLIPv2 ``set_rare_hois``)."""
    names, nbox, nhoi, boxes, labels, hois = _flatten_records(path, load_json(path), ids)
    base = np.repeat(np.concatenate(([0], np.cumsum(nbox)))[:-1], nhoi)
    trip = np.stack([labels[hois[:, 0] + base], labels[hois[:, 1] + base], hois[:, 2]], 1)
    uniq, cnt = np.unique(trip, axis=0, return_counts=True)
    return Counter({tuple(int(x) for x in t): int(c) for t, c in zip(uniq, cnt)})


class NpzReader:
    """Fast random access to the members of a .npz, without pickles.

    ``np.load`` costs tens of microseconds per member, which dominates at 47,730 members. Stored
    (uncompressed) members are read with one ``pread`` each at the offsets of the zip central
    directory (parsed once, with struct); compressed ones go through ``zipfile``. Each distinct .npy
    header is parsed once. Only the members being read are held in memory.
    """

    _WINDOW = 1 << 22  # bytes read at once (members of ~100 images)
    _cd_cache: tuple = (None, None)  # (path, size, mtime, inode) -> member offsets of the last file parsed

    def __init__(self, path):
        self.path = str(path)
        self._file = open(self.path, "rb")
        self._fd = self._file.fileno()
        self._size = os.fstat(self._fd).st_size
        self._zip = None
        st = os.fstat(self._fd)
        cache_key = (self.path, st.st_size, st.st_mtime_ns, st.st_ino)
        try:
            if NpzReader._cd_cache[0] == cache_key:  # the same file opened again (meta, then arrays)
                self._infos = NpzReader._cd_cache[1]
            else:
                self._infos = self._central_directory()
                NpzReader._cd_cache = (cache_key, self._infos)
        except ValueError:  # unusual zip layout: let zipfile parse it
            try:
                self._zip = zipfile.ZipFile(self.path)
            except zipfile.BadZipFile as e:
                self._file.close()
                raise ValueError(f"{self.path}: not a readable .npz file (truncated or corrupt?): {e}") from None
            self._infos = {i.filename[:-4]: (i.header_offset, i.compress_type, i.file_size, i)
                           for i in self._zip.infolist() if i.filename.endswith(".npy")}
        self._headers: dict = {}
        self._win, self._win_off = None, 0
        self._limit = max_array_bytes()  # read once: the environment lookup costs more than a member

    def _central_directory(self) -> dict:
        """Parse the zip central directory with struct (zipfile's parser is slow for 50k members)."""
        import struct

        tail_start = max(0, self._size - 65557)
        tail = os.pread(self._fd, self._size - tail_start, tail_start)
        end = tail.rfind(b"PK\x05\x06")
        if end < 0:
            raise ValueError("no end of central directory")
        n, size, off = struct.unpack_from("<HII", tail, end + 10)
        if n == 0xFFFF or size == 0xFFFFFFFF or off == 0xFFFFFFFF:
            raise ValueError("zip64 archive")  # handled by zipfile
        m = os.pread(self._fd, size, off)
        infos, p = {}, 0
        unpack = struct.Struct("<4s6xHxxxxxxxxIIHHHxxxxxxxxI").unpack_from
        for _ in range(n):
            sig, method, csize, usize, nlen, xlen, clen, hoff = unpack(m, p)
            if sig != b"PK\x01\x02":
                raise ValueError("bad central directory entry")
            name = m[p + 46 : p + 46 + nlen].decode("utf-8")
            if usize == 0xFFFFFFFF or csize == 0xFFFFFFFF or hoff == 0xFFFFFFFF:
                raise ValueError("zip64 member")  # handled by zipfile
            if name.endswith(".npy"):
                infos[name[:-4]] = (hoff, method, usize, None)
            p += 46 + nlen + xlen + clen
        return infos

    def __contains__(self, key) -> bool:
        return key in self._infos

    def keys(self):
        return sorted(self._infos)

    def _member_bytes(self, key, info):
        off, method, size, zinfo = info
        if size > self._limit:
            check_declared_size(self.path, key, size)  # before anything is read or inflated (zip bombs)
        if method != zipfile.ZIP_STORED or zinfo is not None:  # compressed, or laid out for zipfile only
            try:
                if self._zip is None:
                    self._zip = zipfile.ZipFile(self.path)
                return memoryview(self._zip.read(zinfo or key + ".npy"))
            except (zipfile.BadZipFile, EOFError, OSError, zlib.error) as e:
                raise ValueError(f"{self.path}: cannot read member {key!r} (truncated or corrupt?): {e}") from None
        # Members are read through a window of the file (_WINDOW bytes, one pread): consecutive members,
        # read in file order as the evaluators do, cost one system call per window instead of one each.
        # The local header's extra field is usually empty; a longer one costs a second read.
        need = 30 + len(key.encode()) + 4 + 64 + size
        rel = off - self._win_off
        if self._win is None or rel < 0 or rel + need > len(self._win):
            self._win = memoryview(os.pread(self._fd, max(need, self._WINDOW), off))
            self._win_off, rel = off, 0
        buf = self._win
        if bytes(buf[rel : rel + 4]) != b"PK\x03\x04":
            raise ValueError(f"{self.path}: corrupt zip member {key}")
        skip = 30 + int.from_bytes(buf[rel + 26 : rel + 28], "little") + \
            int.from_bytes(buf[rel + 28 : rel + 30], "little")
        if rel + skip + size <= len(buf):
            return buf[rel + skip : rel + skip + size]
        return memoryview(os.pread(self._fd, size, off + skip))

    def __getitem__(self, key) -> np.ndarray:
        info = self._infos.get(key)
        if info is None:
            raise KeyError(f"{self.path}: no array {key!r}")
        raw = self._member_bytes(key, info)
        hlen = int.from_bytes(raw[8:10], "little") + 10 if raw[6:7] == b"\x01" else \
            int.from_bytes(raw[8:12], "little") + 12
        header = bytes(raw[:hlen])
        parsed = self._headers.get(header)
        if parsed is None or parsed[4] > len(raw) - parsed[5]:
            dtype, shape, fortran, count, start = parse_npy_header(raw, self.path, key)
            parsed = (dtype, shape, fortran, count, dtype.itemsize * count, start)
            self._headers[header] = parsed
        dtype, shape, fortran, count, _, start = parsed
        arr = np.frombuffer(raw, dtype=dtype, offset=start, count=count)
        return arr.reshape(shape, order="F" if fortran else "C")

    def close(self):
        self._file.close()
        if self._zip is not None:
            self._zip.close()


def write_npz_atomic(path, arrays) -> None:
    """Write an uncompressed .npz from an iterable of (name, array) (streamed), atomically."""
    with atomic_open(path, "wb") as f, zipfile.ZipFile(f, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
        for name, arr in arrays:
            with zf.open(name + ".npy", "w") as m:
                np.lib.format.write_array(m, np.asarray(arr), allow_pickle=False)


def _json_default(o):
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def write_json_atomic(path, obj) -> None:
    """Write JSON atomically; NaN / inf become null (standard JSON), numpy values plain numbers."""
    atomic_write_json(path, obj, indent=1, nan="null", default=_json_default)


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


# ------------------------------------------------------------------------------ predictions


def prediction_image_indexer(gt):
    """``index(name, where)`` -> the ground-truth index of a prediction record's image; an image missing from the
    ground truth (KeyError) or given a second record (ValueError) is refused, naming ``where``. ``index.seen``:
    the indices returned so far."""
    seen = set()

    def index(name, where):
        try:
            i = gt.index_of(name)
        except KeyError:
            raise KeyError(f"{where}: prediction for unknown image {name!r} (not in the ground truth)") from None
        if i in seen:
            raise ValueError(f"{where}: several prediction records for image {name!r}")
        seen.add(i)
        return i

    index.seen = seen
    return index


def load_predictions(pred_path, gt: HOIGroundTruth, ids: IdMaps, correct_mat, top_k: int, protocol: str,
                     json_ids: str = "dataset", allow_missing: bool = True) -> HOICandidates:
    """Candidates from a raw per-query .npz or a triplet JSON (see hico_io for the formats)."""
    pred_path = str(pred_path)
    if top_k < 0:
        raise ValueError(f"top_k must be >= 0 (0: no cap), got {top_k}")
    image_index = prediction_image_indexer(gt)

    if pred_path.endswith(".npz"):
        z = NpzReader(pred_path)
        if "file_names" not in z:
            raise ValueError(f"{pred_path}: missing key 'file_names'")
        names = [str(n) for n in z["file_names"].tolist()]
        sel = CandidateSelector(correct_mat, top_k, protocol, label_lut=ids.lut)
        checked = set()
        for i, name in enumerate(names):
            where = f"{pred_path} image {i} ({name})"
            idx = image_index(name, where)
            try:
                boxes, labels, vs, sub, obj = (z[f"{k}_{i}"] for k in ("boxes", "labels", "verb_scores", "sub_ids",
                                                                       "obj_ids"))
            except KeyError as e:
                raise ValueError(f"{e.args[0]} (needed for image {i}, {name!r})") from None
            for k, arr in zip(("boxes", "labels", "verb_scores", "sub_ids", "obj_ids"), (boxes, labels, vs, sub, obj)):
                sig = (k, arr.dtype.str, arr.ndim, arr.size == 0)
                if sig not in checked:  # dtype and rank are all the schema checks: once per kind of array
                    check_npz_array(f"{k}_{i}", arr, where)
                    checked.add(sig)
            sel.add(idx, boxes, labels, vs, sub, obj, where=where)
        z.close()
        cand = sel.finish()
    elif pred_path.endswith(".json"):
        data = load_json(pred_path)
        TRIPLET_JSON_SCHEMA.validate(data, pred_path).raise_first()  # types, ranges, indices: rlipv2.schemas
        parts = []
        for i, rec in enumerate(data):
            name = rec.get("file_name") if isinstance(rec, dict) else None
            where = f"{pred_path} record {i} ({name})"
            if name is None:
                raise ValueError(f"{pred_path} record {i}: no 'file_name'")
            idx = image_index(name, where)
            try:
                boxes = np.array([p["bbox"] for p in rec.get("predictions", [])], np.float32).reshape(-1, 4)
                labels = [p["category_id"] for p in rec.get("predictions", [])]
                hois = rec.get("hoi_prediction", [])
                s = np.array([h["subject_id"] for h in hois], np.int64)
                o = np.array([h["object_id"] for h in hois], np.int64)
                vb = [h["category_id"] for h in hois]
                sc = np.array([h["score"] for h in hois], np.float32)
            except (KeyError, TypeError) as e:
                raise ValueError(f"{where}: malformed record ({e!r})") from None
            if json_ids == "dataset":
                labels = ids.objects(labels, where)
                vb = ids.verbs(vb, where)
            else:
                labels, vb = np.asarray(labels, np.int64), np.asarray(vb, np.int64)
            if len(s) and (min(s.min(), o.min()) < 0 or max(s.max(), o.max()) >= len(boxes)):
                raise ValueError(f"{where}: subject_id/object_id out of range [0, {len(boxes)})")
            parts.append(select_triplet_candidates(idx, boxes[s], boxes[o], labels[s] if len(s) else s,
                                                   labels[o] if len(o) else o, vb, sc, correct_mat, top_k,
                                                   protocol, where=where))
        cand = HOICandidates.concatenate(parts)
    else:
        raise ValueError(f"{pred_path}: predictions must be a .npz (raw per-query) or .json (triplets) file")
    missing = gt.num_images - len(image_index.seen)
    if missing:
        msg = f"{missing} of {gt.num_images} ground-truth images have no prediction record (scored as no detection)"
        if not allow_missing:
            raise ValueError(msg)
        logger.warning(msg)
    return cand


def write_hico_npz(path, records, num_verbs: int, contig_to_dataset_id: np.ndarray, meta: dict | None = None) -> None:
    """Write compact per-image triplets as the raw per-query .npz of the CLI.

    Each distinct (query) of an image becomes one row: boxes (2Q', 4) = subjects then objects,
    labels (2Q',) dataset ids, verb_scores (Q', V) holding the kept scores (0 elsewhere).
    ``meta``: what the protocol needs to re-score the file with no flags (see ``PREDICTION_META``),
    stored as ``meta_<key>`` arrays.
    """
    names = [os.path.basename(r["file_name"]) for r in records]
    if len(set(names)) != len(names):
        names = [r["file_name"] for r in records]

    def arrays():
        for k, v in (meta or {}).items():
            if k not in PREDICTION_META:
                raise ValueError(f"write_hico_npz: unknown meta key {k!r} (known: {sorted(PREDICTION_META)})")
            if v is not None:
                yield META_PREFIX + k, np.asarray(v)
        yield "file_names", np.array(names)
        for i, r in enumerate(records):
            q = r["query"]
            uq, inv = np.unique(q, return_inverse=True)
            first = np.zeros(len(uq), np.int64)
            first[inv[::-1]] = np.arange(len(q))[::-1]
            nq = len(uq)
            vs = np.zeros((nq, num_verbs), r["scores"].dtype)
            vs[inv, r["verbs"]] = r["scores"]
            yield f"boxes_{i}", np.concatenate([r["sub_boxes"][first], r["obj_boxes"][first]]).reshape(-1, 4)
            yield f"labels_{i}", contig_to_dataset_id[np.concatenate([r["sub_labels"][first],
                                                                       r["obj_labels"][first]])].astype(np.int64)
            yield f"verb_scores_{i}", vs
            yield f"sub_ids_{i}", np.arange(nq, dtype=np.int64)
            yield f"obj_ids_{i}", np.arange(nq, 2 * nq, dtype=np.int64)

    write_npz_atomic(path, arrays())


META_PREFIX = "meta_"
#: The self-description of a prediction .npz written during training (``HICOEvaluator``): key -> meaning.
PREDICTION_META = {
    "format_version": "1",
    "object_names": "(O,) object class texts, in label order",
    "verb_names": "(V,) verb (predicate) class texts, in column order",
    "object_ids": "(O,) dataset object id of each label (the ids of labels_{i} and of the GT file)",
    "verb_ids": "(V,) dataset verb id of each verb column (the ids of the GT file)",
    "correct_mat": "(V, O) 0/1 valid (verb, object) pairs used in training",
    "rare_pairs": "(R, 2) (verb, object) pairs of the rare split",
    "nonrare_pairs": "(N, 2) (verb, object) pairs of the non-rare split",
    "rare_source": "where the split came from (text)",
    "protocol": "qpic | matlab",
    "top_k": "triplets kept per image (0: no cap)",
    "nms": "(4,) enabled (0/1), thresh, alpha, beta",
    "known_object": "0/1 Known-Object mode",
    "zero_shot_unseen": "(U, 2) unseen (verb, object) pairs when the run reported unseen / seen",
    "gt_file": "the dataset's annotation file (HICO-DET format), the default --gt",
}


def read_prediction_meta(path) -> dict:
    """The ``meta_*`` arrays of a prediction .npz as plain values ({} for files without them).

    Checked for consistency (shapes, 0/1 correct-mat, id counts); an error names the file and the key.
    """
    path = str(path)
    if not path.endswith(".npz"):
        return {}
    z = NpzReader(path)
    try:
        keys = [k for k in z.keys() if k.startswith(META_PREFIX)]
        raw = {k[len(META_PREFIX):]: z[k] for k in keys}
    finally:
        z.close()
    out = {}
    for k, v in raw.items():
        if k not in PREDICTION_META:
            logger.warning("%s: unknown meta key %r ignored", path, k)
            continue
        v = np.array(v)
        if v.dtype.kind == "U":
            out[k] = v.tolist()
        elif v.ndim == 0:
            out[k] = v.item()
        else:
            out[k] = v
    def bad(key, msg):
        raise ValueError(f"{path}: meta_{key}: {msg}")

    cm = out.get("correct_mat")
    if cm is not None:
        if cm.ndim != 2 or not np.isin(cm, (0, 1)).all():
            bad("correct_mat", f"must be a 2-D 0/1 array (num_verbs, num_objects), got shape {cm.shape}")
        nv, no = cm.shape
        for key, n in (("object_ids", no), ("object_names", no), ("verb_ids", nv), ("verb_names", nv)):
            if key in out and len(out[key]) != n:
                bad(key, f"{len(out[key])} entries for the {n} {'objects' if 'object' in key else 'verbs'} of "
                         "meta_correct_mat")
    for key in ("rare_pairs", "nonrare_pairs", "zero_shot_unseen"):
        if key in out:
            a = np.asarray(out[key])
            if a.size == 0:
                a = a.reshape(0, 2)
            if a.ndim != 2 or a.shape[1] != 2 or a.dtype.kind not in "iu":
                bad(key, f"must be (n, 2) integer (verb, object) pairs, got {a.dtype} {a.shape}")
            out[key] = [tuple(int(x) for x in p) for p in a.tolist()]
    if "nms" in out:
        a = np.asarray(out["nms"], np.float64).reshape(-1)
        if a.shape != (4,) or not np.isfinite(a).all():
            bad("nms", "must be 4 finite numbers: enabled, thresh, alpha, beta")
        out["nms"] = a.tolist()
    if "protocol" in out and out["protocol"] not in ("qpic", "matlab"):
        bad("protocol", f"must be 'qpic' or 'matlab', got {out['protocol']!r}")
    return out


def hico_names() -> tuple[list, list]:
    """The packaged HICO-DET object and verb texts, in label / column order."""
    objects = [n.replace("_", " ") for n in load_json(METADATA_DIR / "hico_object_names.txt")]
    verbs = [line.split()[1].replace("_", " ") for line in
             (METADATA_DIR / "hico_verb_names.txt").read_text().splitlines() if line.strip()]
    return objects, verbs
