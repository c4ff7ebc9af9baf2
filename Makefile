# Two entry points for a fresh machine: `make demo` (install + run the main job) and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.install.stamp
DEBIAN_PACKAGES := ffmpeg libavutil57 libavcodec59 libavformat59 libavdevice59 libavfilter8 libswscale6 libswresample4

BROWSER_PACKAGES := chromium chromium-driver fonts-liberation

.PHONY: install demo test test-fast system-deps browser-deps clean

# Debian's FFmpeg shared libraries (torchcodec links them) and the ffmpeg tool; only when missing.
system-deps:
	@if ! command -v ffmpeg >/dev/null 2>&1 || ! ldconfig -p | grep -q 'libavcodec.so.59'; then \
	  if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(DEBIAN_PACKAGES) >/dev/null; \
	  else echo "note: install FFmpeg ($(DEBIAN_PACKAGES)) with your package manager for the torchcodec backend"; fi; \
	fi

$(STAMP): pyproject.toml constraints.txt
	$(MAKE) system-deps
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -c constraints.txt torch torchvision
	$(PIP) install -q -c constraints.txt -e '.[torchcodec,decord,train,space,synth,dev,lmms]'
	touch $(STAMP)

# Debian's Chromium and its WebDriver for the web demo's browser test (tests/test_web.py); only when missing.
browser-deps:
	@if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then \
	  if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(BROWSER_PACKAGES) >/dev/null; \
	  else echo "note: install $(BROWSER_PACKAGES) with your package manager for the browser test"; fi; \
	fi

install: $(STAMP)

demo: install
	$(VENV)/bin/videoitg demo --out out/demo

test: install browser-deps
	$(PY) -m pytest -q -rs tests

test-fast: install
	$(PY) -m pytest -q -m "not slow" tests

clean:
	rm -rf $(VENV) out
