"""The relational pseudo-labelling pipeline: captions -> parse -> match -> tag -> write (+ merge).

Layout of ``output_dir``::

    index/meta.json, index/shard_00000.json ...   images + kept GT boxes per shard, category vocabulary
    captions/shard_*.json   {image_id: [captions]}
    parse/shard_*.json      {image_id: [{"entities": [...], "relations": [[s, o, text]]}, ...]}
    match/shard_*.json      {image_id: [[pairs, relation_texts], ...]}   (groups of <= 100 pairs)
    tag/shard_*.json        {image_id: [[subject, object, relation_text, score], ...]}  (score > 0.05)
    write/shard_*.json      [VG-style entries]   (ids numbered per shard)
    <final_name>            the merged pre-training file (ids renumbered globally)
    summary.json            statistics and bad-input counts

Images are split into shards of ``shard_size`` in detection-file order. Each stage processes the
shards ``i`` with ``i % world_size == rank`` and skips shards whose file is already complete, so any stage
can be re-run or resumed, on any number of ranks. Each shard file has a random ``token`` and records the
``input_token`` of the upstream shard it was made from: when an upstream shard is redone (e.g. ``tag``
with ``--overwrite`` and another tagger), the downstream shards are redone on the next run instead of
being reused stale. Stage files carry their bad-input counts in
``meta.issues``; the summary adds them up.
"""
from __future__ import annotations

import dataclasses
import logging
import os
import uuid
import zlib
from dataclasses import dataclass, field
from typing import Callable, Sequence

import torch
from tqdm import tqdm

from rlipv2.schemas.core import path_escapes_root
from rlipv2.utils.file_io import remove_stale_temp_files
from rlipv2.utils.image_io import read_image_rgb

from .captions import Captioner, build_captioner, clean_captions, load_captions_json
from .detection import ImageRecord, image_key, load_detection_json
from .io import IssueLog, atomic_write_json, is_shard_complete, merge_counters, read_json, read_shard, shard_path
from .matching import GROUP_SIZE, CategoryVocabulary, build_candidate_pairs, group_candidates, match_image_triplets
from .parsing import DEFAULT_SPACY_MODEL, CaptionGraph, get_parser, parse_captions
from .tagging import GROUPS_PER_BATCH, SCORE_THRESHOLD, RelationTagger, build_relation_tagger, tag_image
from .writer import START_ID, build_vg_entry, format_summary, merge_shards

__all__ = ["STAGES", "PipelineConfig", "PseudoLabelPipeline", "run_pipeline"]

logger = logging.getLogger(__name__)

STAGES = ("captions", "parse", "match", "tag", "write", "merge")
# the stage whose shard file each stage reads
UPSTREAM = {"parse": "captions", "match": "parse", "tag": "match", "write": "tag"}


