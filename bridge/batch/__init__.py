"""Catalogues: ``stembridge batch``, many files to stems + MIDI on Ray, from a laptop to a cluster.

``stembridge batch INPUTS... -o OUT`` takes files, folders (recursive, audio extensions) and
list files (``.txt``: one path a line). Without ``--address`` (or ``RAY_ADDRESS``) it starts a
local Ray instance with ``--workers`` CPUs (default: this machine's cores); with it, it joins an
existing cluster, whose nodes must have stembridge installed and see the same paths (shared
storage). Each worker is a Ray actor holding one onnxruntime session, loaded once.

Output, per input: ``OUT/<track>/`` exactly as ``stembridge separate`` writes it, written into
a hidden ``.<track>.partial`` folder first and renamed into place when complete; plus one line in
``OUT/manifest.jsonl`` (path, track, sha256/size/mtime of the input, score and its sha256,
model name/version/sha256 -- ``parts`` for ``--parts`` --, format, status ok/failed, error line,
audio_s, seconds, cpu_s, x_real_time, worker and node). A rerun skips inputs done before with the same
input, model, score and format, and redoes failed ones; a worker that dies has its file redone
by a fresh worker (a file that kills its worker three times fails). The exit status is the
number of failed inputs (101: more than 100).

Modules
-------
- ``bridge.batch.plan``: inputs, tracks, the manifest and the resume rule (driver side).
- ``bridge.batch.worker``: ``BatchWorker`` (the actor) and ``process_job`` (one file).
- ``bridge.batch.run``: ``run_batch`` (the driver, progress bar, summary) and ``cmd_batch``.
"""
