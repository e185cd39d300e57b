"""Parity with the official RLIPv2 code (CPU, random weights): runs tools/parity_official.py.

Needs a checkout of github.com/JacobYuan7/RLIPv2 named by the environment variable RLIPV2_OFFICIAL_REPO;
skipped otherwise. Slow (builds two R50 models).
"""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
OFFICIAL = os.environ.get("RLIPV2_OFFICIAL_REPO")


@pytest.mark.slow
@pytest.mark.skipif(not OFFICIAL, reason="set RLIPV2_OFFICIAL_REPO to a checkout of the official RLIPv2 code")
@pytest.mark.parametrize("extra", [[], ["--train-mode"], ["--variant", "parsed"],
                                   ["--backbone", "swin_t", "--gate", "GLIP", "--size", "131x197"],
                                   ["--variant", "tagger", "--gate", "GLIP"],
                                   ["--variant", "tagger", "--gate", "GLIP", "--train-mode", "--full-slots"]])
def test_outputs_match_official_code(extra):
    env = {**os.environ, "PYTHONPATH": REPO}
    r = subprocess.run([sys.executable, os.path.join(REPO, "tools", "parity_official.py"), "--official", OFFICIAL,
                        *extra], capture_output=True, text=True, env=env, cwd=REPO, timeout=1200)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "PASS" in r.stdout
