#!/usr/bin/env python
"""RLIPv2 in miniature: R-Tagger pseudo-labels, relational pre-training and zero-/few-shot transfer, end to end.

    python tools/reproduce_mini.py [--output output/reproduce_mini] [--quick] [--threads 2] [--redo STAGE ...]

On the synthetic relation world and its pre-training sets (projects/RLIPv2/configs/mini/), it chains the
project's own commands, each logged with its command line under ``<output>/logs/``:

1. ``python -m rlipv2.data.synthetic``: the world (downstream HOI set, relation set, caption set);
2. ``tools/lazyconfig_train_net.py``: the R-Tagger, trained on the relation set;
3. ``tools/pseudo_label.py``: captions -> scene graphs -> candidate pairs -> tagging -> pseudo-labels of the
   caption set; then ``python -m rlipv2.pseudo_labeling.quality``: their precision and recall against the
   caption set's hidden true relations (used for nothing else);
4. ``tools/lazyconfig_train_net.py``: pre-training (a) on the relation set, (b) on relation set + pseudo-labels;
5. ``tools/lazyconfig_train_net.py --eval-only``: NF zero-shot of (a) and (b) with the HICO evaluator, and
   ``python -m rlipv2.engine.chance``: the same detections of (b) with random relation scores;
6. ``tools/lazyconfig_train_net.py``: fine-tuning on 1 %, 10 % and 100 % of the downstream training set from
   scratch, from (a) and from (b) (one schedule per fraction), each evaluated at its end;
7. ``tools/demo.py``: drawings of a few test predictions; then the results table (markdown and JSON), the
   plot of mAP against the fine-tuning fraction, and the check of the targets.

A finished stage is skipped on a re-run (its record under ``<output>/stages/`` holds a fingerprint of its
command and of the stages it depends on); an interrupted or changed stage runs again from its start, and so
do the stages after it. ``--quick`` runs shorter schedules and pseudo-labels part of the caption set (for
the slow test); it writes to ``<output>_quick`` unless ``--output`` is given.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import re
import shutil
import subprocess
import sys
import time
from collections import deque
from dataclasses import dataclass, field

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG_DIR = os.path.join("projects", "RLIPv2", "configs", "mini")
CONFIGS = {
    "tagger": "rtagger_tiny_mini.py",
    "pretrain_rel": "rlipv2_parseda_tiny_mini_pretrain_rel.py",
    "pretrain_rel_pseudo": "rlipv2_parseda_tiny_mini_pretrain_rel_pseudo.py",
    "zero_shot": "rlipv2_parseda_tiny_mini_hico_nf_zero_shot.py",
    "1pct": "rlipv2_parseda_tiny_mini_hico_1pct.py",
    "10pct": "rlipv2_parseda_tiny_mini_hico_10pct.py",
    "100pct": "rlipv2_parseda_tiny_mini_hico.py",
}
FRACTIONS = ("1pct", "10pct", "100pct")
STARTS = {  # starting point of fine-tuning -> (label in the table, pre-training stage or None)
    "scratch": ("no pre-training (scratch)", None),
    "rel": ('(a) relation set ("VG")', "pretrain_rel"),
    "rel_pseudo": ('(b) relation set + pseudo-labelled caption set ("VG+COCO")', "pretrain_rel_pseudo"),
}
# training iterations of each run with --quick (the full run takes the configs' train.max_iter)
QUICK_ITERATIONS = {"tagger": 200, "pretrain": 400, "1pct": 100, "10pct": 100, "100pct": 150}
QUICK_CAPTION_IMAGES = 600
TARGETS = {
    "pretrain_beats_scratch_1pct": "(b) - scratch at 1 % >= 10 mAP",
    "pretrain_beats_scratch_10pct": "(b) - scratch at 10 % >= 5 mAP",
    "zero_shot_above_chance": "NF zero-shot full mAP of (b) >= 3 x chance",
    "pseudo_helps_zero_shot": "(b) >= (a) at NF zero-shot (full mAP)",
    "pseudo_helps_1pct": "(b) >= (a) at 1 % (full mAP)",
}
# console lines worth showing while a stage runs (everything goes to its log file)
_PROGRESS = re.compile(r"eta:|Overall training speed|Evaluation results|mAP|Pseudo-label summary|precision|"
                       r"^\s*(images|relations):|error|Error|Traceback|\|\s*\d+/\d+|"
                       r"^\s*\d\.\d+\s+\d+\s+[\d.]+%\s+[\d.]+%$")  # the pseudo-label precision/recall curve


@dataclass
class Stage:
    """One step of the reproduction: a command of the project, its outputs and what it depends on."""

    name: str
    title: str
    cmd: list[str]
    outputs: list[str]
    after: list[str] = field(default_factory=list)
    iterations: int = 0  # training iterations, for the ETA
    images: int = 0  # images processed per image (pseudo-labelling), for the ETA


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--output", default=None,
                   help="output directory (default: output/reproduce_mini, or output/reproduce_mini_quick "
                        "with --quick, in the repository)")
    p.add_argument("--quick", action="store_true",
                   help=f"short schedules {QUICK_ITERATIONS} and {QUICK_CAPTION_IMAGES} caption images")
    p.add_argument("--threads", type=_positive_int, default=2, help="torch threads of every stage (default 2)")
    p.add_argument("--redo", nargs="*", default=[], metavar="STAGE",
                   help="run these stages (and the ones after them) again even if finished")
    p.add_argument("--list", action="store_true", help="print the stages and their commands, run nothing")
    return p


def _positive_int(text: str) -> int:
    v = int(text)
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {v}")
    return v


def _load_world():
    """The world of the mini configs (``world`` of the base config) as a SyntheticWorldConfig."""
    from detectron2.config import LazyConfig

    from rlipv2.data.synthetic import SyntheticWorldConfig

    cfg = LazyConfig.load(os.path.join(REPO, CONFIG_DIR, CONFIGS["100pct"]))
    world = {k: v for k, v in dict(cfg.world).items() if k != "prefix"}
    return SyntheticWorldConfig(**world)


def schedule(quick: bool) -> dict[str, int]:
    """Training iterations of each kind of run: ``QUICK_ITERATIONS``, or the configs' ``train.max_iter``."""
    if quick:
        return dict(QUICK_ITERATIONS)
    from detectron2.config import LazyConfig

    key_of = {"tagger": "tagger", "pretrain": "pretrain_rel", "1pct": "1pct", "10pct": "10pct", "100pct": "100pct"}
    return {k: int(LazyConfig.load(os.path.join(REPO, CONFIG_DIR, CONFIGS[c])).train.max_iter)
            for k, c in key_of.items()}


