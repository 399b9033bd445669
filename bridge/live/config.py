"""The real-time bridge's TOML config (``stembridge run --config FILE``).

Public API
----------
- ``RealtimeConfig``: ``parts`` ({channel_0_based: part name}, for ``run --parts``),
  ``channel_map`` ({channel_0_based: stem}), ``score_offset_ms``,
  ``queue_blocks``, ``worker_priority``, ``gain_db`` ({stem: dB}), ``send`` (stems sent live, or None for all),
  ``monitor`` ({stem: dB} summed into one stereo pair, or None).
- ``load_config(path, stems, parts_option=None, followed_parts=None) -> RealtimeConfig`` (main thread): read and
  validate; every problem raises ``InputError`` with one line naming the file and the key.
- ``parse_parts_option(raw) -> {channel_0_based: part name}``: ``--parts 1,2,10``.
- ``parse_send(raw, stems, where) -> tuple`` / ``parse_monitor(raw, stems, where) -> dict``:
  ``--send drums,bass`` (or a TOML list) and ``--monitor "drums=-6,bass"`` (or a TOML table
  of stem = dB) checked against ``stems`` (every output, ``other``/``residual`` included);
  ``InputError`` naming the first unknown stem.
- ``apply_score_config(processor, config)`` (main thread, after ``prepare``): install the
  channel map and the score offset in the processor's live score.

Example::

    [score]
    channels = { "10" = "drums", "1" = "piano", "2" = "bass" }   # 1-based MIDI channels
    offset_ms = 0.0                                               # > 0 delays the score
    classes_from = "network"  # or "parts" / "fused": class stems from the score's parts (run --classes-from)

    [parts]                   # stembridge run --parts: one stem per channel
    channels = { "1" = "violin", "2" = "cello", "10" = "drums" }
    low_latency = false       # true: 46 ms window instead of 93 ms (worse separation)
    kit_from = "network"      # the channel-10 part from the network's drums stem, or "score"

    [realtime]
    queue_blocks = 2          # blocks between the callback and the worker (default: enough for 5 ms, at least 2)
    worker_priority = 0       # the worker's SCHED_FIFO priority where the system grants it (0: none; try 1)
    send = ["drums", "bass"]  # only these stems go out (JACK: only their ports; --send)
    # monitor = { drums = -6.0, bass = 0.0 }   # or: one stereo pair, their sum (--monitor)

    [gain_db]
    drums = -3.0              # per-stem output gain (stems and `other`)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bridge.errors import InputError
from bridge.live.worker import DEFAULT_RT_PRIORITY
from bridge.score import ChannelMap, parse_channel_map

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]


KIT_SOURCES = ("network", "score")  # where `run --parts` takes a channel-10 part from
CLASS_SOURCES = ("network", "parts", "fused")  # where `run` takes the class stems from ([score] classes_from)
QUEUE_SLACK_MS = 5.0  # the worker's room for one network frame (about 1-2.5 ms here) and the OS's jitter


def auto_queue_blocks(block_size: int, sample_rate: int) -> int:
    """Blocks between the callback and the worker when the config names none: at least
    ``QUEUE_SLACK_MS`` of room and at least 2 blocks (2 from 128 frames up at 44.1 / 48 kHz; 4 at 64
    frames, where one network frame takes longer than a period)."""
    period_ms = 1000.0 * block_size / sample_rate
    return max(2, math.ceil(QUEUE_SLACK_MS / period_ms - 1e-9))


@dataclass
class RealtimeConfig:
    parts: dict[int, str] = field(default_factory=dict)  # [parts] channels: 0-based channel -> part name
    parts_low_latency: bool = False  # [parts] low_latency: the 46 ms window
    parts_kit_from: str = "network"  # [parts] kit_from: the drum kit part from "network" or "score"
    channel_map: ChannelMap | None = None
    score_offset_ms: float = 0.0
    classes_from: str = "network"  # [score] classes_from: class stems from the "network" or the score's "parts"
    queue_blocks: int | None = None  # None: auto_queue_blocks(block_size, sample_rate)
    worker_priority: int = DEFAULT_RT_PRIORITY  # [realtime] worker_priority: SCHED_FIFO priority, 0: none
    gain_db: dict[str, float] = field(default_factory=dict)
    send: tuple[str, ...] | None = None  # [realtime] send: stems sent live (None: all)
    monitor: dict[str, float] | None = None  # [realtime] monitor: stem -> dB of the stereo mix

    def gains(self, all_stems: Sequence[str]) -> list[float]:
        """Linear gain per output stem (``other`` included), in output order."""
        return [10.0 ** (self.gain_db.get(s, 0.0) / 20.0) for s in all_stems]


def _number(raw: Any, where: str) -> float:
    if isinstance(raw, bool) or not isinstance(raw, (int, float)) or not math.isfinite(raw):
        raise InputError(f"{where} must be a finite number, got {raw!r}")
    return float(raw)


def parse_parts_option(raw: str) -> dict[int, str]:
    """``--parts 1,2,10`` -> {0: "ch1", 1: "ch2", 9: "ch10"}; ``InputError`` naming a bad item."""
    out: dict[int, str] = {}
    for item in (s.strip() for s in raw.split(",")):
        if not item.isdigit() or not 1 <= int(item) <= 16:
            raise InputError(f"--parts: {item!r} is not a MIDI channel 1-16")
        if int(item) - 1 in out:
            raise InputError(f"--parts: channel {item} is given twice")
        out[int(item) - 1] = f"ch{int(item)}"
    return out


def _check_stem(name: str, stems: Sequence[str], where: str) -> str:
    if name not in stems:
        raise InputError(f"{where}: unknown stem {name!r} (one of {', '.join(stems)})")
    return name


def parse_send(raw: Any, stems: Sequence[str], where: str = "--send") -> tuple[str, ...]:
    """``"drums,bass"`` or ``["drums", "bass"]`` -> the named stems in ``stems`` order."""
    items = [s.strip() for s in raw.split(",")] if isinstance(raw, str) else raw
    if not isinstance(items, list) or not items or not all(isinstance(s, str) and s for s in items):
        raise InputError(f"{where} must name at least one stem: drums,bass")
    chosen = {_check_stem(s, stems, where) for s in items}
    return tuple(s for s in stems if s in chosen)


def parse_monitor(raw: Any, stems: Sequence[str], where: str = "--monitor") -> dict[str, float]:
    """``"drums=-6,bass"`` or ``{drums = -6, bass = 0}`` -> {stem: dB} in ``stems`` order
    (a stem without ``=dB`` plays at 0 dB)."""
    table: dict[str, Any] = {}
    if isinstance(raw, str):
        for item in (s.strip() for s in raw.split(",")):
            name, _, db = item.partition("=")
            try:
                table[name.strip()] = float(db) if db.strip() else 0.0
            except ValueError:
                raise InputError(f"{where}: {item!r} is not stem or stem=dB") from None
    elif isinstance(raw, dict):
        table = dict(raw)
    if not table or not all(table):
        raise InputError(f"{where} must name at least one stem: drums=-6,bass")
    for name, db in table.items():
        _check_stem(name, stems, where)
        table[name] = _number(db, f"{where} {name}")
    return {s: float(table[s]) for s in stems if s in table}


def _parse_parts_table(raw: Any, where: str) -> dict[int, str]:
    """``{ "1" = "violin", "10" = "drums" }`` -> {0: "violin", 9: "drums"} (names made file-safe)."""
    from bridge.parts.score_parts import part_file_name

    if not isinstance(raw, dict) or not raw:
        raise InputError(f"{where} must be a non-empty table of channel = part name")
    out: dict[int, str] = {}
    for key, name in raw.items():
        if not str(key).strip().isdigit() or not 1 <= int(str(key)) <= 16:
            raise InputError(f"{where} entry {key!r}: channel must be a number 1-16")
        if not isinstance(name, str) or not name.strip():
            raise InputError(f"{where} entry {key!r}: the part needs a name")
        safe = part_file_name(name.strip())
        if safe == "residual" or safe in out.values():
            raise InputError(f"{where} entry {key!r}: part name {safe!r} is taken")
        out[int(str(key)) - 1] = safe
    return out


def load_config(
    path: Path | None,
    stems: Sequence[str],
    parts_option: str | None = None,
    followed_parts: Sequence[str] | None = None,
) -> RealtimeConfig:
    """Main thread. ``stems``: the model's predicted stems (``other`` is always allowed).

    With ``parts_option`` (the ``--parts`` value; ``""`` when given without channels) the stems
    are the score's parts: from ``--parts`` or the ``[parts]`` table, plus ``residual``. With
    ``followed_parts`` (``run --follow``: the followed score's part names) those are the stems,
    plus ``residual``, and the ``[parts]`` channels are not used."""
    if followed_parts is not None:
        parts_option = ""
    cfg = RealtimeConfig()
    if parts_option:
        cfg.parts = parse_parts_option(parts_option)
    if path is None:
        return cfg
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"config file '{path}' does not exist") from None
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"config file '{path}' is unreadable: {e}") from None
    except tomllib.TOMLDecodeError as e:
        raise InputError(f"config file '{path}' is not valid TOML: {e}") from None
    score = data.get("score", {})
    if not isinstance(score, dict):
        raise InputError(f"{path}: [score] must be a table")
    if "channels" in score:
        try:
            cfg.channel_map = parse_channel_map(score["channels"], tuple(stems))
        except InputError as e:
            raise InputError(f"{path}: [score] {e}") from None
    if "offset_ms" in score:
        cfg.score_offset_ms = _number(score["offset_ms"], f"{path}: [score] offset_ms")
    if "classes_from" in score:
        source = score["classes_from"]
        if source not in CLASS_SOURCES:
            raise InputError(f'{path}: [score] classes_from must be "network", "parts" or "fused", got {source!r}')
        cfg.classes_from = source
    rt = data.get("realtime", {})
    if not isinstance(rt, dict):
        raise InputError(f"{path}: [realtime] must be a table")
    if "queue_blocks" in rt:
        q = rt["queue_blocks"]
        if isinstance(q, bool) or not isinstance(q, int) or not 1 <= q <= 64:
            raise InputError(f"{path}: [realtime] queue_blocks must be an integer 1-64, got {q!r}")
        cfg.queue_blocks = q
    if "worker_priority" in rt:
        q = rt["worker_priority"]
        if isinstance(q, bool) or not isinstance(q, int) or not 0 <= q <= 98:
            raise InputError(f"{path}: [realtime] worker_priority must be an integer 0-98, got {q!r}")
        cfg.worker_priority = q
    route = {k: rt[k] for k in ("send", "monitor") if k in rt}
    if parts_option is not None:
        parts = data.get("parts", {})
        if not isinstance(parts, dict):
            raise InputError(f"{path}: [parts] must be a table")
        if "channels" in parts and not parts_option:
            cfg.parts = _parse_parts_table(parts["channels"], f"{path}: [parts] channels")
        if "low_latency" in parts:
            if not isinstance(parts["low_latency"], bool):
                raise InputError(f"{path}: [parts] low_latency must be true or false")
            cfg.parts_low_latency = parts["low_latency"]
        if "kit_from" in parts:
            if parts["kit_from"] not in KIT_SOURCES:
                raise InputError(f'{path}: [parts] kit_from must be "network" or "score", got {parts["kit_from"]!r}')
            cfg.parts_kit_from = parts["kit_from"]
        stems = tuple(cfg.parts.values())
        if followed_parts is not None:
            cfg.parts, stems = {}, tuple(followed_parts)
    gains = data.get("gain_db", {})
    if not isinstance(gains, dict):
        raise InputError(f"{path}: [gain_db] must be a table of stem = dB")
    allowed = (*stems, "residual" if parts_option is not None else "other")
    for stem, db in gains.items():
        if stem not in allowed:
            raise InputError(f"{path}: [gain_db] unknown stem {stem!r} (one of {', '.join(allowed)})")
        cfg.gain_db[stem] = _number(db, f"{path}: [gain_db] {stem}")
    if "send" in route:
        cfg.send = parse_send(route["send"], allowed, f"{path}: [realtime] send")
    if "monitor" in route:
        cfg.monitor = parse_monitor(route["monitor"], allowed, f"{path}: [realtime] monitor")
    if cfg.send is not None and cfg.monitor is not None:
        raise InputError(f"{path}: [realtime] has both send and monitor; choose one")
    return cfg


def apply_score_config(processor: Any, config: RealtimeConfig) -> None:
    """Main thread: channel map and score offset for live MIDI (kept across prepare/reset)."""
    processor.set_live_score(config.channel_map, config.score_offset_ms)
