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
from ..schemas.predictions import check_declared_size, max_array_bytes, parse_npy_header
from ..utils.file_io import atomic_open, atomic_write_json

logger = logging.getLogger(__name__)

METADATA_DIR = Path(__file__).resolve().parent.parent / "data" / "metadata"

__all__ = [
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
    """Dataset ids <-> contiguous ids for objects (arbitrary ids) and verbs (an offset)."""

    def __init__(self, object_ids, verb_offset: int, num_verbs: int):
        # ids size the lookup table below: bounded by the schema (MAX_CLASS_ID) before any allocation
        object_ids = check_id_list([int(i) if isinstance(i, np.integer) else i for i in object_ids], "object ids")
        self.object_ids = np.asarray(object_ids, np.int64)  # contiguous -> dataset id
        self.obj_to_contig = {int(d): i for i, d in enumerate(self.object_ids)}
        self.verb_offset = int(verb_offset)
        self.num_verbs = int(num_verbs)
        lut_size = int(self.object_ids.max()) + 1 if len(self.object_ids) else 1
        self.lut = np.full(lut_size, -1, np.int64)  # dataset id -> contiguous id, -1 = unknown
        self.lut[self.object_ids] = np.arange(len(self.object_ids))
        self._lut = self.lut

    @classmethod
    def from_spec(cls, correct_mat: np.ndarray, object_ids: str = "auto", verb_offset: str = "auto") -> IdMaps:
        """``object_ids``: auto | coco80 | identity | a JSON file with the list of dataset ids, or an
        object-names file ``{name: dataset id}`` in label order (``object_names_file`` of a dataset).

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
            if isinstance(ids, dict):  # {name: id} in label order
                ids = list(ids.values())
            ids = check_id_list(ids, str(object_ids))
            if len(ids) != no:
                raise ValueError(f"{object_ids}: {len(ids)} object ids but correct_mat has {no} object columns")
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
        v = np.asarray(ids, np.int64).reshape(-1) - self.verb_offset
        if v.size and (v.min() < 0 or v.max() >= self.num_verbs):
            bad = int(np.asarray(ids).reshape(-1)[np.argmax((v < 0) | (v >= self.num_verbs))])
            raise ValueError(f"{where}: verb category_id {bad} out of range (offset {self.verb_offset}, "
                             f"{self.num_verbs} verbs; see --verb-offset)")
        return v


def _flatten_records(path, data, ids: IdMaps, validate: bool = True):
    """Flat arrays of a community-format list: names, per-image box / hoi counts, boxes, labels, hois.

    The records are first checked against their schema (``rlipv2.schemas.hico``; ``validate=False`` when
    the caller did): the first broken rule raises one error naming the file, the record and the field.
    """
    if validate:
        HICO_SCHEMA.validate(data, str(path), {
            "object_ids": ids.obj_to_contig, "allow_outside_root": True,  # names only, never opened here
            "predicate_ids": range(ids.verb_offset, ids.verb_offset + ids.num_verbs)}).raise_first()
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
    v = hois[:, 2] - ids.verb_offset
    bad = (v < 0) | (v >= ids.num_verbs)
    if bad.any():
        k = np.nonzero(bad)[0][0]
        raise ValueError(f"{where('hoi_annotation', hoi_rec[k])}: verb category_id {hois[k, 2]} out of range "
                         f"(offset {ids.verb_offset}, {ids.num_verbs} verbs; see --verb-offset)")
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

    def __init__(self, path):
        self.path = str(path)
        self._file = open(self.path, "rb")
        self._fd = self._file.fileno()
        self._size = os.fstat(self._fd).st_size
        self._zip = None
        try:
            self._infos = self._central_directory()
        except ValueError:  # unusual zip layout: let zipfile parse it
            try:
                self._zip = zipfile.ZipFile(self.path)
            except zipfile.BadZipFile as e:
                self._file.close()
                raise ValueError(f"{self.path}: not a readable .npz file (truncated or corrupt?): {e}") from None
            self._infos = {i.filename[:-4]: (i.header_offset, i.compress_type, i.file_size, i)
                           for i in self._zip.infolist() if i.filename.endswith(".npy")}
        self._headers: dict = {}
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
        # one read for the local header, the name and the member (the local extra field is usually
        # empty; a second read covers a longer one)
        guess = 30 + len(key) + 4 + 64
        buf = os.pread(self._fd, guess + size, off)
        if buf[:4] != b"PK\x03\x04":
            raise ValueError(f"{self.path}: corrupt zip member {key}")
        skip = 30 + int.from_bytes(buf[26:28], "little") + int.from_bytes(buf[28:30], "little")
        if skip + size <= len(buf):
            return memoryview(buf)[skip : skip + size]
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