def build_plan(out: str, quick: bool, threads: int) -> list[Stage]:
    """Every stage of the run, in order."""
    from rlipv2.data.synthetic import caption_set_files

    world = _load_world()
    files = caption_set_files(world)
    it = schedule(quick)
    py = sys.executable
    train_net = [py, os.path.join("tools", "lazyconfig_train_net.py")]

    def cfg(key):
        return os.path.join(CONFIG_DIR, CONFIGS[key])

    def train(key, output, iters, *extra):
        return [*train_net, "--config-file", cfg(key), f"train.output_dir={output}", "train.device=cpu",
                f"train.max_iter={iters}", *extra]

    stages = [
        Stage("world", "the synthetic world with its relation set and caption set",
              [py, "-m", "rlipv2.data.synthetic", "--image-size", str(world.image_size),
               "--num-train", str(world.num_train), "--num-test", str(world.num_test), "--num-vg", str(world.num_vg),
               "--max-people", str(world.max_people), "--pretraining-sets", "--num-coco", str(world.num_coco)],
              [files["detections"]]),
        Stage("tagger", "R-Tagger trained on the relation set",
              train("tagger", f"{out}/tagger", it["tagger"]), [f"{out}/tagger/model_final.pth"],
              after=["world"], iterations=it["tagger"]),
    ]
    detections, captions, n_caption = files["detections"], files["captions"], world.num_coco
    if quick:
        stages.append(Stage(
            "caption_subset", f"the first {QUICK_CAPTION_IMAGES} images of the caption set",
            [py, os.path.join("tools", "reproduce_mini.py"), "--subset-caption-set", f"{out}/caption_subset",
             str(QUICK_CAPTION_IMAGES)],
            [f"{out}/caption_subset/detections.json"], after=["world"]))
        detections, captions = f"{out}/caption_subset/detections.json", f"{out}/caption_subset/captions.json"
        n_caption = QUICK_CAPTION_IMAGES
    pseudo = f"{out}/pseudo_labels/pseudo_relations.json"
    stages += [
        Stage("pseudo_labels", "pseudo-labels of the caption set (caption, parse, match, tag, write)",
              [py, os.path.join("tools", "pseudo_label.py"), "--detection-json", detections,
               "--image-root", files["images"], "--captions", captions, "--paraphrases", files["paraphrases"],
               "--tagger", "LazyConfigTagger", "--tagger-config", cfg("tagger"),
               "--tagger-weights", f"{out}/tagger/model_final.pth", "--tagger-opt", f"min_size={world.image_size}",
               "--tagger-opt", f"max_size={2 * world.image_size}", "--group-size", "16",
               "--dataset-name", "synthetic_coco", "--output-dir", f"{out}/pseudo_labels", "--num-workers", "1",
               "--overwrite", "--no-progress"],
              [pseudo], after=["tagger"] + (["caption_subset"] if quick else []), images=n_caption),
        Stage("pseudo_label_quality", "precision and recall of the pseudo-labels against the hidden truth",
              [py, "-m", "rlipv2.pseudo_labeling.quality", "--pseudo-labels", pseudo,
               "--truth", files["true_relations"], "--predicate-texts", files["predicate_texts"],
               "--threshold", "0.2", "--output-dir", f"{out}/pseudo_labels"],
              [f"{out}/pseudo_labels/pseudo_label_quality.json"], after=["pseudo_labels"]),
        # each pre-training run ends with its NF zero-shot evaluation on the downstream test set
        Stage("pretrain_rel", "(a) pre-training on the relation set, then NF zero-shot evaluation",
              train("pretrain_rel", f"{out}/pretrain_rel", it["pretrain"]),
              [f"{out}/pretrain_rel/model_final.pth", f"{out}/pretrain_rel/eval_results.json"], after=["world"],
              iterations=it["pretrain"]),
        Stage("pretrain_rel_pseudo", "(b) pre-training on the relation set + pseudo-labelled caption set, then NF "
              "zero-shot evaluation",
              train("pretrain_rel_pseudo", f"{out}/pretrain_rel_pseudo", it["pretrain"],
                    f"paths.pseudo_labels={pseudo}"),
              [f"{out}/pretrain_rel_pseudo/model_final.pth", f"{out}/pretrain_rel_pseudo/eval_results.json"],
              after=["pseudo_labels"], iterations=it["pretrain"]),
    ]
    for start in ("rel", "rel_pseudo"):
        pre = STARTS[start][1]
        stages.append(Stage(
            f"chance_{start}", f"chance level: the detections of {STARTS[start][0]} with random relation scores",
            [py, "-m", "rlipv2.engine.chance", "--config-file", cfg("zero_shot"),
             "--weights", f"{out}/{pre}/model_final.pth", "--output", f"{out}/chance_{start}/eval_results.json",
             "train.device=cpu"],
            [f"{out}/chance_{start}/eval_results.json"], after=[pre]))
    for frac in FRACTIONS:
        for start, (_, pre) in STARTS.items():
            init = [f"train.init_checkpoint={out}/{pre}/model_final.pth"] if pre else []
            run = f"{out}/finetune_{frac}_{start}"
            stages.append(Stage(
                f"finetune_{frac}_{start}", f"fine-tuning on {frac.replace('pct', ' %')} from {STARTS[start][0]}",
                train(frac, run, it[frac], *init),  # evaluated once, after the last iteration
                [f"{run}/model_final.pth", f"{run}/eval_results.json"],
                after=[pre] if pre else ["world"], iterations=it[frac]))
    return stages


