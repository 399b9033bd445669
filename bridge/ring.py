"""Pre-allocated multichannel FIFO ring buffer of float32 samples.

Public API
----------
- ``RingBuffer(n_channels, capacity)``: ``write(x)`` appends x (n_channels, n) and returns how
  many samples fitted; ``read(n, out=None)`` pops (n_channels, n) into ``out`` (or a new array),
  zero-filling whatever is missing, and returns the number of real samples read;
  ``available`` / ``free`` counts; ``fill_zeros(n)`` pre-fills a delay; ``clear()``.

Single producer / single consumer: one thread writes and one reads. The counters are plain
ints updated after the data copy, so under the GIL a reader never sees samples that are not
yet written. ``read`` and ``write`` allocate nothing when given ``out`` arrays.
"""

from __future__ import annotations

import numpy as np


class RingBuffer:
    def __init__(self, n_channels: int, capacity: int) -> None:
        self.n_channels = n_channels
        self.capacity = max(1, int(capacity))
        self._buf = np.zeros((n_channels, self.capacity), np.float32)
        self._n_written = 0  # total samples ever written (producer side)
        self._n_read = 0  # total samples ever read (consumer side)

    @property
    def available(self) -> int:
        return self._n_written - self._n_read

    @property
    def free(self) -> int:
        return self.capacity - self.available

    def clear(self) -> None:
        self._n_read = self._n_written

    def _copy_in(self, x: np.ndarray) -> None:
        n = x.shape[1]
        start = self._n_written % self.capacity
        first = min(n, self.capacity - start)
        self._buf[:, start : start + first] = x[:, :first]
        if n > first:
            self._buf[:, : n - first] = x[:, first:]

    def write(self, x: np.ndarray) -> int:
        """Append x (n_channels, n); returns the number of samples written (fewer if full)."""
        n = min(x.shape[1], self.free)
        if n > 0:
            self._copy_in(x[:, :n] if n < x.shape[1] else x)
            self._n_written += n
        return n

    def fill_zeros(self, n: int) -> int:
        return self.write(np.zeros((self.n_channels, n), np.float32))

    def read(self, n: int, out: np.ndarray | None = None) -> int:
        """Pop n samples into out (n_channels, n); missing samples become zeros. Returns samples read."""
        if out is None:
            out = np.zeros((self.n_channels, n), np.float32)
        k = min(n, self.available)
        start = self._n_read % self.capacity
        first = min(k, self.capacity - start)
        out[:, :first] = self._buf[:, start : start + first]
        if k > first:
            out[:, first:k] = self._buf[:, : k - first]
        if k < n:
            out[:, k:n] = 0.0
        self._n_read += k
        return k

    def peek_into(self, out: np.ndarray) -> None:
        """Copy the oldest out.shape[1] samples into out without consuming them (zeros if missing)."""
        n = out.shape[1]
        saved = self._n_read
        self.read(n, out)
        self._n_read = saved
