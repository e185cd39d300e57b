"""SIGKILL while a checkpoint is being written, again and again: no checkpoint on disk is ever truncated, and
the run resumed with --resume ends with the weights of an uninterrupted run.

The training subprocess writes its checkpoints slowly (a ``sitecustomize`` that this test puts first on
PYTHONPATH makes ``torch.save`` write in chunks with pauses), and the test kills it the moment the temporary
file of a checkpoint appears in the output directory, i.e. with a half-written checkpoint on disk.
"""
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import torch
from engine_toys import HERE, REPO, run_train_net, write_toy_config

from rlipv2.engine.checkpoint import safe_torch_load

COMMON = ["train.max_iter=12", "train.checkpointer.period=2", "train.eval_period=1000",
          "train.resume_fast_forward=True"]

SLOW_SAVE = textwrap.dedent("""
    # Test hook: torch.save writes its bytes in 4 chunks, 0.15 s apart (a slow disk).
    import io, time, torch
    _real_save = torch.save

    def _slow_save(obj, f, *args, **kwargs):
        if isinstance(f, (str, bytes)) or not hasattr(f, "write"):
            return _real_save(obj, f, *args, **kwargs)
        buf = io.BytesIO()
        _real_save(obj, buf, *args, **kwargs)
        data = buf.getvalue()
        step = len(data) // 4 + 1
        for i in range(0, len(data), step):
            f.write(data[i:i + step])
            f.flush()
            time.sleep(0.15)

    torch.save = _slow_save
""")


def _start(args, cwd, hook_dir):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(hook_dir), str(REPO), str(HERE)]), OMP_NUM_THREADS="1")
    return subprocess.Popen([sys.executable, str(REPO / "tools" / "lazyconfig_train_net.py"), *args], cwd=cwd,
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _kill_during_write(proc, out_dir, nth: int, timeout: float = 180.0) -> str:
    """SIGKILL ``proc`` when the temporary file of its ``nth`` checkpoint write (1-based) appears."""
    def tmp_files():
        return {f for f in (os.listdir(out_dir) if out_dir.is_dir() else []) if f.startswith(".model_")
                and f.endswith(".tmp")}

    stale = tmp_files()  # left behind by an earlier kill
    seen: set[str] = set()
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if proc.poll() is not None:
            raise AssertionError(f"the run ended before its checkpoint write #{nth}: {proc.stderr.read()[-3000:]}")
        tmp = sorted(tmp_files() - stale)
        seen.update(tmp)
        if len(seen) >= nth and tmp:
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
            return tmp[0]
        time.sleep(0.01)
    proc.kill()
    raise AssertionError("timed out waiting for a checkpoint write")


def _check_disk(out_dir) -> int:
    """Every *.pth loads completely; last_checkpoint names one of them. Returns its iteration."""
    pths = sorted(f for f in os.listdir(out_dir) if f.endswith(".pth"))
    assert pths, "no complete checkpoint on disk"
    for f in pths:
        data = safe_torch_load(str(out_dir / f))  # raises on a truncated file
        assert set(data) >= {"model", "iteration", "trainer"}, f
    last = (out_dir / "last_checkpoint").read_text().strip()
    assert last in pths
    return safe_torch_load(str(out_dir / last))["iteration"]


@pytest.mark.slow  # five short training runs in subprocesses (~60-90 s on 2 cores)
def test_sigkill_during_checkpoint_writes_then_resume_matches_uninterrupted_run(tmp_path):
    cfg = write_toy_config(tmp_path)
    hook_dir = tmp_path / "hook"
    hook_dir.mkdir()
    (hook_dir / "sitecustomize.py").write_text(SLOW_SAVE)
    ref, run = tmp_path / "ref", tmp_path / "run"

    p = run_train_net(["--config-file", str(cfg), f"train.output_dir={ref}", *COMMON], tmp_path)
    assert p.returncode == 0, p.stderr[-4000:]

    iterations = []
    for k in range(3):  # killed during its 2nd checkpoint write each time (the 1st one completes)
        args = ["--config-file", str(cfg), *(["--resume"] if k else []), f"train.output_dir={run}", *COMMON]
        tmp_name = _kill_during_write(_start(args, tmp_path, hook_dir), run, nth=2)
        assert (run / tmp_name).exists(), "the kill should leave the half-written temporary file behind"
        assert (run / tmp_name).stat().st_size < (run / "model_0000001.pth").stat().st_size
        iterations.append(_check_disk(run))
    assert iterations == sorted(iterations) and iterations[-1] > iterations[0]  # every resume made progress

    proc = _start(["--config-file", str(cfg), "--resume", f"train.output_dir={run}", *COMMON], tmp_path, hook_dir)
    _, err = proc.communicate(timeout=240)
    assert proc.returncode == 0, err[-4000:]
    assert _check_disk(run) == 11
    a, b = safe_torch_load(str(ref / "model_final.pth")), safe_torch_load(str(run / "model_final.pth"))
    assert a["iteration"] == b["iteration"] == 11
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key
