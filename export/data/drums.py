"""Drum grooves and fills on General MIDI percussion notes (rendered on channel 10).

``drum_events(rng, meter, n_bars)`` returns (onset_ql, dur_ql, gm_note, velocity) events.
"""

from __future__ import annotations

import numpy as np

from export.data.song import Meter

KICKS = (36, 36, 35)
SNARES = (38, 38, 40, 37, 39)
HATS = (42, 42, 44, 51, 53, 46, 54, 70, 69)
TOMS = (41, 43, 45, 47, 48, 50)
CRASHES = (49, 49, 57, 55, 52)
BACKBEATS = {"4/4": (1.0, 3.0), "3/4": (1.0, 2.0), "6/8": (1.5,), "5/4": (1.0, 3.0)}


def _grid(meter: Meter, step_ql: float) -> np.ndarray:
    return np.arange(0.0, meter.bar_ql - 1e-9, step_ql)


def drum_events(rng: np.random.Generator, meter: Meter, n_bars: int) -> list[tuple[float, float, int, int]]:
    """A groove with variations, crashes at phrase starts and fills at phrase ends, over ``n_bars`` bars."""
    kick, snare = int(rng.choice(KICKS)), int(rng.choice(SNARES))
    hat = int(rng.choice(HATS))
    hat_step = float(rng.choice([0.25, 0.5, 0.5, 1.0])) if meter.name != "6/8" else 0.5
    backbeats = BACKBEATS[meter.name]
    if meter.name == "3/4" and rng.random() < 0.5:
        backbeats = (2.0,)
    half_time = meter.name == "4/4" and rng.random() < 0.15
    if half_time:
        backbeats = (2.0,)
    four_floor = meter.name == "4/4" and rng.random() < 0.2
    sub = _grid(meter, 0.5)
    kick_pos = {0.0} | ({1.0, 2.0, 3.0} if four_floor else set())
    for p in sub:
        if p not in backbeats and rng.random() < 0.22:
            kick_pos.add(float(p))
    ghost = rng.random() < 0.3
    open_hat_pos = float(rng.choice(sub)) if rng.random() < 0.3 else -1.0
    phrase = int(rng.choice([4, 8]))
    fill_prob = 0.8
    base_vel = int(rng.integers(70, 110))
    ev: list[tuple[float, float, int, int]] = []
    for bar in range(n_bars):
        t0 = bar * meter.bar_ql
        fill = (bar % phrase == phrase - 1) and rng.random() < fill_prob
        fill_start = meter.bar_ql - float(rng.choice([1.0, 2.0, meter.bar_ql / 2])) if fill else meter.bar_ql
        if bar % phrase == 0 and (bar > 0 or rng.random() < 0.5):
            ev.append((t0, 1.0, int(rng.choice(CRASHES)), base_vel + 10))
        for p in _grid(meter, hat_step):
            if p >= fill_start:
                break
            if bar % phrase == 0 and p == 0.0:
                continue
            note = 46 if abs(p - open_hat_pos) < 1e-9 and hat in (42, 44) else hat
            accent = 12 if any(abs(p - q) < 1e-9 for q in meter.pulses_ql) else 0
            ev.append((t0 + p, hat_step, note, base_vel - 20 + accent))
        kicks = set(kick_pos)
        if rng.random() < 0.2:
            kicks.add(float(rng.choice(sub)))
        for p in sorted(kicks):
            if p < fill_start:
                ev.append((t0 + p, 0.5, kick, base_vel + 5))
        for p in backbeats:
            if p < fill_start:
                ev.append((t0 + p, 0.5, snare, base_vel + 8))
        if ghost:
            for p in _grid(meter, 0.25):
                if p < fill_start and p not in backbeats and rng.random() < 0.12:
                    ev.append((t0 + p, 0.25, 38, 35))
        if fill:
            step = float(rng.choice([0.25, 0.5, 1.0 / 3.0]))
            toms = sorted(rng.choice(TOMS, size=3, replace=False), reverse=True)
            p, k = fill_start, 0
            n_steps = int(round((meter.bar_ql - fill_start) / step))
            for k in range(n_steps):
                p = fill_start + k * step
                note = snare if rng.random() < 0.35 else int(toms[min(2, k * 3 // max(n_steps, 1))])
                ev.append((t0 + p, step, note, base_vel + int(k * 20 / max(n_steps, 1))))
                if rng.random() < 0.2:
                    ev.append((t0 + p, step, kick, base_vel))
    return ev
