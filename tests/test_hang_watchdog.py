"""tests/hang_watchdog.py on an inner pytest run: a test blocked on a child process is reported,
its child killed and the test run once more; a test that fails by itself is not rerun."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent

INNER = """
import subprocess
from pathlib import Path

def test_blocks_once():
    mark = Path({mark!r})
    if not mark.exists():
        mark.write_text("first attempt")
        subprocess.run(["sleep", "300"])  # no time limit: only the watchdog can end it
    assert mark.exists()

def test_fails_by_itself():
    assert 1 == 2
"""

PASSES = """
def test_passes():
    assert True
"""


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="the watchdog finds child processes in /proc")
def test_a_stalled_test_is_broken_reported_and_rerun(pytester: pytest.Pytester, monkeypatch, tmp_path):
    shutil.copy(HERE / "hang_watchdog.py", pytester.path / "hang_watchdog.py")
    pytester.makeconftest('pytest_plugins = ["hang_watchdog"]\n')
    pytester.makepyfile(test_inner=INNER.format(mark=str(tmp_path / "mark")))
    monkeypatch.setenv("STEMBRIDGE_TEST_WATCHDOG_S", "3")
    result = pytester.runpytest_subprocess("-raR", "-p", "no:cacheprovider", timeout=120)
    out = result.stdout.str() + result.stderr.str()
    result.assert_outcomes(passed=1, failed=1)  # test_fails_by_itself failed once, not rerun
    assert "watchdog: test_inner.py::test_blocks_once (call) ran over 3 s" in out, out
    assert "sleep 300" in out, out  # the child it killed is named
    assert "RERUN test_inner.py::test_blocks_once" in out, out
    assert "RERUN test_inner.py::test_fails_by_itself" not in out, out


def test_the_watchdog_stands_aside_for_a_debugger(pytester: pytest.Pytester):
    """With ``--pdb`` nothing is marked for rerunning (pytest-rerunfailures refuses reruns there)."""
    shutil.copy(HERE / "hang_watchdog.py", pytester.path / "hang_watchdog.py")
    pytester.makeconftest('pytest_plugins = ["hang_watchdog"]\n')
    pytester.makepyfile(test_inner=PASSES)
    result = pytester.runpytest_subprocess("--pdb", "-p", "no:cacheprovider", timeout=120)
    result.assert_outcomes(passed=1)