# ------------------------------------------------------------------------------------------------ running
def _fingerprint(stage: Stage, done: dict[str, str]) -> str:
    h = hashlib.sha256("\0".join(stage.cmd).encode())
    for dep in stage.after:
        h.update(done.get(dep, "").encode())
    return h.hexdigest()[:16]


def _record_path(out: str, name: str) -> str:
    return os.path.join(out, "stages", f"{name}.json")


def _finished(out: str, stage: Stage, fingerprint: str) -> bool:
    try:
        with open(_record_path(out, stage.name), encoding="utf-8") as f:
            rec = json.load(f)
    except (OSError, json.JSONDecodeError):
        return False
    return rec.get("fingerprint") == fingerprint and all(os.path.isfile(o) for o in stage.outputs)


def _estimate(stage: Stage, rates: dict[str, float]) -> float:
    """Seconds a stage is expected to take: measured rates of earlier stages, else defaults (2-core CPU)."""
    base = 15.0  # process start-up, model build
    if stage.name.startswith(("finetune", "pretrain", "chance")):
        base += rates.get("eval", 25.0)
    if stage.iterations:
        base += stage.iterations * rates.get("iter", 0.3)
    if stage.images:
        base += stage.images * rates.get("image", 0.12)
    if stage.name == "world":
        base += 40.0
    return base


