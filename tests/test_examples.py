"""The README's first command: the crash-and-resume example runs end to end."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).parent.parent / "examples" / "crash_resume.py"


def test_crash_resume_example(tmp_path):
    result = subprocess.run(
        [sys.executable, str(EXAMPLE)], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "the child died with exit code 1" in out
    assert "checkpointed steps: ['reserve_stock', 'charge_card']" in out
    assert out.count("step 1: reserving stock") == 1  # replayed, not run again
    assert out.count("step 2: charging") == 1
    assert "succeeded with result charge-checkout-o-1:2" in out
    assert "(exactly one row)" in out and "[('o-1', 'charge-checkout-o-1:2')]" in out
