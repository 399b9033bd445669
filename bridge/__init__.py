"""stembridge runtime: real-time stem separation and transcription with onnxruntime.

This package never imports torch. Heavy modules (numpy, onnxruntime) are imported by the
submodules that need them, so ``stembridge --help`` stays instant.
"""

__version__ = "0.1.0"
