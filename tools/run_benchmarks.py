#!/usr/bin/env python
"""Run every benchmark script and write docs/benchmarks.md (what ``make bench`` does).

    python tools/run_benchmarks.py [--quick] [--output docs/benchmarks.md] [--only NAME ...]
        [--gpu-results output/gpu_check.txt]

Each ``tools/benchmark_*.py`` runs in its own subprocess (one after the other, never in parallel), with
settings that finish in minutes on a 2-core machine (``--quick``: a short version for smoke runs). The
report leads with the ratios each script prints (against a reference implementation or a target: they
transfer between machines), then the machine (``python -m rlipv2.collect_env`` rows, CPU model, cores,
load average), then every command with its full output (absolute figures). A benchmark that fails or
times out is reported as such, with the end of its error output; the others still run.

GPU figures come from ``bash tools/gpu_check.sh | tee output/gpu_check.txt`` on a GPU machine; when that
file exists its benchmark section is included, otherwise the report says no GPU run was made.

The report is written atomically (temporary file in the same directory, then rename).
"""
from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import os
import platform
import re
import shlex
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

# A line of a benchmark's output that states a ratio (these lead the report).
RATIO_RE = re.compile(r"ratio|speed-?up|identical|\d\.?\d*x\b|\(x\d|faster|slower", re.IGNORECASE)


def _toy_train_config(workdir: str) -> str:
    """The engine's toy LazyConfig (tests/engine/engine_toys.py), written into ``workdir``."""
    spec = importlib.util.spec_from_file_location("engine_toys", os.path.join(REPO, "tests", "engine",
                                                                              "engine_toys.py"))
    mod = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("engine_toys", mod)
    spec.loader.exec_module(mod)
    return str(mod.write_toy_config(workdir))


def benchmarks(quick: bool, workdir: str) -> list[dict]:
    """(name, what it compares, script, arguments, extra PYTHONPATH, timeout) of every benchmark."""
    q = quick
    out = [
        dict(name="ops", what="ms_deform_attn: compiled rlipv2._C CPU kernel vs the pure-PyTorch path",
             script="benchmark_ops.py",
             args=["--quick", "--threads", "2"] if q else ["--repeats", "5", "--threads", "2"],
             timeout=900),
        dict(name="model", what="RLIPv2-ParSeDA R50 CPU inference with vs without the text-embedding cache; "
                                "tiny-config training step",
             script="benchmark_model.py",
             args=["--iters", "1", "--text-size", "tiny"] if q else ["--iters", "7", "--threads", "2"], timeout=1200),
        dict(name="data", what="RelationDatasetMapper images/s per worker vs the 25 images/s target",
             script="benchmark_data.py", args=["--images", "8", "--iters", "20"] if q else ["--images", "40",
                                                                                           "--iters", "100"],
             timeout=600),
        dict(name="evaluators", what="HICO-DET (with and without NMS), Open Images and V-COCO evaluators against the "
                                     "official algorithms on full-size synthetic sets (ratio, goal, peak RSS, "
                                     "identical metrics)",
             script="benchmark_eval.py",
             args=(["--scale", "0.03", "--repeats", "1"] if q else ["--repeats", "3", "--official-repeats", "1"]),
             timeout=3600),
        dict(name="training step", what="RLIPv2Trainer vs Detectron2 SimpleTrainer step time (toy relation model); "
                                        "atomic vs plain checkpoint write",
             script="benchmark_train.py", args=None, timeout=600,  # toy config: <tmp>/toy_config.py
             pythonpath=os.path.join(REPO, "tests", "engine")),
        dict(name="pseudo-labelling", what="caption parsing batched vs one by one; per-stage images/s",
             script="benchmark_pseudo_label.py",
             args=["--images", "20", "--captions-per-image", "5"] if q else ["--images", "200",
                                                                             "--captions-per-image", "10"],
             timeout=1200),
        dict(name="web demo", what="concurrent /detect requests of tools/web_demo.py on loopback (one worker): "
                                   "all succeed, latency p50 / p95 against one request alone",
             script="benchmark_web_demo.py", args=["--requests", "5" if q else "20"], timeout=900),
        dict(name="schemas", what="schema check of 40k-image HICO-DET / VG files vs their json.load",
             script="benchmark_schemas.py", args=["--images", "2000", "--repeats", "1"] if q else [],
             timeout=900),
    ]
    for b in out:
        if b["name"] == "training step":
            b["json"] = os.path.join(workdir, "train.json")
            b["args"] = ["--config-file", _toy_train_config(workdir), "--iters", "5" if q else "20",
                         "--warmup", "1" if q else "3", "--json", b["json"]]
    return out


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine_rows() -> list[tuple[str, str]]:
    rows = [("date (UTC)", datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M")),
            ("CPU model", _cpu_model()), ("logical cores", str(os.cpu_count())),
            ("cores usable by this process", str(len(os.sched_getaffinity(0))) if hasattr(os, "sched_getaffinity")
             else "?")]
    try:
        rows.append(("load average (1, 5, 15 min) at start", ", ".join(f"{x:.2f}" for x in os.getloadavg())))
    except OSError:
        pass
    p = subprocess.run([sys.executable, "-m", "rlipv2.collect_env"], cwd=REPO, capture_output=True, text=True,
                       env=_env(None), timeout=300)
    home = os.path.expanduser("~")
    for line in p.stdout.splitlines():
        line = line.replace(home, "~") if home not in ("", "/") else line  # no machine paths in the report
        parts = re.split(r"\s{2,}", line.strip(), maxsplit=1)
        if len(parts) == 2 and "@" not in parts[1]:  # no install paths in the committed report
            rows.append((parts[0], parts[1]))
        elif len(parts) == 2:
            rows.append((parts[0], parts[1].split(" @ ")[0]))
    return rows


def _env(pythonpath: str | None) -> dict:
    env = dict(os.environ, PYTHONUNBUFFERED="1", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
               TOKENIZERS_PARALLELISM="false")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (REPO, pythonpath, os.environ.get("PYTHONPATH")) if p)
    return env


