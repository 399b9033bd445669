"""``stembridge run``: the real-time bridge on JACK or PortAudio.

Public API
----------
- ``run_bridge(args) -> int`` (main thread): load the model (or, with ``--parts`` / ``--follow``, set up a
  ``PartsProcessor`` for the score's channels), open the backend, prepare and warm up the
  processor at the backend's rate and block size, start the worker
  (``live.host.RealtimeHost``; a thread or a child process, ``--worker``), then start the
  stream; print a live status line on stderr until Ctrl-C / SIGTERM, ``--duration``
  seconds, or a failure (server shutdown, a MIDI port given by name gone, worker error or
  exit, stalled callback).
  ``--send drums,bass`` / ``--monitor "drums=-6,bass"`` (or ``[realtime] send`` / ``monitor``
  in the config; the option wins) choose what goes out (``live.host.OutputRoute``); unknown
  stems end in ``InputError`` before any device is opened.
  ``--stats FILE`` is written atomically on every exit path.
  Returns 0 on a normal stop; failures raise ``StembridgeError`` (one line in the CLI).
- ``open_backend(name, args)``: the backend object for ``jack`` or ``portaudio``.

Threads: this module runs on the main thread only; the backend's callback and the worker are
in ``live.host`` and ``backends``. Python is soft real time: the callback holds the GIL while it
copies; ``sys.setswitchinterval`` is lowered so the worker's Python code yields quickly.
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
from typing import Any

from bridge.errors import DeviceError, InputError, StembridgeError
from bridge.instruments import DRUM_CHANNEL

STATUS_INTERVAL_S = 0.25
PORT_CHECK_INTERVAL_S = 1.0  # how often the MIDI ports given by name are looked for
STALL_TIMEOUT_S = 10.0  # no callback for this long ends the run
SWITCH_INTERVAL_S = 0.0005


def open_backend(name: str, args: argparse.Namespace) -> Any:
    if name == "jack":
        from bridge.backends.jack import JackBackend

        return JackBackend()
    from bridge.backends.portaudio import PortAudioBackend

    return PortAudioBackend(
        sample_rate=args.rate,
        block_size=args.block,
        input_device=args.input,
        output_device=args.output,
        midi_in=args.midi_in,
        midi_out=args.midi_out,
    )


def _choose_backend(args: argparse.Namespace) -> str:
    if args.backend:
        return str(args.backend)
    from bridge.live.jackd import jack_server_running

    return "jack" if jack_server_running() else "portaudio"


def run_bridge(args: argparse.Namespace) -> int:
    """Main thread. Run until stopped; see the module docstring."""
    from bridge.engine import Processor
    from bridge.live.config import apply_score_config, auto_queue_blocks
    from bridge.live.host import DEFAULT_WORKER, OutputRoute, RealtimeHost
    from bridge.live.status import status_line, write_stats

    if args.duration is not None and not args.duration > 0:
        raise InputError(f"--duration must be > 0 seconds, got {args.duration}")
    name = _choose_backend(args)
    processor, config, label = _make_processor(args)
    send, monitor = _choose_outputs(args, config, processor.stems)
    backend = open_backend(name, args)
    host: RealtimeHost | None = None
    stats: dict[str, Any] = {"backend": name, "error": None, "latency_samples": None, "latency_terms": {}}
    stats.update(blocks=0, xruns=0, deadline_misses=0, worker_ms_p50=0.0, worker_ms_p99=0.0)
    stats.update(sample_rate=None, block_size=None, send=list(send) if send else None, monitor=monitor)
    say = (lambda msg: print(msg, file=sys.stderr, flush=True)) if not args.quiet else (lambda msg: None)
    old_switch = sys.getswitchinterval()
    try:
        sample_rate, block_size = backend.open()
        stats.update(sample_rate=sample_rate, block_size=block_size)
        processor.prepare(sample_rate, block_size, 2)  # allocates and warms the model up
        hears_score = isinstance(processor, Processor) or getattr(processor, "is_live", False)  # parts send no notes
        if hears_score:
            apply_score_config(processor, config)
        host = RealtimeHost(
            processor,
            block_size,
            queue_blocks=config.queue_blocks or auto_queue_blocks(block_size, sample_rate),
            gains=config.gains(processor.stems),
            worker=getattr(args, "worker", None) or DEFAULT_WORKER,
            rt_priority=config.worker_priority,
        )
        stats.update(host.stats())
        host.start()  # a worker process is warm when this returns
        gc.collect()
        gc.freeze()  # the model, buffers and modules are never scanned again: shorter GC pauses
        sys.setswitchinterval(SWITCH_INTERVAL_S)
        with_notes = hears_score
        route = OutputRoute(processor.stems, block_size, send=send, monitor=monitor)
        if name == "jack":
            backend.start(
                host,
                processor.stems,
                connect=args.connect,
                midi_in=args.midi_in,
                midi_out=args.midi_out,
                with_notes=with_notes,
                route=route,
            )
        else:
            backend.start(host, processor.stems, with_notes=with_notes, route=route)
        terms = ", ".join(f"{k} {v}" for k, v in host.latency_terms.items())
        say(
            f"stembridge: {name} {sample_rate} Hz, {block_size} frames, {label}; "
            f"latency {host.latency_samples} samples = {1000 * host.latency_samples / sample_rate:.2f} ms ({terms})"
        )
        if monitor is not None:
            say("stembridge: monitor mix " + " + ".join(f"{s} {db:+.1f} dB" for s, db in monitor.items()))
        elif send is not None:
            say("stembridge: sending " + ", ".join(send))
        for line in getattr(backend, "notices", []):
            say(f"stembridge: {line}")
        _main_loop(host, backend, processor.stems, args, say, status_line)
    except KeyboardInterrupt:
        pass  # Ctrl-C / SIGTERM: a normal stop
    except StembridgeError as e:
        stats["error"] = str(e)
        raise
    finally:
        try:
            backend.close()
            if host is not None:
                host.stop()
                stats.update(host.stats())
        except KeyboardInterrupt:
            pass
        finally:
            sys.setswitchinterval(old_switch)
            if args.stats is not None:
                write_stats(args.stats, stats)
    if host is None:
        return 0
    say(
        f"stembridge: stopped after {stats['blocks']} blocks; misses {stats['deadline_misses']}, "
        f"xruns {stats['xruns']}, worker p50 {stats['worker_ms_p50']:.2f} ms, p99 {stats['worker_ms_p99']:.2f} ms "
        f"(budget {stats['budget_ms']:.2f} ms)"
    )
    processor.release()
    return 0


def _choose_outputs(
    args: argparse.Namespace, config: Any, stems: Any
) -> tuple[tuple[str, ...] | None, dict[str, float] | None]:
    """Main thread. ``(send, monitor)`` from ``--send`` / ``--monitor``, else the config; both
    None: every stem goes out. ``InputError`` for unknown stems or both given."""
    from bridge.live.config import parse_monitor, parse_send

    raw_send, raw_monitor = getattr(args, "send", None), getattr(args, "monitor", None)
    if raw_send is not None and raw_monitor is not None:
        raise InputError("--send and --monitor exclude each other: send stems, or one stereo mix of them")
    if raw_send is not None:
        return parse_send(raw_send, stems), None
    if raw_monitor is not None:
        return None, parse_monitor(raw_monitor, stems)
    return config.send, config.monitor


def _make_processor(args: argparse.Namespace) -> tuple[Any, Any, str]:
    """Main thread. The processor (the model's, or the score parts' with ``--parts``), the
    config, and a label for the start line."""
    from bridge.engine import Processor
    from bridge.live.config import load_config, parse_parts_option

    if getattr(args, "classes_from", None) and (args.parts is not None or getattr(args, "follow", None) is not None):
        raise InputError("--classes-from picks the source of class stems; --parts / --follow give one stem per part")
    raw_masks_refused = "--raw-masks is for the network's own stems: not with --parts, --follow or parts' class stems"
    if getattr(args, "raw_masks", False) and (args.parts is not None or getattr(args, "follow", None) is not None):
        raise InputError(raw_masks_refused)
    if getattr(args, "follow", None) is not None:
        if args.parts:
            raise InputError("--follow takes the parts from its score: give --parts without channels")
        return _followed_parts(args)
    if getattr(args, "parts", None) is None:
        model = Processor(args.model, n_threads=args.threads)
        config = load_config(args.config, model.meta.stems)
        source = getattr(args, "classes_from", None) or config.classes_from
        if source in ("parts", "fused"):
            if getattr(args, "raw_masks", False):
                raise InputError(raw_masks_refused)
            from bridge.parts.classes import ScoredClasses
            from bridge.parts.fusion import FUSION_EXPONENT

            label = f"model {model.meta.name}, class stems from the score's parts (one per channel of score_in)"
            fusion = FUSION_EXPONENT if source == "fused" else None
            if fusion:
                label += ", fused with the network's"
            return ScoredClasses.live(model, config.channel_map, fusion=fusion), config, label
        if getattr(args, "raw_masks", False):
            return model, config, f"model {model.meta.name}, masks as they come"
        from bridge.remasked import soften

        return soften(model), config, f"model {model.meta.name}"  # masks softened: no latency more
    from bridge.parts.network_drums import one_kit, parts_runner
    from bridge.parts.processor import PartSpec, PartsSettings

    config = load_config(args.config, (), parts_option=args.parts)
    part_of_channel = parse_parts_option(args.parts) if args.parts else config.parts
    if not part_of_channel:
        raise InputError("--parts needs channels: --parts 1,2,10 or a [parts] channels table in --config")
    channels = sorted(part_of_channel)
    specs = [PartSpec(part_of_channel[c], is_drum=c == DRUM_CHANNEL, kit=c == DRUM_CHANNEL) for c in channels]
    kit_from = getattr(args, "kit_from", None) or config.parts_kit_from
    kit_model = None
    if kit_from == "network" and one_kit(specs):
        kit_model = Processor(args.model, n_threads=args.threads)
    processor = parts_runner(specs, PartsSettings(low_latency=config.parts_low_latency), kit_model)
    processor.set_live_channels({c: i for i, c in enumerate(channels)})
    names = ", ".join(f"{s.name} (ch {c + 1})" for s, c in zip(specs, channels))
    kit = f"; {part_of_channel[DRUM_CHANNEL]} from the network's drums" if hasattr(processor, "model") else ""
    return processor, config, f"score parts {names}{kit}"


def _followed_parts(args: argparse.Namespace) -> tuple[Any, Any, str]:
    """``run --follow SCORE``: the score's parts, driven by the live score follower (MIDI on a
    part's channel overrides it for that part)."""
    from bridge.align.meter import ScoreMeter
    from bridge.live.config import load_config
    from bridge.parts.following import FollowedParts
    from bridge.parts.processor import PartsSettings
    from bridge.parts.score_parts import read_parts

    parts = read_parts(args.follow)
    meter = ScoreMeter.from_midi(args.follow)
    processor = FollowedParts(parts, meter=meter)
    config = load_config(args.config, (), followed_parts=[p.name for p in processor.score_parts])
    if config.parts_low_latency:
        processor = FollowedParts(parts, settings=PartsSettings(low_latency=True), meter=meter)
    label = ", ".join(f"{p.name} (ch {p.channel + 1})" for p in processor.score_parts)
    return processor, config, f"score parts {label}, followed from {args.follow}"


