# Two commands on a fresh machine:  `make demo`  and  `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SYSTEM_STAMP := $(VENV)/.system

.PHONY: setup system demo test screenshot bench lint clean

setup: $(STAMP) $(SYSTEM_STAMP)

# FluidSynth + the FluidR3 General MIDI soundfont (acoustic grand, MIT licence) for `espressivo synth`, and
# Debian's chromium for the studio's end-to-end test (Playwright drives it; a browser download is not possible).
SYSTEM_PACKAGES := fluidsynth fluid-soundfont-gm chromium
$(SYSTEM_STAMP):
	@if command -v fluidsynth >/dev/null && [ -f /usr/share/sounds/sf2/FluidR3_GM.sf2 ] && command -v chromium >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ]; then \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
			$(SYSTEM_PACKAGES) >/dev/null) || { echo "apt-get install $(SYSTEM_PACKAGES) failed"; exit 1; }; \
	elif command -v sudo >/dev/null; then \
		sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
			$(SYSTEM_PACKAGES) >/dev/null; \
	else echo "please install $(SYSTEM_PACKAGES) (Debian/Ubuntu packages)"; exit 1; fi
	@mkdir -p $(VENV) && touch $@

# torch 2.13.0 first: the local CPU build; a bare `torch` would pull gigabytes of CUDA packages.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e ".[dev]"
	touch $@

demo: setup
	$(BIN)/espressivo demo --out out

test: setup  # two workers of one torch thread each: 2 min 38 s on an idle 2-core machine (one process: 4 min)
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -q -n 2

screenshot: setup  # refresh the README's picture of the studio (the browser test takes it)
	ESPRESSIVO_SCREENSHOT=$(CURDIR)/docs/figures/studio.png $(BIN)/python -m pytest -q tests/test_studio_browser.py

bench: setup
	$(BIN)/pip install -q -e ".[dev,bench]"
	$(BIN)/python benchmarks/io.py
	$(BIN)/python benchmarks/tokenize.py
	$(BIN)/python benchmarks/lm.py
	$(BIN)/python benchmarks/render.py
	$(BIN)/python benchmarks/embed.py
	$(BIN)/python benchmarks/busy.py
	$(BIN)/python benchmarks/score_read.py
	$(BIN)/python benchmarks/score_formats.py
	$(BIN)/python benchmarks/fuzz.py --count 10000
	$(BIN)/python benchmarks/studio.py --clients 20
	$(BIN)/python benchmarks/studio_fairness.py

lint: setup
	$(BIN)/ruff check src tests benchmarks tools

clean:
	rm -rf $(VENV) out .pytest_cache
