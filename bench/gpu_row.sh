#!/bin/bash
# The GPU row of BENCHMARKS.md (issue 13): `separate --provider cuda` against the CPU, and
# bench/speed.py with onnxruntime's CUDA provider, on a lent GPU machine that has Python, numpy,
# scipy, pytest and the CUDA 13 / cuDNN libraries (in site-packages/nvidia) but no onnxruntime-gpu
# and no network. Run from the repository root there:  bash bench/gpu_row.sh  (results in $OUT)
#
# What it carries, made on this machine (onnxruntime-gpu 1.31.1 is built for CUDA 13):
#   pip download --no-deps --only-binary=:all: --python-version 3.12 --platform manylinux_2_28_x86_64 \
#       -d .whl onnxruntime-gpu==1.31.1 soundfile==0.14.0 cffi==2.1.1 pycparser==3.12 soxr==1.1.0 mido==1.3.3
#   unzip the onnxruntime-gpu wheel into x/, drop capi/libonnxruntime.so.* (the C API, unused by
#   Python), the TensorRT provider and tools/, quantization/, transformers/; then
#   python bench/fatbin_sm90.py x/onnxruntime/capi/libonnxruntime_providers_cuda.so (same path)
#   tar cf - -C x . | xz -9 -T2 | split -b 30300000 -d - .whl/ort90.part     # 2 parts of 30 MB
# The first part goes over in one call (cp .whl/ort90.part00 /tmp/ort/), the second with this one.
set -e
mkdir -p /tmp/site
cat /tmp/ort/ort90.part00 .whl/ort90.part01 |
    python3 -c "import sys, tarfile; tarfile.open(fileobj=sys.stdin.buffer, mode='r|xz').extractall('/tmp/site')"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl
export PYTHONPATH=/tmp/site PYTHONUNBUFFERED=1
SP=$(python3 -c "import site; print(site.getsitepackages()[0])")
LD_LIBRARY_PATH=$(find "$SP/nvidia" -name 'lib*.so*' -printf '%h\n' | sort -u | tr '\n' ':')${LD_LIBRARY_PATH:-}
export LD_LIBRARY_PATH
set +e
nvidia-smi -L; nproc; python3 -c "import onnxruntime as o, numpy; print(o.__file__, o.__version__, o.get_available_providers(), numpy.__version__)"
python3 -m pytest -q -p no:cacheprovider tests/test_cli.py::test_separate_on_cuda_equals_cpu_or_says_there_is_none 2>&1 | tail -15
python3 bench/speed.py --models band --network-only --seconds 10 --provider cuda
python3 bench/speed.py --models band --network-only --seconds 10
python3 bench/speed.py --models band --blocks 4096 16384 65536 --seconds 60 --repeats 3 --provider cuda --json $OUT/speed_cuda_h200.json
python3 bench/speed.py --models band --blocks 4096 16384 65536 --seconds 60 --repeats 3 --json $OUT/speed_cpu_h200.json
python3 -c "
import numpy as np, soundfile as sf
rng = np.random.default_rng(0); t = np.arange(60 * 44100) / 44100
sf.write('/tmp/m60.wav', (0.1 * rng.standard_normal((t.size, 2)) + 0.3 * np.sin(2 * np.pi * 110 * t)[:, None]).astype('float32'), 44100, subtype='FLOAT')"
for p in cuda cpu; do /usr/bin/time -f "separate --provider $p: %e s wall, %M KB" python3 -m bridge separate /tmp/m60.wav -o /tmp/sep_$p -q --provider $p; done
python3 -c "
import numpy as np, soundfile as sf
d = max(float(np.abs(sf.read(f'/tmp/sep_cuda/m60/{s}.wav')[0] - sf.read(f'/tmp/sep_cpu/m60/{s}.wav')[0]).max()) for s in ('drums','bass','piano','guitar','strings','other'))
print('separate 60 s: max |cuda - cpu| over the six stems', d)"
