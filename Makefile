# Two entry points for a fresh machine: `make demo` (install + run the main job) and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.install.stamp
DEBIAN_PACKAGES := ffmpeg libavutil57 libavcodec59 libavformat59 libavdevice59 libavfilter8 libswscale6 libswresample4

BROWSER_PACKAGES := chromium chromium-driver fonts-liberation

.PHONY: install demo test test-fast system-deps browser-deps demo-model clean

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

# The embedded demo model, from scratch on the synthetic benchmark (docs/demo-model.md). Work files in DEMO_WORK.
DEMO_WORK ?= out/demo-model
VIDEOITG := $(VENV)/bin/videoitg
DEMO_TRAIN_ARGS := --max-steps 2800 --batch-videos 4 --questions-per-video 4 --event-queries 6 \
  --learning-rate 1e-3 --head-learning-rate 2e-3 --save-steps 700 --logging-steps 50 --eval-steps 700
DEMO_DESCRIPTION := The embedded demo model of videoitg, trained from scratch on synthetic videos (coloured shapes, \
  numbers and words over real footage, made by videoitg synth): it knows only what those videos show.
demo-model: install
	$(VIDEOITG) synth --out $(DEMO_WORK)/data --videos 1000 --seed 101 --min-seconds 30 --max-seconds 150 \
	  --split-fractions 0.9,0.05,0.05 --fps 2 --width 128 --height 96 --workers 2
	$(VIDEOITG) init --preset demo --out $(DEMO_WORK)/init
	$(VIDEOITG) pretrain-vision --model $(DEMO_WORK)/init --dataset $(DEMO_WORK)/data --output-dir $(DEMO_WORK)/tagged \
	  --steps 1500 --batch-size 256
	$(VIDEOITG) features --model $(DEMO_WORK)/tagged --dataset $(DEMO_WORK)/data --out $(DEMO_WORK)/features
	$(VIDEOITG) train --model $(DEMO_WORK)/tagged --dataset $(DEMO_WORK)/data --features $(DEMO_WORK)/features \
	  --eval-dataset $(DEMO_WORK)/data --output-dir $(DEMO_WORK)/run $(DEMO_TRAIN_ARGS) --report-to tensorboard \
	  --description "$(DEMO_DESCRIPTION)"
	rm -rf src/videoitg/assets/demo-model && cp -r $(DEMO_WORK)/run/final src/videoitg/assets/demo-model

clean:
	rm -rf $(VENV) out