def _main_loop(host: Any, backend: Any, stems: Any, args: argparse.Namespace, say: Any, status_line: Any) -> None:
    """Main thread. Status line and stop conditions; raises ``DeviceError`` on a failure."""
    tty = sys.stderr.isatty() and not args.quiet
    try:
        _loop(host, backend, stems, args, say, status_line, tty)
    finally:
        if tty:
            sys.stderr.write("\n")


def _loop(host: Any, backend: Any, stems: Any, args: argparse.Namespace, say: Any, status_line: Any, tty: bool) -> None:
    from bridge.live.status import FollowWatch

    t0 = last_line = last_watch = time.monotonic()
    last_cycles, last_progress, last_check = host.n_cycles, t0, t0
    watch = FollowWatch()
    while True:
        time.sleep(STATUS_INTERVAL_S)
        now = time.monotonic()
        notice = watch.update(host, now - last_watch)
        last_watch = now
        if notice is not None:
            if tty:  # clear the status line first
                sys.stderr.write("\r\033[K")
            print(notice, file=sys.stderr, flush=True)
        if now - last_check >= PORT_CHECK_INTERVAL_S:
            last_check = now
            backend.check_ports()
        if backend.failure:
            raise DeviceError(backend.failure)
        if host.worker_error:
            raise StembridgeError(f"the inference worker failed: {host.worker_error}")
        if host.n_cycles != last_cycles:
            last_cycles, last_progress = host.n_cycles, now
        elif now - last_progress > STALL_TIMEOUT_S:
            raise DeviceError(f"the audio callback has not run for {STALL_TIMEOUT_S:.0f} s")
        if args.duration is not None and now - t0 >= args.duration:
            break
        if not args.quiet:
            if tty:
                sys.stderr.write("\r" + status_line(host, stems) + "\033[K")
                sys.stderr.flush()
            elif now - last_line >= 5.0:
                last_line = now
                say(status_line(host, stems))