def _fmt(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 60}m{seconds % 60:02d}s"


def run_stage(stage: Stage, out: str, env: dict) -> float:
    """Run one stage's command (from the repository root), its output to ``<out>/logs/<name>.log`` and its
    progress lines to the console. Returns the seconds it took; raises SystemExit when it fails."""
    log_path = os.path.join(out, "logs", f"{stage.name}.log")
    os.makedirs(os.path.dirname(log_path), exist_ok=True)
    t0 = time.perf_counter()
    tail: deque[str] = deque(maxlen=40)
    with open(log_path, "w", encoding="utf-8") as log:
        log.write("$ " + " ".join(stage.cmd) + "\n")
        log.flush()
        proc = subprocess.Popen(stage.cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, bufsize=1)
        try:
            for line in proc.stdout:
                log.write(line)
                tail.append(line.rstrip("\n"))
                if _PROGRESS.search(line) and not line.lstrip().startswith("Loading weights"):
                    print("    " + line.rstrip()[:160], flush=True)
            rc = proc.wait()
        except KeyboardInterrupt:
            proc.terminate()
            proc.wait()
            raise
    if rc != 0:
        print("\n".join(tail), file=sys.stderr)
        raise SystemExit(f"stage '{stage.name}' failed (exit {rc}); full log: {log_path}\n"
                         f"fix the cause and run the same command again: finished stages are kept")
    return time.perf_counter() - t0


