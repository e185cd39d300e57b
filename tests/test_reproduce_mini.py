"""tools/reproduce_mini.py: the stage runner (resume, fingerprints, redo, failures), its plan and report; the
slow test runs ``--quick`` end to end."""
import importlib.util
import json
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _tool():
    spec = importlib.util.spec_from_file_location("reproduce_mini", os.path.join(REPO, "tools", "reproduce_mini.py"))
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up
    spec.loader.exec_module(mod)
    return mod


rm = _tool()


def _stage(tmp_path, name, after=(), text="x", rc=0):
    log, out = tmp_path / "runs.txt", tmp_path / f"{name}.out"
    code = f"open({str(log)!r}, 'a').write({name!r} + '\\n'); open({str(out)!r}, 'w').write({text!r}); exit({rc})"
    return rm.Stage(name, f"stage {name}", [sys.executable, "-c", code], [str(out)], after=list(after))


def _runs(tmp_path):
    p = tmp_path / "runs.txt"
    runs = p.read_text().split() if p.exists() else []
    p.unlink(missing_ok=True)
    return runs


def test_runner_resumes_and_reruns_what_changed(tmp_path, capsys):
    out = str(tmp_path / "o")
    plan = [_stage(tmp_path, "a"), _stage(tmp_path, "b", ["a"]), _stage(tmp_path, "c", ["b"])]
    timings = rm.run_plan(plan, out, dict(os.environ))
    assert _runs(tmp_path) == ["a", "b", "c"] and set(timings) == {"a", "b", "c"}
    assert json.loads((tmp_path / "o" / "stages" / "b.json").read_text())["command"] == plan[1].cmd
    assert "$ " in (tmp_path / "o" / "logs" / "a.log").read_text()  # the command line heads each log

    rm.run_plan(plan, out, dict(os.environ))  # all finished: nothing runs
    assert _runs(tmp_path) == [] and capsys.readouterr().out.count("skipped") == 3

    changed = [plan[0], _stage(tmp_path, "b", ["a"], text="y"), plan[2]]  # b's command changed
    rm.run_plan(changed, out, dict(os.environ))
    assert _runs(tmp_path) == ["b", "c"]

    rm.run_plan(changed, out, dict(os.environ), redo=["a"])  # asked again: a and everything after it
    assert _runs(tmp_path) == ["a", "b", "c"]

    os.unlink(tmp_path / "c.out")  # a missing output
    rm.run_plan(changed, out, dict(os.environ))
    assert _runs(tmp_path) == ["c"]


def test_runner_stops_at_a_failing_stage_and_keeps_the_finished_ones(tmp_path, capsys):
    out = str(tmp_path / "o")
    plan = [_stage(tmp_path, "a"), _stage(tmp_path, "b", ["a"], rc=3), _stage(tmp_path, "c", ["b"])]
    with pytest.raises(SystemExit, match="stage 'b' failed .exit 3.*b.log"):
        rm.run_plan(plan, out, dict(os.environ))
    assert _runs(tmp_path) == ["a", "b"]
    assert not (tmp_path / "o" / "stages" / "b.json").exists()
    fixed = [plan[0], _stage(tmp_path, "b", ["a"]), plan[2]]
    rm.run_plan(fixed, out, dict(os.environ))
    assert _runs(tmp_path) == ["b", "c"]


def test_plan_covers_every_arm(tmp_path):
    plan = rm.build_plan(str(tmp_path / "o"), quick=True, threads=2)
    names = [s.name for s in plan]
    assert names[:2] == ["world", "tagger"] and len(names) == len(set(names))
    for frac in rm.FRACTIONS:
        for start in rm.STARTS:
            assert f"finetune_{frac}_{start}" in names
    assert {"pseudo_labels", "pseudo_label_quality", "pretrain_rel", "pretrain_rel_pseudo", "chance_rel_pseudo"} <= set(
        names)
    # every stage comes after the stages it depends on; every fine-tuning run of a fraction has one schedule
    for k, s in enumerate(plan):
        assert all(d in names[:k] for d in s.after), s.name
    iters = {s.name: s.iterations for s in plan}
    for frac in rm.FRACTIONS:
        assert len({iters[f"finetune_{frac}_{start}"] for start in rm.STARTS}) == 1
    # no stage reads the hidden truth except the scoring one
    hidden = [s.name for s in plan if any("hidden" in a for a in s.cmd)]
    assert hidden == ["pseudo_label_quality"]
    # no pre-training or tagger stage reads the downstream test set or the few-shot training sets
    pre = [s for s in plan if s.name in ("tagger", "pretrain_rel", "pretrain_rel_pseudo", "pseudo_labels")]
    assert not any("test" in a and "hoi" in a for s in pre for a in s.cmd)


