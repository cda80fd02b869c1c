"""One testbed build at a time per cache: a second process waits, then finds the first one's work."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from kvha_testbed import build


def test_a_second_build_waits_for_the_first_to_release_the_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    holder = textwrap.dedent(
        """
        import sys, time
        from kvha_testbed import build
        with build._build_lock():
            print("holding", flush=True)
            time.sleep(1.5)
        """
    )
    other = subprocess.Popen([sys.executable, "-c", holder], stdout=subprocess.PIPE, text=True)
    try:
        assert other.stdout is not None
        assert other.stdout.readline().strip() == "holding"
        started = time.monotonic()
        with build._build_lock():
            waited = time.monotonic() - started
    finally:
        other.wait(timeout=10)
    assert waited >= 1.0, f"took the lock after {waited:.2f}s while the other build held it"
    assert (tmp_path / "kvha-testbed" / "build.lock").exists()