def run_plan(plan: list[Stage], out: str, env: dict, redo=()) -> dict[str, float]:
    """Run the stages of ``plan`` in order, skipping those finished earlier with the same fingerprint.

    A stage runs when it has no record under ``<out>/stages/``, when its command or the fingerprint of a
    stage it depends on changed, when one of its outputs is missing, or when it (or a stage it depends on,
    directly or not) is in ``redo``. Every stage is deterministic, so a stage re-made with the same command
    does not make the stages after it run again. Prints the progress and an ETA of the whole run.
    Returns {stage: seconds}.
    """
    from rlipv2.utils.file_io import atomic_write_json

    os.makedirs(os.path.join(out, "stages"), exist_ok=True)
    t_start = time.perf_counter()
    done: dict[str, str] = {}
    rates: dict[str, float] = {}
    timings: dict[str, float] = {}
    redo = set(redo)
    for k, stage in enumerate(plan, 1):
        fp = _fingerprint(stage, done)
        if any(d in redo for d in stage.after):
            redo.add(stage.name)  # what depends on a stage run again runs again too
        if stage.name not in redo and _finished(out, stage, fp):
            seconds = _read(_record_path(out, stage.name)).get("seconds", 0.0)
            timings[stage.name] = seconds
            done[stage.name] = fp
            print(f"[{k:2d}/{len(plan)}] {stage.name}: finished earlier ({_fmt(seconds)}), skipped", flush=True)
            continue
        remaining = sum(_estimate(s, rates) for s in plan[k - 1:])
        print(f"[{k:2d}/{len(plan)}] {stage.name}: {stage.title}  (elapsed {_fmt(time.perf_counter() - t_start)}, "
              f"ETA of the run {_fmt(remaining)})", flush=True)
        seconds = run_stage(stage, out, env)
        timings[stage.name] = round(seconds, 1)
        if stage.name.startswith("chance"):
            rates["eval"] = max(5.0, seconds - 15.0)
        elif stage.iterations:
            evaluated = stage.name.startswith(("finetune", "pretrain"))
            rates["iter"] = max(0.01, (seconds - 15.0 - evaluated * rates.get("eval", 25.0)) / stage.iterations)
        if stage.images:
            rates["image"] = max(0.005, (seconds - 30.0) / stage.images)
        atomic_write_json(_record_path(out, stage.name), {"fingerprint": fp, "seconds": round(seconds, 1),
                                                          "command": stage.cmd, "finished": time.time()})
        done[stage.name] = fp
        print(f"    done in {_fmt(seconds)}", flush=True)
    return timings


def subset_caption_set(out_dir: str, n: int) -> None:
    """Write the first ``n`` images of the world's caption set (detections and captions) into ``out_dir``."""
    from rlipv2.data.synthetic import caption_set_files
    from rlipv2.utils.file_io import atomic_write_json

    files = caption_set_files(_load_world())
    with open(files["detections"], encoding="utf-8") as f:
        det = json.load(f)
    with open(files["captions"], encoding="utf-8") as f:
        captions = json.load(f)
    keep = det["images"][:n]
    ids = {im["id"] for im in keep}
    det = dict(det, images=keep, annotations=[a for a in det["annotations"] if a["image_id"] in ids])
    os.makedirs(out_dir, exist_ok=True)
    atomic_write_json(os.path.join(out_dir, "captions.json"), {str(i): captions[str(i)] for i in sorted(ids)})
    atomic_write_json(os.path.join(out_dir, "detections.json"), det)


# ------------------------------------------------------------------------------------------------ report
def _read(path: str) -> dict:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def _maps(res: dict) -> dict:
    """Full / seen / held-out mAP (percent) from a HICO evaluator result of the test split."""
    hoi = res.get("hoi", {})
    pct = lambda k: round(100.0 * float(hoi[k]), 2) if hoi.get(k) is not None else float("nan")  # noqa: E731
    return {"full": pct("mAP"), "seen": pct("mAP_seen"), "unseen": pct("mAP_unseen")}


