"""tools/benchmark_ops.py runs end to end (on tiny shapes; the real figures come from running it by hand)."""
import os
import subprocess
import sys

import pytest

from rlipv2.utils.extension import load_extension

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.mark.skipif(load_extension() is None, reason="rlipv2._C is not built: the benchmark compares its kernel")
def test_benchmark_script_prints_ratios():
    r = subprocess.run([sys.executable, os.path.join(REPO, "tools", "benchmark_ops.py"), "--image", "64x96",
                        "--repeats", "1", "--dtype", "float64"],
                       capture_output=True, text=True, cwd=REPO, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "image 64x96" in r.stdout and "S=128" in r.stdout
    summary = r.stdout.split("Summary")[1]
    for case in ("encoder", "decoder"):
        assert case in summary
    assert summary.count("forward+backward") == 2
    # The two backends agree on these small inputs.
    for line in r.stdout.splitlines():
        if line.startswith("max |pytorch - cpu|"):
            diffs = [float(tok.rstrip(";")) for tok in line.split() if tok[0].isdigit()]
            assert diffs and max(diffs) < 1e-9, line
