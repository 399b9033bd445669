#!/usr/bin/env python3
"""Zero every cubin that is not built for one GPU architecture inside a CUDA shared library.

onnxruntime-gpu's CUDA provider (``libonnxruntime_providers_cuda.so``, 284 MB in 1.31.1) holds
cubins for sm_75, 80, 86, 89, 90 and 120; a machine runs only its own. Zeroing the others keeps
every size and offset (the CUDA runtime reads the fatbin headers and loads the matching cubin),
and the zeros compress away: the wheel's contents then fit a 64 MiB transfer in two parts
(bench/gpu_row.sh). Fatbins with no cubin for the architecture are left whole.

    python bench/fatbin_sm90.py IN.so OUT.so [--sm 90]
"""

from __future__ import annotations

import argparse
import struct
import sys
from pathlib import Path

MAGIC = struct.pack("<I", 0xBA55ED50)
KIND_CUBIN = 2


def prune(data: bytearray, sm: int) -> tuple[int, int]:
    """Zero, in place, the payloads of the entries that are not sm_``sm`` cubins; returns (bytes
    zeroed, fatbins left whole because they hold no such cubin)."""
    pos = zeroed = whole = 0
    while (i := data.find(MAGIC, pos)) >= 0:
        version, header, size = struct.unpack_from("<HHQ", data, i + 4)
        if version != 1 or header != 16:  # the magic by chance, not a fatbin header
            pos = i + 4
            continue
        off, end, entries = i + header, i + header + size, []
        while off < end:
            kind, _, entry_header, payload = struct.unpack_from("<HHIQ", data, off)
            arch = struct.unpack_from("<I", data, off + 28)[0]
            entries.append((kind == KIND_CUBIN and arch == sm, off + entry_header, payload))
            off += entry_header + payload
        if off != end:
            raise ValueError(f"fatbin at byte {i}: entries end at {off}, header says {end}")
        if any(keep for keep, _, _ in entries):
            for keep, start, n in entries:
                if not keep:
                    data[start : start + n] = bytes(n)
                    zeroed += n
        else:
            whole += 1
        pos = end
    return zeroed, whole


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("src", type=Path)
    ap.add_argument("dst", type=Path)
    ap.add_argument("--sm", type=int, default=90, help="architecture to keep (default 90: H100, H200)")
    args = ap.parse_args(argv)
    data = bytearray(args.src.read_bytes())
    zeroed, whole = prune(data, args.sm)
    args.dst.write_bytes(data)
    print(f"{args.dst}: {zeroed} bytes zeroed, {whole} fatbins without sm_{args.sm} left whole")
    return 0


if __name__ == "__main__":
    sys.exit(main())