def collect_results(out: str, quick: bool, timings: dict, iterations: dict) -> dict:
    rows = {}
    for start, (label, _) in STARTS.items():
        row = {"label": label}
        if start != "scratch":
            row["zero_shot"] = _maps(_read(f"{out}/{STARTS[start][1]}/eval_results.json"))
        for frac in FRACTIONS:
            row[frac] = _maps(_read(f"{out}/finetune_{frac}_{start}/eval_results.json"))
        rows[start] = row
    chance = {s: _maps(_read(f"{out}/chance_{s}/eval_results.json")) for s in ("rel", "rel_pseudo")}
    quality = _read(f"{out}/pseudo_labels/pseudo_label_quality.json")
    b, a, s = rows["rel_pseudo"], rows["rel"], rows["scratch"]
    checks = {
        "pretrain_beats_scratch_1pct": (b["1pct"]["full"] - s["1pct"]["full"], ">=", 10.0),
        "pretrain_beats_scratch_10pct": (b["10pct"]["full"] - s["10pct"]["full"], ">=", 5.0),
        "zero_shot_above_chance": (b["zero_shot"]["full"] / max(chance["rel_pseudo"]["full"], 1e-9), ">=", 3.0),
        "pseudo_helps_zero_shot": (b["zero_shot"]["full"] - a["zero_shot"]["full"], ">=", 0.0),
        "pseudo_helps_1pct": (b["1pct"]["full"] - a["1pct"]["full"], ">=", 0.0),
    }
    targets = {k: {"target": TARGETS[k], "value": round(v, 2), "met": bool(v >= thr)}
               for k, (v, _, thr) in checks.items()}
    return {
        "mode": "quick" if quick else "full",
        "iterations": iterations,
        "rows": rows,
        "chance": chance,
        "pseudo_label_quality": {"at_threshold": quality.get("at_threshold"),
                                 "num_true_relations": quality["num_true_relations"],
                                 "num_pseudo_relations": quality["num_pseudo_relations"]},
        "targets": targets,
        "seconds": timings,
        "threads": None,
        "cpu_count": os.cpu_count(),
    }


def results_markdown(res: dict) -> str:
    def cell(m, key):
        v = m.get(key, float("nan")) if m else float("nan")
        return "–" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.2f}"

    cols = [("zero_shot", "NF zero-shot"), ("1pct", "1 %"), ("10pct", "10 %"), ("100pct", "100 %")]
    lines = []
    for key, title in (("full", "Full"), ("unseen", "Unseen (held-out combinations, UC-style)"),
                       ("seen", "Seen")):
        lines += [f"**HICO mAP, {title}** (downstream test set, {res['mode']} run)", "",
                  "| pre-training | " + " | ".join(t for _, t in cols) + " |",
                  "| --- |" + " ---: |" * len(cols)]
        for row in res["rows"].values():
            lines.append(f"| {row['label']} | " + " | ".join(cell(row.get(c), key) for c, _ in cols) + " |")
        ch = res["chance"]["rel_pseudo"]
        lines.append("| chance: (b)'s detections, random relation scores | " + cell(ch, key) + " | | | |")
        lines.append("")
    q = res["pseudo_label_quality"]["at_threshold"]
    if q:
        lines.append(f"Pseudo-labels at confidence >= {q['threshold']:.2f}: precision {100 * q['precision']:.1f} %, "
                     f"recall {100 * q['recall']:.1f} % of {res['pseudo_label_quality']['num_true_relations']} "
                     f"true relations ({q['pseudo_relations']} pseudo relations).")
        lines.append("")
    lines += ["| target | value | met |", "| --- | ---: | :---: |"]
    for t in res["targets"].values():
        lines.append(f"| {t['target']} | {t['value']:.2f} | {'yes' if t['met'] else 'no'} |")
    return "\n".join(lines) + "\n"


