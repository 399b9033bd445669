"""The real-time bridge's TOML config (``stembridge run --config FILE``).

Public API
----------
- ``RealtimeConfig``: ``channel_map`` ({channel_0_based: stem}), ``score_offset_ms``,
  ``queue_blocks``, ``gain_db`` ({stem: dB}).
- ``load_config(path, stems) -> RealtimeConfig`` (main thread): read and validate; every
  problem raises ``InputError`` with one line naming the file and the key.
- ``apply_score_config(processor, config)`` (main thread, after ``prepare``): install the
  channel map and the score offset in the processor's live score.

Example::

    [score]
    channels = { "10" = "drums", "1" = "piano", "2" = "bass" }   # 1-based MIDI channels
    offset_ms = 0.0                                               # > 0 delays the score

    [realtime]
    queue_blocks = 2          # extra latency in blocks between the callback and the worker

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
from bridge.score import ChannelMap, parse_channel_map

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]


@dataclass
class RealtimeConfig:
    channel_map: ChannelMap | None = None
    score_offset_ms: float = 0.0
    queue_blocks: int = 2
    gain_db: dict[str, float] = field(default_factory=dict)

    def gains(self, all_stems: Sequence[str]) -> list[float]:
        """Linear gain per output stem (``other`` included), in output order."""
        return [10.0 ** (self.gain_db.get(s, 0.0) / 20.0) for s in all_stems]


def _number(raw: Any, where: str) -> float:
    if isinstance(raw, bool) or not isinstance(raw, (int, float)) or not math.isfinite(raw):
        raise InputError(f"{where} must be a finite number, got {raw!r}")
    return float(raw)


def load_config(path: Path | None, stems: Sequence[str]) -> RealtimeConfig:
    """Main thread. ``stems``: the model's predicted stems (``other`` is always allowed)."""
    cfg = RealtimeConfig()
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
    rt = data.get("realtime", {})
    if not isinstance(rt, dict):
        raise InputError(f"{path}: [realtime] must be a table")
    if "queue_blocks" in rt:
        q = rt["queue_blocks"]
        if isinstance(q, bool) or not isinstance(q, int) or not 1 <= q <= 64:
            raise InputError(f"{path}: [realtime] queue_blocks must be an integer 1-64, got {q!r}")
        cfg.queue_blocks = q
    gains = data.get("gain_db", {})
    if not isinstance(gains, dict):
        raise InputError(f"{path}: [gain_db] must be a table of stem = dB")
    allowed = (*stems, "other")
    for stem, db in gains.items():
        if stem not in allowed:
            raise InputError(f"{path}: [gain_db] unknown stem {stem!r} (one of {', '.join(allowed)})")
        cfg.gain_db[stem] = _number(db, f"{path}: [gain_db] {stem}")
    return cfg


def apply_score_config(processor: Any, config: RealtimeConfig) -> None:
    """Main thread: channel map and score offset for live MIDI (kept across prepare/reset)."""
    processor.set_live_score(config.channel_map, config.score_offset_ms)
