"""Audio backends: offline files (``offline``), JACK (``jack``) and PortAudio (``portaudio``)."""

# samples per block when a file is separated: the class stems do not depend on it (block-size
# invariance; the parts path only at float-rounding level, see bridge.parts.processor), but fewer
# network calls and Python calls per second of audio make 65536-sample blocks 1.4-1.9x faster than
# 4096 (bench/speed.py; BENCHMARKS.md, stop 22)
OFFLINE_BLOCK_SIZE = 65536