def _fake_results():
    def m(full, seen, unseen):
        return {"full": full, "seen": seen, "unseen": unseen}

    rows = {
        "scratch": {"label": "scratch", "1pct": m(2, 2, 0), "10pct": m(10, 11, 1), "100pct": m(40, 45, 5)},
        "rel": {"label": "(a)", "zero_shot": m(8, 9, 3), "1pct": m(20, 21, 4), "10pct": m(30, 31, 6),
                "100pct": m(50, 52, 9)},
        "rel_pseudo": {"label": "(b)", "zero_shot": m(10, 11, 4), "1pct": m(25, 26, 5), "10pct": m(33, 34, 7),
                       "100pct": m(51, 53, 10)},
    }
    return rows


def test_report_table_targets_and_plot(tmp_path):
    rows = _fake_results()
    out = tmp_path / "o"
    for start, row in rows.items():
        for key in ("zero_shot",) + rm.FRACTIONS:
            if key in row:
                folder = rm.STARTS[start][1] if key == "zero_shot" else f"finetune_{key}_{start}"
                (out / folder).mkdir(parents=True, exist_ok=True)
                r = row[key]
                (out / folder / "eval_results.json").write_text(json.dumps(
                    {"hoi": {"mAP": r["full"] / 100, "mAP_seen": r["seen"] / 100, "mAP_unseen": r["unseen"] / 100}}))
    for s in ("rel", "rel_pseudo"):
        (out / f"chance_{s}").mkdir(parents=True)
        (out / f"chance_{s}" / "eval_results.json").write_text(json.dumps(
            {"hoi": {"mAP": 0.02, "mAP_seen": 0.02, "mAP_unseen": 0.01}}))
    (out / "pseudo_labels").mkdir()
    (out / "pseudo_labels" / "pseudo_label_quality.json").write_text(json.dumps({
        "at_threshold": {"threshold": 0.2, "precision": 0.7, "recall": 0.5, "pseudo_relations": 100},
        "num_true_relations": 140, "num_pseudo_relations": 150}))
    res = rm.collect_results(str(out), quick=True, timings={"a": 1.0}, iterations={"1pct": 100})
    assert res["rows"]["rel_pseudo"]["zero_shot"]["full"] == pytest.approx(10.0)
    t = res["targets"]
    assert t["pretrain_beats_scratch_1pct"]["met"] and t["pretrain_beats_scratch_1pct"]["value"] == pytest.approx(23)
    assert t["pretrain_beats_scratch_10pct"]["met"]  # 33 - 10 = 23 >= 5
    assert t["zero_shot_above_chance"]["value"] == pytest.approx(5.0) and t["zero_shot_above_chance"]["met"]
    md = rm.results_markdown(res)
    b, scratch = rm.STARTS["rel_pseudo"][0], rm.STARTS["scratch"][0]
    assert md.count(f"| {b} | 10.00 | 25.00 | 33.00 | 51.00 |") == 1  # the Full table
    assert f"| {scratch} | – | 2.00 | 10.00 | 40.00 |" in md and "precision 70.0 %" in md
    rm.plot_results(res, str(tmp_path / "plot.png"))
    assert (tmp_path / "plot.png").read_bytes()[:4] == b"\x89PNG"


def test_cli_refuses_unknown_redo():
    r = subprocess.run([sys.executable, "tools/reproduce_mini.py", "--quick", "--redo", "nosuchstage"], cwd=REPO,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and "unknown stage" in r.stderr and "finetune_1pct_rel_pseudo" in r.stderr


@pytest.mark.slow
def test_quick_reproduction_pretraining_beats_scratch(tmp_path):
    """`tools/reproduce_mini.py --quick` end to end (minutes): the table has every row and column, and
    pre-training on relation set + pseudo-labels beats scratch at 1 %."""
    out = tmp_path / "quick"
    r = subprocess.run([sys.executable, "tools/reproduce_mini.py", "--quick", "--output", str(out)], cwd=REPO,
                       capture_output=True, text=True, timeout=3600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    res = json.loads((out / "results.json").read_text())
    assert set(res["rows"]) == set(rm.STARTS)
    for start, row in res["rows"].items():
        keys = set(rm.FRACTIONS) | ({"zero_shot"} if start != "scratch" else set())
        assert keys <= set(row)
        for k in keys:
            assert set(row[k]) == {"full", "seen", "unseen"} and row[k]["full"] is not None
    assert res["rows"]["rel_pseudo"]["1pct"]["full"] > res["rows"]["scratch"]["1pct"]["full"]
    md = (out / "results.md").read_text()
    assert "NF zero-shot" in md and "Unseen" in md
    assert (out / "map_vs_fraction.png").exists() and (out / "pseudo_labels" / "pseudo_label_quality.png").exists()
    assert any(f.endswith(".jpg") for f in os.listdir(out / "visualizations"))
    # a second call finds every stage finished
    r2 = subprocess.run([sys.executable, "tools/reproduce_mini.py", "--quick", "--output", str(out)], cwd=REPO,
                        capture_output=True, text=True, timeout=900)
    assert r2.returncode == 0 and r2.stdout.count("skipped") == len(rm.build_plan(str(out), True, 2))
