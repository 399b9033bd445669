"""The live path: ``stembridge run`` on JACK or PortAudio, block by block, in real time.

The audio thread only copies: the backend's callback (``bridge.backends``) hands each block to
``host.RealtimeHost.cycle``, which writes it into pre-allocated rings and reads back what the
worker finished; the network (or the score-informed parts) runs in the worker, a thread or a
child process (``worker``). The model contract (metadata, latency, block == whole file) is
``bridge.engine`` / ``bridge.model``; the training side is ``export/``.

Modules
-------
- ``command``: ``stembridge run`` (``run_bridge``): backend, processor, worker, status line.
- ``host``: ``RealtimeHost`` (the audio-thread side: rings, deadlines, meters, routing).
- ``worker``: the inference worker (thread or child process) and its shared-memory channel.
- ``config``: the TOML config of a live run (stems, channels, parts, send / monitor).
- ``status``: the status line, the stats file, the followed score's mismatch warning.
- ``jack_latency``: the ports' published latency through libjack.
- ``jackd``: a private ``jackd -d dummy`` server (tests, benches, the demo).
- ``loopback``: a stand-in DAW on JACK that plays into the bridge and records what comes back.

``bridge.ring`` (the lock-free ring buffers) stays beside the engine, which uses it offline too.
"""