def _shown(arg: str, workdir: str) -> str:
    if arg.startswith(workdir):
        return "<tmp>" + arg[len(workdir):]
    if os.path.isabs(arg) and arg.startswith(REPO):
        return os.path.relpath(arg, REPO)
    return arg


def run_one(b: dict, workdir: str) -> dict:
    script = os.path.join(REPO, "tools", b["script"])
    cmd = [sys.executable, script, *b["args"]]
    shown = "python " + " ".join(shlex.quote(_shown(a, workdir)) for a in cmd[1:])
    res = dict(name=b["name"], what=b["what"], command=shown, status="ok", seconds=0.0, output="", ratios=[])
    if not os.path.exists(script):
        res.update(status="missing", output=f"tools/{b['script']} is not in this checkout")
        return res
    print(f"[run_benchmarks] {b['name']}: {shown}", flush=True)
    t0 = time.perf_counter()
    try:
        p = subprocess.run(cmd, cwd=REPO, env=_env(b.get("pythonpath")), capture_output=True, text=True,
                           timeout=b["timeout"])
        out, err, rc = p.stdout, p.stderr, p.returncode
    except subprocess.TimeoutExpired as e:
        out = e.stdout.decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
        err, rc = f"timed out after {b['timeout']} s", None
    res["seconds"] = time.perf_counter() - t0
    res["output"] = out.rstrip()
    if rc != 0:
        res["status"] = "timed out" if rc is None else f"failed (exit status {rc})"
        res["error"] = "\n".join(err.strip().splitlines()[-15:])
    res["ratios"] = [ln.strip() for ln in out.splitlines() if RATIO_RE.search(ln)]
    if b.get("json") and os.path.exists(b["json"]):
        with open(b["json"]) as f:
            fig = json.load(f)
        res["ratios"] = [f"{k} = {v:.3f}" for k, v in fig.items() if k.startswith("ratio")]
    print(f"[run_benchmarks] {b['name']}: {res['status']} in {res['seconds']:.0f} s", flush=True)
    return res


def gpu_section(path: str) -> str:
    if not os.path.exists(path):
        return (f"No GPU run has been made for this report: `{os.path.relpath(path, REPO)}` does not exist. On a "
                "machine with a GPU, run `bash tools/gpu_check.sh | tee output/gpu_check.txt`, then `make bench` "
                "again to include its CUDA-kernel figures here.\n")
    with open(path) as f:
        text = f.read()
    i = text.find("== benchmark")
    body = text[i:] if i >= 0 else text
    return f"From `{os.path.relpath(path, REPO)}` (tools/gpu_check.sh):\n\n```\n{body.strip()}\n```\n"


def render(results: list[dict], machine: list[tuple[str, str]], quick: bool, gpu: str, total_s: float) -> str:
    L = ["# Benchmarks", "",
         f"Generated by `{'python tools/run_benchmarks.py --quick' if quick else 'make bench'}` "
         f"(tools/run_benchmarks.py) in {total_s / 60:.1f} min. Ratios come first: they compare this "
         "implementation with a reference implementation or a target on the same machine in the same run, so "
         "they transfer between machines, while the absolute times below drift with the CPU and its load. "
         "Regenerate with `make bench`; do not edit by hand.", "",
         "## Ratios", ""]
    for r in results:
        L.append(f"### {r['name']} — {r['what']}")
        L.append("")
        if r["status"] != "ok":
            L.append(f"- **{r['status']}**" + (f": {r['output']}" if r["status"] == "missing" else ""))
        L.extend(f"- `{ln}`" for ln in r["ratios"]) if r["ratios"] else (
            L.append("- (no ratio printed)") if r["status"] == "ok" else None)
        L.append("")
    L += ["## GPU", "", gpu, "## Machine", "", "| | |", "|---|---|"]
    L += [f"| {k} | {v.replace('|', '/')} |" for k, v in machine]
    L += ["", "## Commands and full output", ""]
    for r in results:
        L += [f"### {r['name']}", "", f"`{r['command']}` — {r['status']}, {r['seconds']:.0f} s", ""]
        if r["output"]:
            L += ["```", r["output"], "```", ""]
        if r.get("error"):
            L += ["Error output (end):", "", "```", r["error"], "```", ""]
    return "\n".join(L).rstrip() + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="short settings (a smoke run, minutes)")
    ap.add_argument("--output", default=os.path.join(REPO, "docs", "benchmarks.md"))
    ap.add_argument("--only", nargs="+", default=None, help="benchmark names to run (default: all)")
    ap.add_argument("--gpu-results", default=os.path.join(REPO, "output", "gpu_check.txt"))
    args = ap.parse_args(argv)

    from rlipv2.utils.file_io import atomic_write_text

    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as workdir:
        machine = machine_rows()
        todo = [b for b in benchmarks(args.quick, workdir) if args.only is None or b["name"] in args.only]
        results = [run_one(b, workdir) for b in todo]
    text = render(results, machine, args.quick, gpu_section(args.gpu_results), time.perf_counter() - t0)
    # The report is committed: no machine-specific absolute paths in it.
    text = text.replace(REPO + os.sep, "").replace(REPO, ".")
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    atomic_write_text(args.output, text)
    print(f"[run_benchmarks] wrote {args.output}")
    return 0 if all(r["status"] in ("ok", "missing") for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
