"""A private ``jackd -d dummy`` server (no sound card) for the demo, tests and benchmarks.

Public API
----------
- ``jack_server_running(name=None) -> bool``: whether a JACK server answers (``name`` or
  ``JACK_DEFAULT_SERVER`` / the default server).
- ``PrivateJackd(sample_rate=44100, block_size=256, sync=False, name=None, realtime=True)``:
  context manager (main thread) that starts ``jackd -n NAME -d dummy`` with a unique server name, waits until
  it answers (``jack_lsp``, or an in-process probe where jackd2's tools are missing), and always kills it
  on exit. ``name`` and ``env()`` (a copy of ``os.environ``
  with ``JACK_DEFAULT_SERVER`` set) let clients and subprocesses reach it; ``kill()`` stops it
  early (to test a server going away); ``ports()`` lists its ports and ``wait_for_port(name, timeout_s)``
  waits for one, each look a ``jack_lsp`` child with its own time limit (a client open that hangs in
  libjack is killed and retried instead of stalling the caller; an in-process client where jackd2's
  tools are missing). ``sync=True`` runs it synchronously (``-S``: the server
  waits for slow clients instead of skipping them, for tests on a loaded machine).
  ``realtime=True`` asks for real-time scheduling (``-R``, as a musician's server runs: the
  server's and every client's process thread get SCHED_FIFO); where the system refuses it
  (no CAP_SYS_NICE / rtprio limit) jackd says so in its log and runs without it.
- ``reclaim_dead_servers() -> int``: free the JACK server registry slots of private servers
  (``stembridge-*``) whose jackd is gone. JACK2 keeps 8 slots and frees a dead server's slot
  only when a server of the same name starts again, so every private server that died without
  unregistering (SIGKILL, a crash) would hold one for good and, after 8, no jackd could start
  ("Too many servers already active"). ``PrivateJackd`` calls it before starting jackd.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
import uuid
from typing import Any

from bridge.errors import DeviceError


def jack_server_running(name: str | None = None) -> bool:
    """Main thread. True when a JACK server answers (never starts one)."""
    try:
        from bridge.backends.jack import _quiet_jack

        jack = _quiet_jack()
    except (ImportError, OSError):
        return False
    try:
        c = jack.Client(f"probe-{uuid.uuid4().hex[:6]}", no_start_server=True, servername=name)
    except jack.JackOpenError:
        return False
    c.close()
    return True


# JACK2's shm registry (/dev/shm/jack-shm-registry, common/shm.h): a header of six 32-bit
# fields (magic 'JACK', protocol, type, size, hdr_len, entry_len), then MAX_SERVERS entries of
# {pid_t pid; char name[JACK_SERVER_NAME_SIZE + 1]} padded to 264 bytes; names are
# "jack-<uid>:<server name>".
_REGISTRY = "/dev/shm/jack-shm-registry"
_MAGIC, _MAX_SERVERS, _SERVER_AT, _SERVER_SIZE = 0x4A41434B, 8, 24, 264


def reclaim_dead_servers(prefix: str = "stembridge-") -> int:
    """Main thread. Zero the registry slots of servers named ``prefix*`` whose pid is gone;
    returns how many. Touches nothing when the registry is missing or its layout is not the
    one described above (another JACK version)."""
    import mmap
    import struct

    try:
        fd = os.open(_REGISTRY, os.O_RDWR)
    except OSError:
        return 0
    n = 0
    try:
        size = os.fstat(fd).st_size
        end = _SERVER_AT + _MAX_SERVERS * _SERVER_SIZE
        if size < end:
            return 0
        with mmap.mmap(fd, end) as m:
            magic, _, _, _, hdr_len = struct.unpack_from("<IIIII", m, 0)
            if magic != _MAGIC or not end <= hdr_len <= end + 8:
                return 0
            for i in range(_MAX_SERVERS):
                at = _SERVER_AT + i * _SERVER_SIZE
                pid = struct.unpack_from("<i", m, at)[0]
                name = bytes(m[at + 4 : at + _SERVER_SIZE]).split(b"\0", 1)[0].decode(errors="replace")
                if pid <= 0 or f":{prefix}" not in name:
                    continue
                try:
                    os.kill(pid, 0)
                    continue  # still running (or another user's)
                except ProcessLookupError:
                    pass
                except PermissionError:
                    continue
                m[at : at + _SERVER_SIZE] = bytes(_SERVER_SIZE)
                n += 1
    finally:
        os.close(fd)
    return n


class PrivateJackd:
    def __init__(
        self,
        sample_rate: int = 44100,
        block_size: int = 256,
        sync: bool = False,
        name: str | None = None,
        timeout_s: float = 20.0,
        realtime: bool = True,
    ) -> None:
        self.sample_rate = sample_rate
        self.block_size = block_size
        self.sync = sync
        # at most 23 characters: jackd2 1.9.21's jack_lsp aborts (glibc malloc assertion) on a
        # server name of 24 or more, so the JACK tools could not inspect a longer-named server
        self.name = name or f"stembridge-{os.getpid()}-{uuid.uuid4().hex[:4]}"
        self.timeout_s = timeout_s
        self.realtime = realtime
        self.proc: subprocess.Popen[bytes] | None = None

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["JACK_DEFAULT_SERVER"] = self.name
        return env

    def __enter__(self) -> PrivateJackd:
        jackd = shutil.which("jackd")
        if jackd is None:
            raise DeviceError("jackd is not installed (Debian/Ubuntu: apt-get install jackd2)")
        reclaim_dead_servers()
        scheduling = "-R" if self.realtime else "--no-realtime"
        cmd = [jackd, "-n", self.name, scheduling, "-t", "10000" if self.sync else "2000"]
        if self.sync:
            cmd.append("-S")
        cmd += ["-d", "dummy", "-r", str(self.sample_rate), "-p", str(self.block_size)]
        self._log = tempfile.TemporaryFile()  # a file, not a pipe: a chatty jackd never blocks
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + self.timeout_s
        while self.ports() is None:
            if self.proc.poll() is not None:
                self._log.seek(0)
                err = self._log.read().decode(errors="replace").strip()
                last = err.splitlines()[-1] if err else "no output"
                raise DeviceError(f"jackd exited at start: {last}")
            if time.monotonic() > deadline:
                self.kill()
                raise DeviceError(f"jackd did not answer within {self.timeout_s:.0f} s")
            time.sleep(0.1)
        return self

    def ports(self, timeout_s: float = 10.0) -> list[str] | None:
        """Main thread. The server's port names (``jack_lsp -s NAME``, killed after ``timeout_s``; an
        in-process client where jackd2's tools are missing), or None when it does not answer in time or
        at all."""
        if shutil.which("jack_lsp") is None:
            return self._ports_in_process()
        env = self.env()
        env["JACK_NO_START_SERVER"] = "1"
        try:
            r = subprocess.run(
                ["jack_lsp", "-s", self.name], capture_output=True, text=True, timeout=timeout_s, env=env
            )
        except (subprocess.TimeoutExpired, OSError):
            return None
        return r.stdout.splitlines() if r.returncode == 0 else None

    def _ports_in_process(self) -> list[str] | None:
        from bridge.backends.jack import _quiet_jack

        jack = _quiet_jack()
        try:
            client = jack.Client(f"ports-{uuid.uuid4().hex[:6]}", no_start_server=True, servername=self.name)
        except jack.JackOpenError:
            return None
        try:
            return [p.name for p in client.get_ports()]
        finally:
            client.close()

    def wait_for_port(self, name: str, timeout_s: float) -> None:
        """Main thread. Until ``name`` (``client:port``) is one of the server's ports; raises
        ``DeviceError`` after ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if name in (self.ports() or ()):
                return
            time.sleep(0.2)
        raise DeviceError(f"JACK port {name} did not appear within {timeout_s:.0f} s")

    def kill(self) -> None:
        """Main thread. Stop the server (SIGTERM, then SIGKILL) and reap it."""
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(15.0)  # longer than the client timeout (-t 10 s): a SIGKILLed server leaks its registry slot
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5.0)

    def __exit__(self, *exc: Any) -> None:
        self.kill()
        self._log.close()
