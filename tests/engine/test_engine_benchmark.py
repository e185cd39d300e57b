"""tools/benchmark_train.py runs and reports its figures."""
import json
import os
import subprocess
import sys

from engine_toys import HERE, REPO, write_toy_config


def test_benchmark_train_script(tmp_path):
    toy_config = write_toy_config(tmp_path)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), str(HERE)]), OMP_NUM_THREADS="1")
    out = tmp_path / "bench.json"
    p = subprocess.run([sys.executable, str(REPO / "tools" / "benchmark_train.py"), "--config-file", str(toy_config),
                        "--iters", "3", "--warmup", "1", "--json", str(out)], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=240)
    assert p.returncode == 0, p.stderr[-4000:]
    fig = json.loads(out.read_text())
    assert fig["s_per_iter_rlipv2_trainer"] > 0 and fig["ratio_step_rlipv2_over_d2_simple"] > 0
    assert fig["ratio_checkpoint_atomic_over_plain"] > 0 and "ratio_step_rlipv2_over_d2_simple" in p.stdout
