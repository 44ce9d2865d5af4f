# gr-diffwireless: set-up-free commands, `make demo`, `make test` and `make grc`, on a fresh Debian 12 machine.
# Each installs what it needs (Debian's GNU Radio 3.10, a venv at .venv that sees it, the Python deps) and are
# idempotent: a second run only checks and goes straight to work.

SHELL := /bin/bash
SYSTEM_PYTHON := /usr/bin/python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
SUDO := $(shell [ "$$(id -u)" -eq 0 ] || echo sudo)
APT_PACKAGES := gnuradio gnuradio-dev python3-zmq python3-soapysdr soapysdr-tools python3-matplotlib python3-pyqt5 cmake
# GRC's window (Debian's gnuradio recommends, without requiring, GTK's introspection data); Xvfb for the tests and
# the docs' pictures of GRC.
GRC_APT_PACKAGES := gir1.2-gtk-3.0 xvfb xauth
# The flowgraph `make grc` opens (any of apps/*.grc): GRC_FLOWGRAPHS=apps/detector_qt.grc make grc
GRC_FLOWGRAPHS ?= apps/anomaly_qt.grc
# A local CPU wheel of torch is used where the machine has one; elsewhere pip takes it from PyPI.
TORCH_SPEC ?= torch==2.13.0
FIND_LINKS := $(if $(wildcard /opt/wheels),--find-links /opt/wheels)
OUT ?= bench-out
# The developers' 802.11 recordings (a user's clone has none: dw-wifi then synthesizes its frames).
WIFI_CAPTURES := $(wildcard ../shared/captures/wifi-ofdm/*.sigmf-meta)
# The developers' ISM-band recordings (without them dw-anomaly synthesizes an ISM-like recording).
ISM_CAPTURES := $(wildcard ../shared/captures/ism-433/*.sigmf-meta)

.PHONY: setup apt grc-apt apt-install demo test fuzz grc screenshots docs-plots bench models recording clean

setup: apt $(VENV)/.installed

# Installs only the Debian packages that are missing.
apt:
	@$(MAKE) --no-print-directory apt-install PACKAGES="$(APT_PACKAGES)"

grc-apt:
	@$(MAKE) --no-print-directory apt-install PACKAGES="$(GRC_APT_PACKAGES)"

apt-install:
	@missing=$$(for p in $(PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "apt-get install:" $$missing; \
		$(SUDO) apt-get update -q && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q --no-install-recommends $$missing; \
	fi

# The venv sees Debian's gnuradio/pmt/SoapySDR; numpy and scipy stay at Debian's versions (GNU Radio 3.10.5's
# bindings break under numpy 2), enforced by a constraints file made from the system interpreter.
$(VENV)/.installed: pyproject.toml Makefile | apt
	@[ -x $(PY) ] || $(SYSTEM_PYTHON) -m venv --system-site-packages $(VENV)
	@$(SYSTEM_PYTHON) -c "import numpy, scipy; print(f'numpy=={numpy.__version__}\nscipy=={scipy.__version__}')" \
		> $(VENV)/constraints.txt
	$(PIP) install -q --disable-pip-version-check -c $(VENV)/constraints.txt $(FIND_LINKS) "$(TORCH_SPEC)" -e '.[test]'
	@$(PY) -c "import numpy; assert numpy.__version__.startswith('1.'), 'numpy ' + numpy.__version__ + ' breaks GNU Radio'; from gnuradio import gr, diffwireless; print('venv ready: GNU Radio', gr.version(), '+ gr-diffwireless', diffwireless.__version__)"
	@touch $@

demo: setup
	@mkdir -p demo-out
	$(VENV)/bin/dw-replay --plot demo-out/replay.png --json demo-out/replay.json
	$(VENV)/bin/dw-denoise --snr-db 5 --json demo-out/denoise.json
	$(VENV)/bin/dw-detect --json demo-out/detect.json
	$(VENV)/bin/dw-wifi $(WIFI_CAPTURES) --add-snr-db 20 10 --json demo-out/wifi.json
	$(VENV)/bin/dw-anomaly $(ISM_CAPTURES) --json demo-out/anomaly.json

test: setup grc-apt
	$(VENV)/bin/ruff check .
	QT_QPA_PLATFORM=offscreen $(PY) -m pytest -q

# The property-based tests with many new examples each run (make test runs a small fixed set of them).
FUZZ_EXAMPLES ?= 2000
fuzz: setup
	DW_FUZZ_PROFILE=fuzz DW_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) QT_QPA_PLATFORM=offscreen $(PY) -m pytest -q \
		--hypothesis-show-statistics tests/test_fuzz.py

# GNU Radio Companion with the blocks found and run by the venv's interpreter (where torch is).
grc: setup grc-apt
	$(VENV)/bin/dw-grc $(GRC_FLOWGRAPHS)

# The pictures in docs/ that show GRC (under a virtual display), the live views (offscreen) and the classifier's
# front end.
screenshots: setup grc-apt
	xvfb-run -a -s "-screen 0 1400x900x24" $(VENV)/bin/dw-grc --screenshot docs/grc.png apps/anomaly_qt.grc
	QT_QPA_PLATFORM=offscreen $(PY) -m gnuradio.diffwireless.recipes.live_screenshots docs/img
	$(PY) -m gnuradio.diffwireless.recipes.frontend_figure docs/img

bench: setup
	$(VENV)/bin/dw-bench all --out $(OUT)

# The plots in docs/: every benchmark's quick run (about 30 min here), shrunk to small PNGs in docs/img/.
# QUICK_OUT=DIR reuses the JSON/PNG of an earlier `dw-bench TASK --quick --out DIR` instead of running them.
QUICK_OUT ?=
docs-plots: setup
	@if [ -z "$(QUICK_OUT)" ]; then for t in $$($(VENV)/bin/dw-bench --list); do \
		$(VENV)/bin/dw-bench $$t --quick --out build/quick || exit 1; done; fi
	@mkdir -p docs/img
	$(PY) -c "import sys, pathlib; from PIL import Image; \
	[Image.open(p).convert('RGB').resize((900, round(900 * Image.open(p).height / Image.open(p).width))) \
	 .quantize(128).save(pathlib.Path('docs/img') / p.name, optimize=True) \
	 for p in sorted(pathlib.Path(sys.argv[1]).glob('*.png'))]" $(or $(QUICK_OUT),build/quick)

models: setup
	$(VENV)/bin/dw-train --all

# Remakes the bundled recordings (fixed seeds): the demo bursts with their own flowgraph, and the impaired 16QAM
# capture of the detector demo with dw-detect --record (the example flowgraph's link in GNU Radio blocks).
recording: setup
	@mkdir -p build/grc
	GRC_BLOCKS_PATH=$(CURDIR)/grc $(PY) /usr/bin/grcc -o build/grc apps/make_demo_recording.grc
	$(PY) build/grc/make_demo_recording.py -o python/diffwireless/data/demo_qpsk_bursts
	$(VENV)/bin/dw-detect --record python/diffwireless/data/demo_16qam_impaired --overwrite

clean:
	rm -rf build demo-out bench-out .pytest_cache