@dataclass
class PipelineConfig:
    """Settings of one pipeline run (``tools/pseudo_label.py`` maps its flags onto these fields)."""

    detection_json: str
    output_dir: str
    image_root: str = ""
    captions_json: str | None = None
    captioner: str | None = None  # registered Captioner name, used when captions_json is None
    captioner_kwargs: dict = field(default_factory=dict)
    paraphrases: str = "coco"  # "coco", "o365" or a JSON path
    paraphrase_match: str | None = None  # "name" | "position" | None (the source's default)
    spacy_model: str = DEFAULT_SPACY_MODEL
    tagger: str = "RandomTagger"
    tagger_kwargs: dict = field(default_factory=dict)
    score_threshold: float = SCORE_THRESHOLD
    groups_per_batch: int = GROUPS_PER_BATCH
    group_size: int = GROUP_SIZE
    shard_size: int = 1000
    dataset_name: str = "custom"
    data_split: str | None = None
    image_id_to_filepath: str | None = None  # JSON {image_id: relative path} (Objects365)
    start_object_id: int = START_ID
    start_relationship_id: int = START_ID
    final_name: str = "pseudo_relations.json"
    keep_images_without_relations: bool = True
    num_workers: int = 2
    overwrite: bool = False
    progress: bool = True

    def __post_init__(self):
        for name, lo in (("shard_size", 1), ("group_size", 1), ("groups_per_batch", 1), ("num_workers", 0)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < lo:
                raise ValueError(f"PipelineConfig.{name} must be an integer >= {lo}, got {v!r}")
        t = self.score_threshold
        if isinstance(t, bool) or not isinstance(t, (int, float)) or not 0.0 <= t <= 1.0:  # also refuses NaN
            raise ValueError(f"PipelineConfig.score_threshold must be a number in [0, 1], got {t!r}")


def _dist():
    from detectron2.utils import comm

    return comm.get_rank(), comm.get_world_size(), comm.synchronize


class PseudoLabelPipeline:
    """Runs the stages over the shards that belong to this rank.

    Args:
        cfg: the run's settings.
        captioner / tagger: optional ready-made instances (otherwise built from ``cfg`` when needed).
        rank, world_size, barrier: distributed context (defaults: detectron2.utils.comm).
    """

    def __init__(self, cfg: PipelineConfig, captioner: Captioner | None = None, tagger: RelationTagger | None = None,
                 rank: int | None = None, world_size: int | None = None, barrier: Callable | None = None):
        self.cfg = cfg
        d_rank, d_world, d_sync = _dist()
        self.rank = d_rank if rank is None else rank
        self.world_size = d_world if world_size is None else world_size
        self.barrier = barrier or d_sync
        self._captioner = captioner
        self._tagger = tagger
        self._meta = None
        self._tokens_read: dict[tuple[str, int], str | None] = {}

    # ------------------------------------------------------------------ helpers
    def _path(self, *parts) -> str:
        return os.path.join(self.cfg.output_dir, *parts)

    @property
    def meta(self) -> dict:
        if self._meta is None:
            self._meta = read_json(self._path("index", "meta.json"), "index meta file")
        return self._meta

    @property
    def num_shards(self) -> int:
        return self.meta["num_shards"]

    def my_shards(self) -> list[int]:
        return [i for i in range(self.num_shards) if i % self.world_size == self.rank]

    def _shard_images(self, shard: int) -> list[ImageRecord]:
        return [ImageRecord.from_json(d) for d in read_shard(self.cfg.output_dir, "index", shard)["data"]]

    def _read_prev(self, stage: str, shard: int) -> dict:
        """Read a finished shard of an earlier stage, checking that it covers this index shard."""
        content = read_shard(self.cfg.output_dir, stage, shard, self._expect(shard))
        self._tokens_read[(stage, shard)] = content["meta"].get("token")
        return content

    def _expect(self, shard: int) -> dict:
        """Meta values every stage file of ``shard`` must carry (same images as the index shard)."""
        return {"num_images": self.meta["shard_num_images"][shard], "images_crc": self.meta["shard_crc"][shard]}

    def _pending(self, stage: str, all_shards: bool = False) -> list[int]:
        """This rank's shards (all shards with ``all_shards``) whose ``stage`` file is not complete yet."""
        mine = list(range(self.num_shards)) if all_shards else self.my_shards()
        todo = []
        for i in mine:
            if self.cfg.overwrite or not is_shard_complete(self.cfg.output_dir, stage, i, self._expect(i)):
                todo.append(i)
            elif stage in UPSTREAM and self._upstream_changed(stage, i):
                logger.info("[rank %d] %s: shard %d is redone because its %s shard changed", self.rank, stage, i,
                            UPSTREAM[stage])
                todo.append(i)
        skipped = len(mine) - len(todo)
        if skipped:
            logger.info("[rank %d] %s: skipping %d finished shard(s)", self.rank, stage, skipped)
        return todo

    def _upstream_changed(self, stage: str, shard: int) -> bool:
        """True if the upstream shard was rewritten after this stage's shard was made from it."""
        up = self._shard_meta(UPSTREAM[stage], shard)
        mine = self._shard_meta(stage, shard)
        return up is not None and mine is not None and mine.get("input_token") != up.get("token")

    def _shard_meta(self, stage: str, shard: int) -> dict | None:
        path = shard_path(self.cfg.output_dir, stage, shard)
        if not os.path.isfile(path):
            return None
        try:
            return read_json(path)["meta"]
        except (ValueError, KeyError, TypeError):
            return None

    def _bar(self, stage: str, shards: Sequence[int]):
        total = sum(self.meta["shard_num_images"][i] for i in shards)
        return tqdm(total=total, desc=f"[rank {self.rank}] {stage}", unit="img", disable=not self.cfg.progress,
                    position=self.rank if self.world_size > 1 else None, dynamic_ncols=True, mininterval=1.0)

    def _write_shard(self, stage: str, shard: int, data, issues: IssueLog, stats: dict | None = None) -> None:
        meta = {"stage": stage, "shard": shard, **self._expect(shard), "complete": True, "rank": self.rank,
                "world_size": self.world_size, "token": uuid.uuid4().hex,
                "input_token": self._tokens_read.get((UPSTREAM[stage], shard)) if stage in UPSTREAM else None,
                "stats": stats or {}, **issues.to_meta()}
        atomic_write_json(shard_path(self.cfg.output_dir, stage, shard), {"meta": meta, "data": data})

    # ------------------------------------------------------------------ index
    def build_index(self) -> None:
        """Split the detection file into image shards and fix the category vocabulary (rank 0; others wait)."""
        meta_path = self._path("index", "meta.json")
        if self.rank == 0:
            existing = read_json(meta_path, "index meta file") if os.path.isfile(meta_path) else None
            if existing is not None and not self.cfg.overwrite:
                self._check_index_matches(existing, meta_path)
            else:
                self._build_index_files(meta_path)
        self.barrier()
        self._meta = None

    def _check_index_matches(self, existing: dict, meta_path: str) -> None:
        """Refuse to resume an output directory made from other settings (its shards would not fit)."""
        cfg = self.cfg
        checks = [("shard_size", cfg.shard_size, "--shard-size"), ("paraphrases", cfg.paraphrases, "--paraphrases"),
                  ("paraphrase_match", cfg.paraphrase_match, "--paraphrase-match"),
                  ("detection_json", os.path.abspath(cfg.detection_json), "--detection-json")]
        for key, value, flag in checks:
            if existing.get(key) != value:
                raise ValueError(
                    f"{meta_path} was built with {flag} {existing.get(key)!r}, not {value!r}; use the same "
                    "settings to resume, another --output-dir, or --overwrite"
                )

    def _build_index_files(self, meta_path: str) -> None:
        cfg = self.cfg
        det = load_detection_json(cfg.detection_json)
        vocab = CategoryVocabulary.build(det.categories, cfg.paraphrases, cfg.paraphrase_match)
        vocab.report_missing(det.issues, det.categories)
        n = len(det.images)
        num_shards = max(1, (n + cfg.shard_size - 1) // cfg.shard_size)
        sizes, crcs = [], []
        for s in range(num_shards):
            chunk = det.images[s * cfg.shard_size:(s + 1) * cfg.shard_size]
            sizes.append(len(chunk))
            crcs.append(zlib.crc32("\n".join(image_key(r.image_id) for r in chunk).encode()))
            atomic_write_json(shard_path(cfg.output_dir, "index", s),
                              {"meta": {"stage": "index", "shard": s, "num_images": len(chunk), "complete": True},
                               "data": [r.to_json() for r in chunk]})
        meta = {
            "detection_json": os.path.abspath(cfg.detection_json), "num_images": n, "shard_size": cfg.shard_size,
            "num_shards": num_shards, "shard_num_images": sizes, "shard_crc": crcs, "categories": det.categories,
            "vocabulary": vocab.to_json(), "paraphrases": cfg.paraphrases,
            "paraphrase_match": cfg.paraphrase_match, **det.issues.to_meta(),
        }
        atomic_write_json(meta_path, meta)

    @property
    def vocab(self) -> CategoryVocabulary:
        return CategoryVocabulary.from_json(self.meta["vocabulary"])

    # ------------------------------------------------------------------ stage 1
    def run_captions(self) -> None:
        """Captions per shard: split from a captions JSON (rank 0 does all shards) or generated (distributed)."""
        cfg = self.cfg
        if cfg.captions_json:
            if self.rank == 0:
                self._captions_from_json()
            self.barrier()
            return
        if not cfg.captioner and self._captioner is None:
            raise ValueError("the captions stage needs a captions JSON (--captions) or a captioner (--captioner)")
        todo = self._pending("captions")
        if not todo:
            return
        if self._captioner is None:
            self._captioner = build_captioner(cfg.captioner, **_with_device(cfg.captioner_kwargs))
        captioner = self._captioner
        bs = max(1, getattr(captioner, "batch_size", 1))
        bar = self._bar("captions", todo)
        for shard in todo:
            issues = IssueLog()
            out: dict[str, list[str]] = {}
            recs, imgs = [], []
            for r, image, problem in self._image_loader(self._shard_images(shard), captioner.needs_images, True):
                if image is None and captioner.needs_images:
                    issues.add("image_file_unreadable", f"image {r.image_id}: {problem}")
                    bar.update(1)
                    continue
                recs.append(r)
                imgs.append(image)
                if len(recs) == bs:
                    self._caption_batch(captioner, recs, imgs, out, issues)
                    bar.update(len(recs))
                    recs, imgs = [], []
            if recs:
                self._caption_batch(captioner, recs, imgs, out, issues)
                bar.update(len(recs))
            self._write_shard("captions", shard, out, issues, {"captions": sum(len(v) for v in out.values())})
        bar.close()

    @staticmethod
    def _caption_batch(captioner: Captioner, recs: list[ImageRecord], imgs: list, out: dict, issues: IssueLog):
        caps = captioner.caption(imgs, [r.to_json() for r in recs])
        if len(caps) != len(recs):
            raise ValueError(f"captioner returned {len(caps)} caption lists for {len(recs)} images")
        for r, c in zip(recs, caps):
            out[image_key(r.image_id)] = list(c)
            if not c:
                issues.add("image_without_captions", f"image {r.image_id}: the captioner gave no caption")

    def _captions_from_json(self) -> None:
        cfg = self.cfg
        todo = self._pending("captions", all_shards=True)
        if not todo:
            return
        captions = load_captions_json(cfg.captions_json)
        known = set()
        for s in range(self.num_shards):
            known.update(image_key(d["image_id"]) for d in read_shard(cfg.output_dir, "index", s)["data"])
        global_issues = IssueLog()
        for k in captions:
            if k not in known:
                global_issues.add("caption_image_not_in_detection_file",
                                  f"image {k} of {cfg.captions_json} is not in {cfg.detection_json}")
        atomic_write_json(self._path("captions", "global_issues.json"), global_issues.to_meta())
        bar = tqdm(total=sum(self.meta["shard_num_images"][i] for i in todo), desc="[rank 0] captions (json)",
                   unit="img", disable=not cfg.progress, dynamic_ncols=True, mininterval=1.0)
        for shard in todo:
            issues = IssueLog()
            out = {}
            for r in self._shard_images(shard):
                k = image_key(r.image_id)
                if k not in captions:
                    issues.add("image_without_captions", f"image {r.image_id} has no caption in {cfg.captions_json}")
                    out[k] = []
                else:
                    out[k] = list(captions[k])
                bar.update(1)
            self._write_shard("captions", shard, out, issues, {"captions": sum(len(v) for v in out.values())})
        bar.close()

    def _image_path(self, r: ImageRecord) -> str:
        if self.cfg.image_id_to_filepath:
            if not hasattr(self, "_id2path"):
                self._id2path = _read_id_to_path(self.cfg.image_id_to_filepath)
            rel = self._id2path.get(image_key(r.image_id), r.file_name)
        else:
            rel = r.file_name
        return os.path.join(self.cfg.image_root, rel)

    def _image_loader(self, records: list[ImageRecord], needs_images: bool, as_pil: bool = False):
        """Iterate (record, image or None, problem or None), decoding images in ``num_workers`` processes."""
        paths = [self._image_path(r) for r in records] if needs_images else [None] * len(records)
        return torch.utils.data.DataLoader(_ImageDataset(records, paths, needs_images, as_pil), batch_size=None,
                                           num_workers=self.cfg.num_workers if records else 0)

    # ------------------------------------------------------------------ stage 2
    def run_parse(self, chunk_images: int = 64) -> None:
        """Parse every caption of each shard into entity spans and relations (spaCy batched per image chunk)."""
        todo = self._pending("parse")
        if not todo:
            return
        parser = get_parser(self.cfg.spacy_model)
        bar = self._bar("parse", todo)
        for shard in todo:
            caps = self._read_prev("captions", shard)["data"]
            issues = IssueLog()
            cache: dict[str, dict] = {}
            out = {}
            n_caps = n_rels = 0
            images = self._shard_images(shard)
            for start in range(0, len(images), chunk_images):
                chunk = images[start:start + chunk_images]
                cleaned = {image_key(r.image_id): clean_captions(r.image_id, caps.get(image_key(r.image_id), []),
                                                                 issues) for r in chunk}
                new = list(dict.fromkeys(c for cs in cleaned.values() for c in cs if c not in cache))
                for c, g in zip(new, parse_captions(new, parser)):
                    cache[c] = g.to_json()
                for k, cs in cleaned.items():
                    out[k] = [cache[c] for c in cs]
                    n_caps += len(cs)
                    n_rels += sum(len(cache[c]["relations"]) for c in cs)
                bar.update(len(chunk))
            self._write_shard("parse", shard, out, issues, {"parsed_captions": n_caps, "parsed_relations": n_rels})
        bar.close()

    # ------------------------------------------------------------------ stage 3
    def run_match(self) -> None:
        """Match entities to categories and build grouped candidate pairs for each image."""
        todo = self._pending("match")
        if not todo:
            return
        vocab = self.vocab
        id_to_index = vocab.id_to_index
        cfg = self.cfg
        bar = self._bar("match", todo)
        for shard in todo:
            parsed = self._read_prev("parse", shard)["data"]
            issues = IssueLog()
            stats = {"parsed_relations": 0, "kept_relations": 0, "unique_triplets": 0, "candidate_pairs": 0,
                     "groups": 0, "images_with_candidates": 0, "images_without_boxes": 0}
            out = {}
            for r in self._shard_images(shard):
                k = image_key(r.image_id)
                graphs = [CaptionGraph(g["entities"], g["relations"]) for g in parsed.get(k, [])]
                cats = [id_to_index[c] for c in r.category_ids]
                if not cats:
                    stats["images_without_boxes"] += 1
                triplets, counts = match_image_triplets(cats, graphs, vocab)
                pairs, texts = build_candidate_pairs(cats, triplets)
                groups = group_candidates(pairs, texts, cfg.group_size)
                out[k] = groups
                stats["parsed_relations"] += counts["parsed_relations"]
                stats["kept_relations"] += counts["kept_relations"]
                stats["unique_triplets"] += len(triplets)
                stats["candidate_pairs"] += len(pairs)
                stats["groups"] += len(groups)
                stats["images_with_candidates"] += bool(groups)
                bar.update(1)
            self._write_shard("match", shard, out, issues, stats)
        bar.close()

    # ------------------------------------------------------------------ stage 4
    def run_tag(self) -> None:
        """Score the candidate groups with the relation tagger; keep (pair, text) scores above the threshold."""
        todo = self._pending("tag")
        if not todo:
            return
        cfg = self.cfg
        if self._tagger is None:
            self._tagger = build_relation_tagger(cfg.tagger, **_with_device(cfg.tagger_kwargs))
        tagger = self._tagger
        vocab = self.vocab
        id_to_index = vocab.id_to_index
        bar = self._bar("tag", todo)
        for shard in todo:
            groups = self._read_prev("match", shard)["data"]
            images = self._shard_images(shard)
            issues = IssueLog()
            out = {image_key(r.image_id): [] for r in images}
            work = [r for r in images if groups.get(image_key(r.image_id))]
            bar.update(len(images) - len(work))
            n_kept = 0
            for r, image, problem in self._image_loader(work, getattr(tagger, "needs_images", True)):
                if problem and image is None:
                    issues.add("image_file_unreadable", f"image {r.image_id}: {problem}")
                    bar.update(1)
                    continue
                if problem:
                    issues.add("image_size_mismatch", f"image {r.image_id}: {problem}")
                boxes = torch.tensor(r.boxes, dtype=torch.float32).reshape(-1, 4)
                boxes[:, 2:] += boxes[:, :2]
                labels = torch.tensor([id_to_index[c] for c in r.category_ids], dtype=torch.int64)
                kept = tag_image(tagger, image, boxes, labels, vocab.names, groups[image_key(r.image_id)],
                                 cfg.score_threshold, cfg.groups_per_batch)
                out[image_key(r.image_id)] = kept
                n_kept += len(kept)
                bar.update(1)
            self._write_shard("tag", shard, out, issues, {"tagged_relations": n_kept,
                                                          "tagged_images": len(work)})
        bar.close()

    # ------------------------------------------------------------------ stage 5
    def run_write(self) -> None:
        """Write each shard's VG-style entries (ids numbered from the start ids within the shard)."""
        todo = self._pending("write")
        cfg = self.cfg
        names = self.vocab.names
        id_to_index = self.vocab.id_to_index
        bar = self._bar("write", todo) if todo else None
        for shard in todo:
            tagged = self._read_prev("tag", shard)["data"]
            issues = IssueLog()
            entries = []
            next_obj, next_rel = cfg.start_object_id, cfg.start_relationship_id
            dropped = 0
            for r in self._shard_images(shard):
                rels = tagged.get(image_key(r.image_id), [])
                if not rels and not cfg.keep_images_without_relations:
                    dropped += 1
                    bar.update(1)
                    continue
                obj_names = [names[id_to_index[c]] for c in r.category_ids]
                e, next_obj, next_rel = build_vg_entry(r, obj_names, rels, cfg.dataset_name, cfg.data_split,
                                                       next_obj, next_rel)
                entries.append(e)
                bar.update(1)
            self._write_shard("write", shard, entries, issues, {"images_written": len(entries),
                                                                "images_without_relations_dropped": dropped})
        if bar is not None:
            bar.close()

    def run_merge(self) -> dict | None:
        """Rank 0: merge the write shards into the final file and write ``summary.json``. Returns the summary."""
        if self.rank != 0:
            return None
        cfg = self.cfg
        missing = [i for i in range(self.num_shards)
                   if not is_shard_complete(cfg.output_dir, "write", i, self._expect(i))]
        if missing:
            raise RuntimeError(f"cannot merge: write shards {missing[:10]} (of {len(missing)}) are not finished; "
                               "run the earlier stages first")
        final = self._path(cfg.final_name)

        def entries():
            for i in tqdm(range(self.num_shards), desc="merge", unit="shard", disable=not cfg.progress):
                yield self._read_prev("write", i)["data"]

        out_stats = merge_shards(entries(), final, cfg.start_object_id, cfg.start_relationship_id)
        summary = self.collect_summary(out_stats)
        atomic_write_json(self._path("summary.json"), summary, indent=1)
        print(format_summary(summary), flush=True)
        return summary

    def collect_summary(self, out_stats: dict) -> dict:
        """Add up stage statistics and bad-input counts from all stage shard files."""
        issues = IssueLog()
        issues.update(self.meta.get("issues", {}), self.meta.get("issue_examples", {}))
        g = self._path("captions", "global_issues.json")
        if os.path.isfile(g):
            gi = read_json(g)
            issues.update(gi["issues"], gi["issue_examples"])
        stage_stats = {}
        for stage in STAGES[:-1]:
            per = []
            for i in range(self.num_shards):
                p = shard_path(self.cfg.output_dir, stage, i)
                if os.path.isfile(p):
                    m = read_json(p)["meta"]
                    per.append(m.get("stats", {}))
                    issues.update(m.get("issues", {}), m.get("issue_examples", {}))
            stage_stats[stage] = merge_counters(per)
        return {
            "final_file": self.cfg.final_name,
            "detection_images": self.meta["num_images"],
            "num_shards": self.num_shards,
            "output": out_stats,
            "stages": stage_stats,
            "issues": dict(issues.counts),
            "issue_examples": issues.examples,
        }

    def remove_stale_temp_files(self) -> None:
        """Delete the temporary files that a killed run left in the output folders (never those of a
        process still writing)."""
        removed = []
        for d in [self.cfg.output_dir] + [self._path(stage) for stage in ("index",) + STAGES[:-1]]:
            if os.path.isdir(d):
                removed += remove_stale_temp_files(d)
        if removed:
            logger.info("[rank %d] removed %d temporary file(s) left by an interrupted run, e.g. %s", self.rank,
                        len(removed), removed[0])

    # ------------------------------------------------------------------ driver
    def run(self, stages: Sequence[str] = STAGES) -> dict | None:
        """Run the requested stages in pipeline order (the index is built first when missing)."""
        unknown = [s for s in stages if s not in STAGES]
        if unknown:
            raise ValueError(f"unknown stage(s) {unknown}; choose from {STAGES}")
        self.remove_stale_temp_files()
        self.build_index()
        summary = None
        for stage in STAGES:
            if stage not in stages:
                continue
            if stage == "merge":
                self.barrier()
                summary = self.run_merge()
            else:
                getattr(self, f"run_{stage}")()
        self.barrier()
        return summary


def _read_id_to_path(path: str) -> dict[str, str]:
    """``{image_id: relative path}`` (Objects365's image_id_to_filepath.json); paths must stay under the root."""
    data = read_json(path, "image_id_to_filepath file")
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object {{image_id: relative path}}")
    for k, v in data.items():
        if not isinstance(v, str) or not v or path_escapes_root(v):
            raise ValueError(f"{path}: image {k!r}: the path must be relative to --image-root without '..', "
                             f"got {v!r}")
    return {image_key(k): v for k, v in data.items()}


def _with_device(kwargs: dict) -> dict:
    """Add ``device="cuda:<current>"`` to builder kwargs when CUDA is available and none is given."""
    kwargs = dict(kwargs)
    if torch.cuda.is_available():
        kwargs.setdefault("device", f"cuda:{torch.cuda.current_device()}")
    return kwargs


class _ImageDataset(torch.utils.data.Dataset):
    """Loads (record, image, problem message or None) for the captioning and tagging stages.

    The image is a uint8 (3, H, W) RGB tensor (a PIL RGB image with ``as_pil``), or None when the file is
    missing or unreadable or when ``needs_images`` is False. A size that differs from the detection
    file's gives the image plus a message (boxes are in the detection file's coordinates).
    """

    def __init__(self, records: list[ImageRecord], paths: list[str | None], needs_images: bool, as_pil: bool):
        self.records = records
        self.paths = paths
        self.needs_images = needs_images
        self.as_pil = as_pil

    def __len__(self):
        return len(self.records)

    def __getitem__(self, i):
        r = self.records[i]
        if not self.needs_images:
            return r, None, None
        import numpy as np
        from PIL import Image

        path = self.paths[i]
        try:  # any bit depth -> 8-bit RGB; images above the pixel limit are refused
            im = Image.fromarray(read_image_rgb(path))
        except (OSError, ValueError) as e:
            return r, None, f"{path} ({e.__class__.__name__}: {e})"
        warning = None
        if (im.height, im.width) != (r.height, r.width):
            warning = f"{path} is {im.width}x{im.height} but the detection file says {r.width}x{r.height}"
        if self.as_pil:
            return r, im, warning
        return r, torch.from_numpy(np.asarray(im).copy()).permute(2, 0, 1), warning


def run_pipeline(cfg: PipelineConfig, stages: Sequence[str] = STAGES, **kwargs) -> dict | None:
    """Build a :class:`PseudoLabelPipeline` for this process and run ``stages``."""
    return PseudoLabelPipeline(cfg, **kwargs).run(stages)


def config_to_dict(cfg: PipelineConfig) -> dict:
    return dataclasses.asdict(cfg)