def plot_results(res: dict, path: str) -> None:
    """Full mAP against the fine-tuning fraction, one line per starting point; NF zero-shot at the left."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from rlipv2.utils.file_io import atomic_open

    xs = ["NF zero-shot", "1 %", "10 %", "100 %"]
    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    for row in res["rows"].values():
        keys = (["zero_shot"] if "zero_shot" in row else []) + list(FRACTIONS)
        pos = [0] * ("zero_shot" in row) + [1, 2, 3]
        ax.plot(pos, [row[k]["full"] for k in keys], "o-", label=row["label"])
    ax.axhline(res["chance"]["rel_pseudo"]["full"], color="grey", ls=":", lw=1, label="chance (zero-shot)")
    ax.set_xticks(range(4), xs)
    ax.set_xlabel("fine-tuning data (share of the downstream training set)")
    ax.set_ylabel("HICO mAP, Full (%)")
    ax.set_title(f"RLIPv2 in miniature ({res['mode']} run)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    with atomic_open(path, "wb") as f:
        fig.savefig(f, format="png")
    plt.close(fig)


def draw_predictions(out: str, env: dict, num: int = 6) -> None:
    """tools/demo.py on a few test images (half with a held-out combination) with the 1 % model from (b)."""
    from rlipv2.data.synthetic import OBJECTS, VERBS, default_root, world_dir

    world = _load_world()
    folder = world_dir(default_root(), world)
    ann, images = os.path.join(folder, "annotations"), os.path.join(folder, "images", "test")
    unseen = [e["file_name"] for e in _read(os.path.join(ann, "test_unseen_hoi.json"))]
    seen = [e["file_name"] for e in _read(os.path.join(ann, "test_hoi.json")) if e["file_name"] not in set(unseen)]
    inputs = os.path.join(out, "visualization_inputs")
    shutil.rmtree(inputs, ignore_errors=True)
    os.makedirs(inputs)
    for name in unseen[: num // 2] + seen[: num - num // 2]:
        shutil.copy(os.path.join(images, name), inputs)
    s = world.image_size
    cmd = [sys.executable, os.path.join("tools", "demo.py"), "--config-file", os.path.join(CONFIG_DIR, CONFIGS["1pct"]),
           "--weights", f"{out}/finetune_1pct_rel_pseudo/model_final.pth", "--input", inputs,
           "--output", f"{out}/visualizations", "--objects", ", ".join(OBJECTS), "--relations", ", ".join(VERBS),
           "--score-thresh", "0.2", "--min-size", str(s), "--max-size", str(2 * s), "--device", "cpu",
           "--max-draw", "4"]
    run_stage(Stage("visualizations", "drawings", cmd, []), out, env)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--subset-caption-set"]:  # the caption_subset stage's own command
        subset_caption_set(argv[1], int(argv[2]))
        return 0
    args = get_parser().parse_args(argv)
    out = os.path.abspath(args.output or os.path.join(REPO, "output", "reproduce_mini_quick" if args.quick
                                                      else "reproduce_mini"))
    if not os.path.relpath(out, REPO).startswith(".."):
        out = os.path.relpath(out, REPO)  # inside the repository: shorter commands, kept if the clone moves
    os.chdir(REPO)  # the stages' commands use repository-relative paths
    if REPO not in sys.path:
        sys.path.insert(0, REPO)
    plan = build_plan(out, args.quick, args.threads)
    names = [s.name for s in plan]
    unknown = [r for r in args.redo if r not in names]
    if unknown:
        print(f"error: --redo {' '.join(unknown)}: unknown stage; stages: {', '.join(names)}", file=sys.stderr)
        return 2
    if args.list:
        for k, s in enumerate(plan, 1):
            print(f"{k:2d}. {s.name}: {s.title}\n    {' '.join(s.cmd)}")
        return 0
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads),
               HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="false", PYTHONUNBUFFERED="1",
               PYTHONPATH=os.pathsep.join([REPO, os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep))
    t_start = time.perf_counter()
    timings = run_plan(plan, out, env, redo=args.redo)

    # report: drawings, table, plot, targets
    from rlipv2.utils.file_io import atomic_write_json, atomic_write_text, json_safe

    draw_predictions(out, env)
    res = collect_results(out, args.quick, timings, schedule(args.quick))
    res["threads"] = args.threads
    res["total_seconds_this_call"] = round(time.perf_counter() - t_start, 1)
    res["total_stage_seconds"] = round(sum(timings.values()), 1)
    md = results_markdown(res)
    atomic_write_json(os.path.join(out, "results.json"), json_safe(res))
    atomic_write_text(os.path.join(out, "results.md"), md)
    plot_results(res, os.path.join(out, "map_vs_fraction.png"))
    print("\n" + md)
    print(f"results: {out}/results.md, results.json, map_vs_fraction.png; drawings: {out}/visualizations; "
          f"stages took {_fmt(res['total_stage_seconds'])} in all")
    return 0


if __name__ == "__main__":
    sys.exit(main())
