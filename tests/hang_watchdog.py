"""A pytest plugin that keeps one stuck test from stalling the whole run.

A test phase (setup, call or teardown) that runs past ``STEMBRIDGE_TEST_WATCHDOG_S`` seconds
(default 300) gets its name and every thread's stack printed, then the processes this pytest
process started are killed: the bridges and tools first, the ``jackd`` servers ``GRACE_S`` later
(a libjack call blocked on a wedged server returns once the server is gone). The blocked wait
returns, the phase fails (whatever the wait returned), and pytest-rerunfailures runs the test
once more (only tests the watchdog had to break are rerun; the summary lists them). A rerun
cannot revive a module-scoped server that was killed: such a test fails twice, quickly, instead
of stalling. A phase still standing ``GIVE_UP_S`` after the kills ends the run with a one-line
reason; a C-level timer (``faulthandler``) ends it with every stack where even the watchdog
thread cannot run (a hang holding the GIL) or a test item as a whole, reruns and module
teardowns included, outlasts ``BACKSTOP_S``. Off with ``--pdb`` / ``--trace`` (and rerunning
is refused there) and with a limit of 0. Messages go to the terminal's own stderr, beside
pytest's capture.
"""

from __future__ import annotations

import faulthandler
import os
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

LIMIT_S = float(os.environ.get("STEMBRIDGE_TEST_WATCHDOG_S", "300"))
GRACE_S = 20.0
GIVE_UP_S = 120.0
BACKSTOP_S = 2 * (LIMIT_S + GRACE_S + GIVE_UP_S) + 60.0
BROKEN = pytest.StashKey[bool]()
_STDERR: int | None = None  # a copy of the terminal's stderr, taken while pytest's capture is off


def descendants(pid: int) -> list[int]:
    """Every live process under ``pid`` (from /proc; empty where there is none)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def cmdline(pid: int) -> str:
    """Process ``pid``'s command line, its arguments joined by spaces ("" once it is gone)."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def _say(line: str, stacks: bool = False) -> None:
    if _STDERR is None:
        return
    os.write(_STDERR, f"\nwatchdog: {line}\n".encode())
    if stacks:
        faulthandler.dump_traceback(file=_STDERR, all_threads=True)


def _is_jackd(cmd: str) -> bool:
    return Path(cmd.split(" ", 1)[0]).name == "jackd"


class _Watch:
    def __init__(self, item: pytest.Item, phase: str) -> None:
        self.item, self.phase = item, phase
        self.done = threading.Event()
        self.lock = threading.Lock()
        self.fired = False
        self.thread = threading.Thread(target=self._run, name="test-watchdog", daemon=True)

    def finish(self) -> bool:
        """Main thread, at the phase's end: whether the watchdog broke it."""
        with self.lock:
            self.done.set()
            return self.fired

    def _kill(self, which: Callable[[str], bool]) -> list[str]:
        killed = []
        for pid in descendants(os.getpid()):
            cmd = cmdline(pid)
            if which(cmd):
                try:
                    os.kill(pid, signal.SIGKILL)
                    killed.append(f"{pid} {cmd[:100]}")
                except OSError:
                    pass
        return killed

    def _run(self) -> None:
        name = f"{self.item.nodeid} ({self.phase})"
        if self.done.wait(LIMIT_S):
            return
        with self.lock:  # the phase ends either before this (not broken) or after it (failed by _watched)
            if self.done.is_set():
                return
            self.fired = True
            self.item.stash[BROKEN] = True
        _say(f"{name} ran over {LIMIT_S:.0f} s; every thread's stack follows", stacks=True)
        killed = self._kill(lambda cmd: not _is_jackd(cmd))
        _say(f"{name} ran over {LIMIT_S:.0f} s; killed: {killed or 'nothing'}")
        if self.done.wait(GRACE_S):
            return
        killed = self._kill(_is_jackd)
        _say(f"{name} still stands; killed the JACK servers: {killed or 'none'}")
        if self.done.wait(GIVE_UP_S):
            return
        _say(f"{name} still stands {GIVE_UP_S:.0f} s after its processes were killed: ending the test run")
        os._exit(3)


def _active(config: pytest.Config) -> bool:
    return LIMIT_S > 0 and not (config.getoption("usepdb", False) or config.getoption("trace", False))


@contextmanager
def _watched(item: pytest.Item, phase: str) -> Iterator[None]:
    if not _active(item.config):
        yield
        return
    watch = _Watch(item, phase)
    watch.thread.start()
    try:
        yield
    finally:
        broken = watch.finish()
    if broken:  # a wait the kills ended may have returned normally: the phase still stalled
        pytest.fail(f"stalled: {phase} ran over {LIMIT_S:.0f} s and was broken by the watchdog", pytrace=False)


def pytest_configure(config: pytest.Config) -> None:
    global _STDERR
    if _STDERR is None:
        _STDERR = os.dup(2)  # pytest's capture is off between loading the conftests and collecting


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[object]:
    if not _active(item.config) or _STDERR is None:
        return (yield)
    faulthandler.dump_traceback_later(BACKSTOP_S, exit=True, file=_STDERR)
    try:
        return (yield)
    finally:
        faulthandler.cancel_dump_traceback_later()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Iterator[None]:
    with _watched(item, "setup"):
        return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    with _watched(item, "call"):
        return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item) -> Iterator[None]:
    with _watched(item, "teardown"):
        return (yield)


def _broken(item: pytest.Item) -> Callable[[], bool]:
    return lambda: item.stash.get(BROKEN, False)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Every test may be rerun once, only when the watchdog broke it."""
    if not _active(config) or not config.pluginmanager.hasplugin("rerunfailures"):
        return
    for item in items:
        item.add_marker(pytest.mark.flaky(reruns=1, condition=_broken(item)))
