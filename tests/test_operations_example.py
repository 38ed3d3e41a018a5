"""The runnable operations example works end to end against a real worker."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_operations_example_runs(start_worker):
    start_worker("examples.operations_app:app")
    out = subprocess.run([sys.executable, "-m", "examples.operations_app"], cwd=ROOT,
                         capture_output=True, text=True, timeout=90, env=os.environ.copy())
    assert out.returncode == 0, out.stderr
    assert "fetch -> 19 | callback -> length: 19" in out.stdout
    assert "chain last step -> doubled: 42" in out.stdout
    assert "failure callback -> #ops: RuntimeError ['no luck with 7']" in out.stdout
