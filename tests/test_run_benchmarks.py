"""tools/run_benchmarks.py (``make bench``): runs the benchmark scripts and writes the report atomically."""
import importlib.util
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _module():
    spec = importlib.util.spec_from_file_location("run_benchmarks", REPO / "tools" / "run_benchmarks.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_every_benchmark_script_is_listed(tmp_path):
    rb = _module()
    listed = {b["script"] for b in rb.benchmarks(quick=True, workdir=str(tmp_path))}
    on_disk = {p.name for p in (REPO / "tools").glob("benchmark_*.py")}
    assert on_disk <= listed, on_disk - listed
    assert {"benchmark_ops.py", "benchmark_model.py", "benchmark_data.py", "benchmark_eval.py",
            "benchmark_train.py", "benchmark_pseudo_label.py", "benchmark_schemas.py",
            "benchmark_web_demo.py"} == listed


def test_report_leads_with_ratios_and_says_when_no_gpu_run(tmp_path):
    rb = _module()
    res = [dict(name="data", what="mapper", command="python tools/benchmark_data.py", status="ok", seconds=3.0,
                output="RelationDatasetMapper: 50 images/s\n  target >= 25 images/s per worker: ratio 2.00 -> PASS",
                ratios=["target >= 25 images/s per worker: ratio 2.00 -> PASS"]),
           dict(name="ops", what="kernel", command="python tools/benchmark_ops.py", status="failed (exit status 1)",
                seconds=1.0, output="", ratios=[], error="ValueError: boom")]
    text = rb.render(res, [("CPU model", "x"), ("logical cores", "2")], False,
                     rb.gpu_section(str(tmp_path / "none.txt")), 60.0)
    assert text.index("## Ratios") < text.index("## Machine") < text.index("## Commands and full output")
    assert "ratio 2.00" in text.split("## Machine")[0]
    assert "**failed (exit status 1)**" in text and "ValueError: boom" in text
    assert "No GPU run has been made" in text
    gpu = tmp_path / "gpu_check.txt"
    gpu.write_text("== build ==\nbuilt\n== benchmark: CUDA kernel vs pytorch path ==\nencoder fwd ratio 31.0x\n")
    assert "encoder fwd ratio 31.0x" in rb.gpu_section(str(gpu)) and "== build" not in rb.gpu_section(str(gpu))


def test_ratio_lines_are_picked_from_output():
    rb = _module()
    lines = ["speed-up with cache: 1.83x (target >= 1.5x) -> OK", "inference with text cache:  120.0 ms",
             "reference qpic on 100 images: identical=True", "ratio_step_rlipv2_over_d2_simple  1.02",
             "parsing: one by one 130 captions/s, batched 283 captions/s (x2.17)"]
    assert [ln for ln in lines if rb.RATIO_RE.search(ln)] == [lines[0], lines[2], lines[3], lines[4]]
