#!/usr/bin/env python
"""Probe the entry points with a corpus of bad inputs and count what happens to each.

    python tools/probe_bad_inputs.py [--seeds 4] [--only GROUP] [--json OUT.json] [--list]

The corpus: every one-rule violation of every record schema (``rlipv2/schemas/violations.py``) with
``--seeds`` random base files, sent through each entry point that reads that format (dataset loaders,
evaluation readers, pseudo-labelling readers), plus the hand-written cases of issue 15 (memory bounds,
numeric options, checkpoints and resume, image bit depths, op NaN agreement, messages).

Each case ends in one outcome:

* ``handled``: refused with one line naming the file / record / field (an input error: ValueError,
  KeyError, OSError, SystemExit 2 from argparse), or accepted with the documented result (a dropped
  record counted, a correct conversion);
* ``unclear``: refused, but the message does not name what the case expects;
* ``crash``: any other exception (a traceback for the user);
* ``silent``: accepted where it must be refused, or a wrong result;
* ``exhaustion``: ran out of the memory bound (address space of the probe + 3 GB) or of time (60 s).

The probe process caps its own address space, so a case that would take 24 GB fails here with a
MemoryError instead of starving the machine. Exit status 1 when any case is not ``handled``.
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import io
import json
import os
import random
import resource
import signal
import sys
import tempfile
import time
import zipfile
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # this checkout's rlipv2

import numpy as np  # noqa: E402

OUTCOMES = ("handled", "unclear", "crash", "silent", "exhaustion")
INPUT_ERRORS = (ValueError, KeyError, OSError, EOFError)
CASE_SECONDS = 60


@dataclass
class Case:
    """``run(tmp)`` performs the call; ``refuse``: the input must be refused (else: accepted and checked by
    ``run`` itself, which raises AssertionError on a wrong result); ``expect``: text the refusal names."""

    group: str
    name: str
    run: Callable[[Path], object]
    refuse: bool = True
    expect: str | None = None


class _Timeout(Exception):
    pass


def _classify(case: Case, tmp: Path) -> tuple[str, str]:
    def alarm(*_):
        raise _Timeout()

    signal.signal(signal.SIGALRM, alarm)
    signal.alarm(CASE_SECONDS)
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()) as err:
            case.run(tmp)
    except _Timeout:
        return "exhaustion", f"more than {CASE_SECONDS} s"
    except MemoryError:
        return "exhaustion", "MemoryError"
    except SystemExit as e:  # argparse: exit status 2 with a usage line
        if not case.refuse:
            return "crash", f"SystemExit({e.code})"
        msg = err.getvalue().strip().splitlines()[-1:] or [""]
        ok = e.code == 2 and (case.expect is None or case.expect in msg[0])
        return ("handled" if ok else "unclear"), msg[0][:160]
    except AssertionError as e:
        return "silent", f"wrong result: {str(e)[:160]}"
    except INPUT_ERRORS as e:
        text = str(e.args[0] if isinstance(e, KeyError) and e.args else e)
        if "allocate" in text.lower() or "out of memory" in text.lower():
            return "exhaustion", text[:160]
        if not case.refuse:
            return "silent", f"refused an input it must accept: {text[:160]}"
        if case.expect is not None and case.expect not in text:
            return "unclear", f"{type(e).__name__}: {text[:160]}"
        return "handled", f"{type(e).__name__}: {text.splitlines()[0][:160] if text else ''}"
    except RuntimeError as e:
        if "allocate" in str(e).lower():
            return "exhaustion", str(e)[:160]
        return "crash", f"RuntimeError: {str(e)[:160]}"
    except Exception as e:  # noqa: BLE001 - anything else is a traceback for the user
        return "crash", f"{type(e).__name__}: {str(e)[:160]}"
    finally:
        signal.alarm(0)
    return ("silent", "accepted") if case.refuse else ("handled", "accepted with the documented result")


# ------------------------------------------------------------------------------------------ the corpus
def _dump(path: Path, obj) -> str:
    path.write_text(json.dumps(obj))
    return str(path)


def _schema_cases(seeds: int) -> list[Case]:
    from rlipv2.schemas.violations import SCHEMAS, VIOLATIONS, valid_records

    cases = []
    for v in VIOLATIONS:
        _, ctx, _ = SCHEMAS[v.schema]
        for seed in range(seeds):
            rng = random.Random(seed)
            records = valid_records(v.schema, rng)
            _, field = v.apply(records, rng)
            for entry, run, refuse in _entry_points(v.schema, records, ctx):
                if entry == "evaluation GT reader" and v.rule == "image path escapes the root":
                    continue  # the evaluators match file names, they never open them: no path rule there
                cases.append(Case(f"schema:{v.schema}", f"{entry}: {v.rule} (seed {seed})", run, refuse,
                                  expect=f"'{field}" if refuse else None))
    return cases


def _entry_points(schema: str, records: list, ctx: dict):
    """(entry point name, run(tmp), must refuse) for the readers of one format."""
    recs = copy.deepcopy(records)
    if schema in ("hico", "oi"):
        key = "hoi_annotation" if schema == "hico" else "rel_annotations"

        def loader(tmp):
            from rlipv2.data.datasets.hoi_format import load_hoi_json

            load_hoi_json(_dump(tmp / "ann.json", recs), str(tmp), object_id_map={i: i for i in ctx["object_ids"]},
                          predicate_id_map={i: i for i in ctx["predicate_ids"]}, relation_key=key, read_sizes=False)

        yield "dataset loader", loader, True

        def evaluator(tmp):
            from rlipv2.evaluation.hico_io import IdMaps, gt_from_json
            from rlipv2.evaluation.oi import load_oi_gt

            if schema == "hico":
                ids = IdMaps(sorted(ctx["object_ids"]), 1, 117)
                gt_from_json(_dump(tmp / "gt.json", recs), ids)
            else:
                load_oi_gt(_dump(tmp / "gt.json", recs), IdMaps(sorted(ctx["object_ids"]), 0, 30))

        yield "evaluation GT reader", evaluator, True
    elif schema == "vg":
        def loader(tmp):
            from rlipv2.data.datasets.visual_genome import load_vg_json

            load_vg_json(_dump(tmp / "vg.json", recs), str(tmp), read_sizes=False)

        yield "dataset loader", loader, True
    elif schema.startswith("coco_"):
        def detections(tmp):
            from rlipv2.pseudo_labeling.detection import load_detection_json

            det = {"images": [{"id": i, "file_name": f"{i}.jpg", "height": 50, "width": 50} for i in range(1, 10)],
                   "annotations": [], "categories": [{"id": 1, "name": "person"}]}
            part = schema.split("_", 1)[1]
            det[part] = recs
            issues = load_detection_json(_dump(tmp / "det.json", det)).issues
            if part == "annotations":  # bad annotations are dropped and counted, not fatal
                assert any(k.startswith("annotation_dropped_") for k in issues.counts), "bad annotation not counted"

        yield "pseudo-label detection reader", detections, schema != "coco_annotations"
    elif schema == "vcoco_actions":
        def vcoco(tmp):
            from rlipv2.evaluation.vcoco import load_vcoco_gt

            coco = {"images": [{"id": 1, "width": 64, "height": 48}], "annotations": [], "categories": [{"id": 1}]}
            (tmp / "ids").write_text("1\n")
            load_vcoco_gt(_dump(tmp / "vcoco.json", recs), _dump(tmp / "coco.json", coco), tmp / "ids")

        yield "V-COCO GT reader", vcoco, True
    elif schema == "predictions":
        def predictions(tmp):
            from rlipv2.evaluation.hico import load_predictions
            from rlipv2.evaluation.hico_core import HOIGroundTruth
            from rlipv2.evaluation.hico_io import IdMaps

            names = [r.get("file_name") for r in recs if isinstance(r.get("file_name"), str)]
            gt = HOIGroundTruth.from_images([{"file_name": n, "boxes": np.zeros((0, 4)), "labels": np.zeros(0, int),
                                              "hois": np.zeros((0, 3), int)} for n in dict.fromkeys(names)])
            ids = IdMaps(sorted(ctx.get("object_ids", (1, 18, 37, 90))), 1, 117)
            load_predictions(_dump(tmp / "pred.json", recs), gt, ids, np.ones((117, 4)), 100, "qpic")

        yield "HICO prediction reader", predictions, True


def _finding_cases() -> list[Case]:  # noqa: C901 - one small function per case, listed in order
    import torch

    cases: list[Case] = []

    def add(group, name, refuse=True, expect=None):
        def deco(fn):
            cases.append(Case(group, name, fn, refuse, expect))
            return fn
        return deco

    # ---- memory
    @add("memory", "OI CLI: category_id 300000000 with identity ids", expect="annotations[0].category_id")
    def _(tmp):
        from rlipv2.evaluation import oi

        gt = [{"file_name": "a.jpg", "annotations": [{"bbox": [0, 0, 5, 5], "category_id": 300_000_000}],
               "rel_annotations": []}]
        np.savez(tmp / "p.npz", file_names=np.array(["a.jpg"]))
        oi.main(["--gt", _dump(tmp / "gt.json", gt), "--pred", str(tmp / "p.npz")])

    @add("memory", "HICO --object-ids JSON with id 300000000", expect="class id must be an integer in")
    def _(tmp):
        from rlipv2.evaluation.hico_io import IdMaps

        IdMaps.from_spec(np.ones((3, 2)), _dump(tmp / "ids.json", [1, 300_000_000]))

    def npz_member(path, key, data: bytes):
        with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
            z.writestr(key + ".npy", data)

    def npy(shape="(4,)", descr="'<f8'", fortran="False", payload=b"\0" * 32):
        text = "{" + f"'descr': {descr}, 'fortran_order': {fortran}, 'shape': {shape}, " + "}"
        text += " " * (63 - (len(text) + 10) % 64) + "\n"
        return b"\x93NUMPY\x01\x00" + len(text).to_bytes(2, "little") + text.encode() + payload

    @add("memory", "npz zip bomb (zip directory claims 3.5 GB)", expect="declares 3,500,000,000 bytes")
    def _(tmp):
        from rlipv2.evaluation.hico_io import NpzReader

        p = tmp / "bomb.npz"
        np.savez_compressed(p, boxes_0=np.zeros((4000, 4)))
        raw = bytearray(p.read_bytes())
        pos = raw.find(b"PK\x01\x02")
        raw[pos + 24: pos + 28] = (3_500_000_000).to_bytes(4, "little")
        p.write_bytes(bytes(raw))
        NpzReader(p)["boxes_0"]

    @add("memory", "npz whose .npy header declares 80 GB", expect="declares 80,000,000,000 bytes")
    def _(tmp):
        from rlipv2.evaluation.hico_io import NpzReader

        npz_member(tmp / "h.npz", "boxes_0", npy(shape="(10000000000,)"))
        NpzReader(tmp / "h.npz")["boxes_0"]

    @add("memory", "demo: 9000x8000 image (above 64 MP)", expect="above the limit of 64,000,000")
    def _(tmp):
        from PIL import Image

        from rlipv2.engine.predictor import RelationPredictor

        Image.new("L", (9000, 8000)).save(tmp / "big.png")
        RelationPredictor(torch.nn.Linear(1, 1), device="cpu").read_image(str(tmp / "big.png"))

    @add("memory", "pure-PyTorch triplet NMS, 20,000 boxes in one group", refuse=False)
    def _(tmp):
        from rlipv2.layers import triplet_nms

        g = torch.Generator().manual_seed(0)
        xy = torch.rand(20_000, 2, generator=g) * 2000
        b = torch.cat([xy, xy + 20], 1)
        keep = triplet_nms(b, b + 1, torch.rand(20_000, generator=g), torch.zeros(20_000, dtype=torch.int64),
                           backend="pytorch")
        assert keep.any()

    # ---- pseudo-labelling output
    @add("pseudo-labelling", "a NaN value reaching the final file", expect="NaN or inf")
    def _(tmp):
        from rlipv2.pseudo_labeling.writer import merge_shards

        merge_shards([[{"image_id": 1, "objects": [{"object_id": 1, "x": float("nan"), "y": 0, "w": 1, "h": 1,
                                                    "names": "man"}], "relationships": []}]], str(tmp / "f.json"))

    @add("pseudo-labelling", "stale temporary shard of a killed run", refuse=False)
    def _(tmp):
        import subprocess

        from rlipv2.utils.file_io import remove_stale_temp_files

        dead = int(subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                                  text=True).stdout)
        stale = tmp / f".shard_00000.json.{dead}.ab12.tmp"
        stale.write_text("[")
        remove_stale_temp_files(tmp)
        assert not stale.exists(), "stale temporary file kept"

    # ---- numeric options
    options = [
        ("rlipv2.evaluation.hico", ["--gt", "g", "--pred", "p", "--correct-mat", "c"],
         [["--nms-thresh", "nan"], ["--pred-box-offset", "nan"], ["--top-k", "-1"], ["--nms-alpha", "-1"],
          ["--nms-beta", "inf"], ["--verb-offset", "7"]]),
        ("rlipv2.evaluation.oi", ["--gt", "g", "--pred", "p"], [["--num-rels", "0"], ["--num-rels", "1e9"]]),
        ("rlipv2.evaluation.vcoco", ["--vcoco-test", "v", "--coco", "c", "--ids", "i", "--det", "d"],
         [["--ovr-thresh", "nan"], ["--ovr-thresh", "2"]]),
        ("tools/demo.py", ["--config-file", "c", "--input", "i", "--objects", "o", "--relations", "r", "--output", "x"],
         [["--score-thresh", "nan"], ["--top-k", "0"], ["--nms-thresh", "-0.5"], ["--min-size", "0"],
          ["--max-pixels", "-1"]]),
        ("tools/pseudo_label.py", ["--detection-json", "d", "--output-dir", "o"],
         [["--threshold", "nan"], ["--shard-size", "0"], ["--top-p", "1.5"], ["--num-workers", "-1"],
          ["--group-size", "0"], ["--dist-timeout-hours", "0"]]),
        ("tools/convert_official_checkpoint.py", ["in.pth", "out.pth"], [["--num-queries", "-4"]]),
        ("rlipv2.data.validate", ["x.json"], [["--max-examples", "-3"]]),
    ]
    for module, required, bad_list in options:
        for bad in bad_list:
            @add("options", f"{module} {' '.join(bad)}", expect=f"argument {bad[0]}")
            def _(tmp, module=module, required=required, bad=bad):
                _parse(module, required + bad)

    # ---- checkpoints, resume and initialisation (imports inside the cases: a missing API is that case's crash)
    class Toy(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = torch.nn.Linear(3, 4), torch.nn.Linear(4, 2)

    def run_dir(tmp, data, tag="model_0000004.pth"):
        out = tmp / "run"
        out.mkdir(exist_ok=True)
        torch.save(data, out / "model_0000004.pth")
        (out / "last_checkpoint").write_text(tag)
        return out

    full = {"model": Toy().state_dict(), "trainer": {"iteration": 4, "optimizer": {"state": {}, "param_groups": []}}}

    @add("checkpoints", "init_checkpoint of another architecture", expect="matches a weight of")
    def _(tmp):
        from rlipv2.engine.checkpoint import RLIPv2Checkpointer

        torch.save({"model": {"x.weight": torch.zeros(2)}}, tmp / "w.pth")
        RLIPv2Checkpointer(Toy()).resume_or_load(str(tmp / "w.pth"), resume=False)

    for name, data, tag, expect in [
        ("--resume with an empty last_checkpoint", full, "", "is empty"),
        ("--resume with a dangling last_checkpoint", full, "model_9.pth", "which is not a file"),
        ("--resume from a model-only checkpoint", {"model": Toy().state_dict()}, "model_0000004.pth",
         "model weights only"),
        ("--resume with a negative iteration", dict(full, trainer=dict(full["trainer"], iteration=-1)),
         "model_0000004.pth", "is negative"),
        ("--resume with a float iteration", dict(full, trainer=dict(full["trainer"], iteration=3.5)),
         "model_0000004.pth", "must be an integer"),
    ]:
        @add("checkpoints", name, expect=expect)
        def _(tmp, data=data, tag=tag):
            from rlipv2.engine.checkpoint import RLIPv2Checkpointer

            RLIPv2Checkpointer(Toy(), str(run_dir(tmp, data, tag))).resume_or_load("", resume=True)

    @add("checkpoints", "--resume from a truncated checkpoint", expect="truncated or corrupt")
    def _(tmp):
        from rlipv2.engine.checkpoint import RLIPv2Checkpointer

        out = run_dir(tmp, full)
        ck = out / "model_0000004.pth"
        ck.write_bytes(ck.read_bytes()[:300])
        RLIPv2Checkpointer(Toy(), str(out)).resume_or_load("", resume=True)

    @add("checkpoints", "--resume beyond train.max_iter", expect="outside [0, train.max_iter")
    def _(tmp):
        from rlipv2.schemas.checkpoint import check_resume_iteration

        check_resume_iteration(4, 4, "model_0000004.pth")

    for name, payload, expect in [("empty checkpoint file", b"", "is empty"),
                                  ("random bytes as a .pth", bytes(range(1, 256)) * 8, "is not a PyTorch checkpoint"),
                                  ("text file as a .pth", b"hello\n", "is not a PyTorch checkpoint"),
                                  ("pickle of garbage opcodes", b"\x80\x02\xff\xfe\xfd", "is corrupt"),
                                  ("zip magic then garbage", b"PK\x03\x04" + b"\0" * 100, "truncated or corrupt")]:
        @add("checkpoints", name, expect=expect)
        def _(tmp, payload=payload):
            from rlipv2.engine.checkpoint import safe_torch_load

            (tmp / "c.pth").write_bytes(payload)
            safe_torch_load(str(tmp / "c.pth"))

    # ---- images: through the training mapper's reader
    from PIL import Image

    def read_image_rgb(path):
        from rlipv2.data.relation_dataset_mapper import read_image

        return read_image(str(path))

    @add("images", "16-bit PNG", refuse=False)
    def _(tmp):
        a = (np.arange(48 * 64).reshape(48, 64) * 21).astype(np.uint16)
        Image.fromarray(a).save(tmp / "g.png")
        out = read_image_rgb(tmp / "g.png")
        assert (out[..., 0] == (a >> 8)).all(), "16-bit values not scaled to 8 bits"

    @add("images", "32-bit float TIFF in [0, 1]", refuse=False)
    def _(tmp):
        f = np.linspace(0, 1, 48 * 64, dtype=np.float32).reshape(48, 64)
        Image.fromarray(f, mode="F").save(tmp / "f.tif")
        assert abs(float(read_image_rgb(tmp / "f.tif").mean()) - 127.5) < 1, "float image not scaled"

    for name, arr, mode, expect in [
            ("32-bit float TIFF in [0, 300]", np.full((8, 8), 300, np.float32), "F", "values in"),
            ("32-bit float TIFF with NaN", np.full((8, 8), np.nan, np.float32), "F", "NaN"),
            ("32-bit integer TIFF above 65535", np.full((8, 8), 1 << 20, np.int32), "I", "values in")]:
        @add("images", name, expect=expect)
        def _(tmp, arr=arr, mode=mode):
            Image.fromarray(arr, mode=mode).save(tmp / "x.tif")
            read_image_rgb(tmp / "x.tif")

    @add("images", "corrupt JPEG", expect="x.jpg")
    def _(tmp):
        (tmp / "x.jpg").write_bytes(b"\xff\xd8\xff\xe0 not a jpeg")
        read_image_rgb(tmp / "x.jpg")

    # ---- ops
    from rlipv2.layers import ms_deform_attn, triplet_nms
    from rlipv2.layers.multi_scale_deform_attn import _has_kernel

    if _has_kernel("cpu"):  # (without rlipv2._C there is one backend: nothing to compare)
        for bad in (float("nan"), float("inf"), -float("inf")):
            @add("ops", f"ms_deform_attn with sampling location {bad}: CPU kernel vs PyTorch", refuse=False)
            def _(tmp, bad=bad):
                g = torch.Generator().manual_seed(0)
                v = torch.rand(1, 20, 2, 4, generator=g)
                shapes, starts = torch.tensor([[4, 4], [2, 2]]), torch.tensor([0, 16])
                loc, attn = torch.rand(1, 3, 2, 2, 2, 2, generator=g), torch.rand(1, 3, 2, 2, 2, generator=g)
                loc[0, 1, 0, 1, 0, 0] = bad
                ref = ms_deform_attn(v, shapes, starts, loc, attn, backend="pytorch")
                ker = ms_deform_attn(v, shapes, starts, loc, attn, backend="cpu")
                assert torch.equal(ref.isnan(), ker.isnan()), "the kernel and the PyTorch path disagree on NaN"

    for kw in ({"thresh": float("nan")}, {"alpha": float("inf")}):
        @add("ops", f"triplet_nms({kw})", expect="must be a finite number")
        def _(tmp, kw=kw):
            b = torch.tensor([[0.0, 0, 10, 10], [1, 1, 11, 11]])
            triplet_nms(b, b, torch.tensor([0.9, 0.8]), torch.tensor([0, 0]), **kw)

    # ---- messages
    @add("messages", "VG object with w=-20", expect="objects[0].w")
    def _(tmp):
        from rlipv2.data.datasets.visual_genome import load_vg_json

        vg = [{"image_id": 1, "objects": [{"object_id": 1, "x": 0, "y": 0, "w": -20, "h": 5, "names": "man"},
                                          {"object_id": 2, "x": 0, "y": 0, "w": 5, "h": 5, "names": "dog"}],
               "relationships": [{"subject_id": 1, "object_id": 2, "predicate": "near"}]}]
        load_vg_json(_dump(tmp / "vg.json", vg), str(tmp), read_sizes=False)

    @add("messages", "atomic writes keep the umask (0644 under umask 022)", refuse=False)
    def _(tmp):
        from rlipv2.utils.file_io import atomic_write_text

        old = os.umask(0o022)
        try:
            atomic_write_text(tmp / "a.txt", "x")
        finally:
            os.umask(old)
        assert (os.stat(tmp / "a.txt").st_mode & 0o777) == 0o644, "mode 0600"

    @add("messages", "a verb file line '001 type on'", refuse=False)
    def _(tmp):
        from rlipv2.schemas.vocabulary import read_vocabulary

        (tmp / "v.txt").write_text("001 type on\n002 no_interaction\n")
        assert read_vocabulary(tmp / "v.txt").names == ("type on", "no interaction"), "label cut"

    return cases


def _parse(module: str, argv: list[str]):
    import importlib
    import importlib.util

    if module.endswith(".py"):
        path = Path(__file__).resolve().parents[1] / module
        spec = importlib.util.spec_from_file_location(path.stem + "_probe", path)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
    else:
        mod = importlib.import_module(module)
    if module.endswith("convert_official_checkpoint.py") or module == "rlipv2.data.validate":
        return mod.main(argv)
    build = getattr(mod, "build_parser", None) or mod.get_parser
    return build().parse_args(argv)


def build_corpus(seeds: int) -> list[Case]:
    return _schema_cases(seeds) + _finding_cases()


def _limit_memory(extra_bytes: int) -> None:
    """Cap the address space at the current size + ``extra_bytes``: a runaway allocation raises MemoryError."""
    with open("/proc/self/status") as f:
        vm = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmSize:"))
    resource.setrlimit(resource.RLIMIT_AS, (vm + extra_bytes, resource.getrlimit(resource.RLIMIT_AS)[1]))


def main(argv=None) -> int:
    from rlipv2.utils.cli import positive_int

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=positive_int, default=4, help="random base files per schema violation")
    p.add_argument("--only", default=None, help="run only the groups whose name starts with this")
    p.add_argument("--json", default=None, help="write every case and its outcome here")
    p.add_argument("--list", action="store_true", help="print every case with its outcome")
    p.add_argument("--memory-gb", type=positive_int, default=3, help="address space allowed above the start")
    args = p.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import logging

    logging.disable(logging.WARNING)  # loaders log skipped records; the outcome is what counts here
    corpus = [c for c in build_corpus(args.seeds) if args.only is None or c.group.startswith(args.only)]
    if sys.platform.startswith("linux"):
        _limit_memory(args.memory_gb << 30)
    results = []
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="probe_bad_inputs_") as root:
        for k, case in enumerate(corpus):
            tmp = Path(root) / f"case_{k:04d}"
            tmp.mkdir()
            outcome, detail = _classify(case, tmp)
            results.append({"group": case.group, "case": case.name, "outcome": outcome, "detail": detail})
    elapsed = time.perf_counter() - t0
    by_group: dict[str, Counter] = {}
    for r in results:
        by_group.setdefault(r["group"].split(":")[0], Counter())[r["outcome"]] += 1
    total = Counter(r["outcome"] for r in results)
    print(f"{len(results)} cases in {elapsed:.1f} s\n")
    print("| group | cases | " + " | ".join(OUTCOMES) + " |")
    print("|---|---|" + "---|" * len(OUTCOMES))
    for g, c in sorted(by_group.items()):
        print(f"| {g} | {sum(c.values())} | " + " | ".join(str(c[o]) for o in OUTCOMES) + " |")
    print(f"| **all** | **{len(results)}** | " + " | ".join(f"**{total[o]}**" for o in OUTCOMES) + " |")
    for r in results:
        if args.list or r["outcome"] != "handled":
            print(f"{r['outcome']:>10}  [{r['group']}] {r['case']}: {r['detail']}")
    if args.json:
        from rlipv2.utils.file_io import atomic_write_json

        atomic_write_json(args.json, {"cases": results, "counts": dict(total), "seconds": elapsed})
    return 0 if total["handled"] == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())
