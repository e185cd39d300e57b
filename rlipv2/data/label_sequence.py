"""Label sequences: the label texts the model classifies against (docs/interfaces.md, contract 3).

``texts = object_labels + ["no objects"] + relation_labels`` with
``num_object_labels = len(object_labels)``.

- Test and fine-tuning (:meth:`LabelSequenceBuilder.fixed`): the dataset vocabulary, so a
  predicted label index equals the contiguous id.
- Pre-training (:meth:`LabelSequenceBuilder.pretraining`): the de-duplicated merge of the batch's
  ``object_texts`` / ``predicate_texts`` (in order of appearance), padded with negatives sampled
  by corpus frequency without replacement up to ``num_labels`` in all (default 500, of which
  ``int(500 * 2 / 3) = 333`` objects and 167 relations); when the batch already has more unique
  labels than a target, nothing is sampled (the sequence is then longer). This is RLIP's Label
  Sequence Extension (LSE), ``engine.py::merge_batch_data`` in the official code.

Sampling is deterministic under the builder's seed (a NumPy generator advanced per batch; pass
``seed=`` to :meth:`LabelSequenceBuilder.__call__` to make one batch independent of history).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

NO_OBJECTS = "no objects"

__all__ = ["NO_OBJECTS", "LabelSequence", "LabelSequenceBuilder", "build_label_sequence"]


@dataclass
class LabelSequence:
    """A label sequence and the batch's targets re-indexed into it.

    Attributes:
        texts: ``object_labels + ["no objects"] + relation_labels``.
        num_object_labels: number of object labels (the index of "no objects").
        targets: one dict per image: ``labels`` int64 (K,) index of each instance's object label
            in ``texts`` (0..num_object_labels-1); ``relations`` int64 (R, 3) (subject, object,
            predicate) with the predicate indexing the relation labels (0..num_relation_labels-1,
            i.e. ``texts[num_object_labels + 1 + p]``); ``relation_confidence`` float32 (R,).
    """

    texts: list[str]
    num_object_labels: int
    targets: list[dict] = field(default_factory=list)

    @property
    def object_labels(self) -> list[str]:
        return self.texts[: self.num_object_labels]

    @property
    def relation_labels(self) -> list[str]:
        return self.texts[self.num_object_labels + 1 :]

    @property
    def num_relation_labels(self) -> int:
        return len(self.texts) - self.num_object_labels - 1


class LabelSequenceBuilder:
    """Builds :class:`LabelSequence` objects for batches of mapped inputs (contract 2).

    Use :meth:`fixed` for test / fine-tuning and :meth:`pretraining` for relational pre-training.
    """

    def __init__(
        self,
        mode: str,
        *,
        object_labels: Sequence[str] = (),
        relation_labels: Sequence[str] = (),
        object_frequencies: Sequence[float] | None = None,
        relation_frequencies: Sequence[float] | None = None,
        num_labels: int = 500,
        object_fraction: float = 2 / 3,
        sampling: str = "freq",
        seed: int = 0,
    ):
        if mode not in ("fixed", "pretraining"):
            raise ValueError(f"mode must be 'fixed' or 'pretraining', got {mode!r}")
        if sampling not in ("freq", "uniform"):
            raise ValueError(f"sampling must be 'freq' or 'uniform', got {sampling!r}")
        self.mode = mode
        self.object_labels = list(object_labels)
        self.relation_labels = list(relation_labels)
        self.object_frequencies = None if object_frequencies is None else np.asarray(object_frequencies, np.float64)
        self.relation_frequencies = (
            None if relation_frequencies is None else np.asarray(relation_frequencies, np.float64)
        )
        for labels, freq, what in (
            (self.object_labels, self.object_frequencies, "object"),
            (self.relation_labels, self.relation_frequencies, "relation"),
        ):
            if freq is not None and len(freq) != len(labels):
                raise ValueError(f"{what} frequencies ({len(freq)}) do not match the {what} labels ({len(labels)})")
        self.num_labels = num_labels
        self.num_object_target = int(num_labels * object_fraction)
        self.num_relation_target = num_labels - self.num_object_target
        self.sampling = sampling
        self.seed = seed
        self._rng = np.random.default_rng(seed)
        self._obj_index = {t: i for i, t in enumerate(self.object_labels)}
        self._rel_index = {t: i for i, t in enumerate(self.relation_labels)}

    # ------------------------------------------------------------------------------------------
    @classmethod
    def fixed(cls, object_labels: Sequence[str], relation_labels: Sequence[str]) -> LabelSequenceBuilder:
        """The fixed dataset vocabulary (e.g. ``thing_classes``, ``predicate_classes``)."""
        return cls("fixed", object_labels=object_labels, relation_labels=relation_labels)

    @classmethod
    def from_metadata(cls, metadata, mode: str = "fixed", **kwargs) -> LabelSequenceBuilder:
        """From a dataset's metadata: its class lists, and its frequencies in pre-training mode."""
        if mode == "fixed":
            return cls.fixed(metadata.thing_classes, metadata.predicate_classes)
        return cls.pretraining(
            metadata.thing_classes,
            metadata.predicate_classes,
            metadata.get("object_frequencies"),
            metadata.get("predicate_frequencies"),
            **kwargs,
        )

    @classmethod
    def pretraining(
        cls,
        object_vocabulary: Sequence[str],
        relation_vocabulary: Sequence[str],
        object_frequencies: Sequence[float] | None = None,
        relation_frequencies: Sequence[float] | None = None,
        *,
        num_labels: int = 500,
        object_fraction: float = 2 / 3,
        sampling: str = "freq",
        seed: int = 0,
    ) -> LabelSequenceBuilder:
        """Per-batch merge + negatives sampled from the vocabularies (by frequency by default)."""
        return cls(
            "pretraining",
            object_labels=object_vocabulary,
            relation_labels=relation_vocabulary,
            object_frequencies=object_frequencies,
            relation_frequencies=relation_frequencies,
            num_labels=num_labels,
            object_fraction=object_fraction,
            sampling=sampling,
            seed=seed,
        )

    # ------------------------------------------------------------------------------------------
    def __call__(self, batch: Sequence[dict], seed: int | None = None) -> LabelSequence:
        """Build the sequence of a batch of mapped inputs (each with ``object_texts``,
        ``predicate_texts``, ``relations`` and optionally ``relation_confidence``)."""
        if self.mode == "fixed":
            return self._targets(self.object_labels, self.relation_labels, batch, self._obj_index, self._rel_index)
        rng = np.random.default_rng(seed) if seed is not None else self._rng
        objs: dict[str, int] = {}
        rels: dict[str, int] = {}
        for x in batch:
            for t in x["object_texts"]:
                objs.setdefault(t, len(objs))
            for t in x["predicate_texts"]:
                rels.setdefault(t, len(rels))
        obj_labels = list(objs)
        rel_labels = list(rels)
        obj_labels += self._sample(rng, self.object_labels, self.object_frequencies, objs, self.num_object_target)
        rel_labels += self._sample(rng, self.relation_labels, self.relation_frequencies, rels, self.num_relation_target)
        return self._targets(obj_labels, rel_labels, batch)

    def _sample(self, rng, vocab: list[str], freq, present: dict, target: int) -> list[str]:
        need = target - len(present)
        if need <= 0 or not vocab:
            return []
        cand = np.array([i for i, t in enumerate(vocab) if t not in present], dtype=np.int64)
        if cand.size == 0:
            return []
        if self.sampling == "freq" and freq is not None:
            p = freq[cand].astype(np.float64)
            p = np.where(p > 0, p, 0.0)
            nz = int((p > 0).sum())
            if nz == 0:
                p = None
            else:
                if nz < need:  # fewer labels with non-zero frequency than needed: take them all
                    return [vocab[i] for i in cand[p > 0]]
                p = p / p.sum()
        else:
            p = None
        k = min(need, cand.size)
        chosen = rng.choice(cand, size=k, replace=False, p=p)
        return [vocab[i] for i in chosen]

    @staticmethod
    def _targets(obj_labels, rel_labels, batch, obj_index=None, rel_index=None) -> LabelSequence:
        obj_index = obj_index or {t: i for i, t in enumerate(obj_labels)}
        rel_index = rel_index or {t: i for i, t in enumerate(rel_labels)}
        targets = []
        for x in batch:
            try:
                labels = torch.as_tensor([obj_index[t] for t in x["object_texts"]], dtype=torch.int64)
                preds = [rel_index[t] for t in x["predicate_texts"]]
            except KeyError as e:
                raise KeyError(
                    f"label text {e} of image {x.get('file_name', '?')!r} is not in the label sequence"
                ) from None
            rels = torch.as_tensor(x["relations"], dtype=torch.int64).reshape(-1, 3).clone()
            if len(preds) != rels.shape[0]:
                raise ValueError(
                    f"{x.get('file_name', '?')}: {rels.shape[0]} relations but {len(preds)} predicate texts"
                )
            if rels.shape[0]:
                rels[:, 2] = torch.as_tensor(preds, dtype=torch.int64)
            conf = x.get("relation_confidence")
            conf = torch.ones(rels.shape[0]) if conf is None else torch.as_tensor(conf, dtype=torch.float32)
            targets.append({"labels": labels.reshape(-1), "relations": rels, "relation_confidence": conf})
        texts = list(obj_labels) + [NO_OBJECTS] + list(rel_labels)
        return LabelSequence(texts=texts, num_object_labels=len(obj_labels), targets=targets)


def build_label_sequence(
    batch: Sequence[dict],
    *,
    object_labels: Sequence[str] | None = None,
    relation_labels: Sequence[str] | None = None,
    object_frequencies: Sequence[float] | None = None,
    relation_frequencies: Sequence[float] | None = None,
    num_labels: int = 500,
    seed: int = 0,
    mode: str = "fixed",
) -> LabelSequence:
    """One-call form: ``mode="fixed"`` with the vocabularies, or ``mode="pretraining"``."""
    if mode == "fixed":
        return LabelSequenceBuilder.fixed(object_labels or [], relation_labels or [])(batch)
    b = LabelSequenceBuilder.pretraining(
        object_labels or [],
        relation_labels or [],
        object_frequencies,
        relation_frequencies,
        num_labels=num_labels,
        seed=seed,
    )
    return b(batch, seed=seed)
