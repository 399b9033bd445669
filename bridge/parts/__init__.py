"""Score-informed parts: one stem per part of a score, separated by the score itself.

No network and no timbre training: each sounding note of the score gets a harmonic template
at its pitch (drum hits a broadband one), activations are allowed only where the score has
the note, templates adapt online to the recording, and soft masks split the mixture so that
the parts plus a residual sum back to it. Causal and streaming, the same code offline and live.

Modules
-------
- ``score_parts``: the parts of a MIDI file (names, channels, programs, notes).
- ``templates``: harmonic combs and drum spectra on the STFT grid.
- ``gates``: which (part, pitch) may sound in which frame (score + release tails).
- ``decompose``: the online score-gated NMF that turns magnitude frames into part masks.
- ``processor``: ``PartsProcessor``, the plugin-style prepare / process / reset / release.
"""
