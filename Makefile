# RLIPv2 on Detectron2. `make demo` and `make test` need nothing done before them: both set up
# .venv on first use. Every pin lives in requirements/*.txt.
SHELL := /bin/bash
PYTHON_BOOT ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check
D2_DIST := sal-detectron2==0.7.2
# Stamps make a second `make setup` with nothing changed take seconds.
STAMP_DEPS := $(VENV)/.deps-stamp
STAMP_D2 := $(VENV)/.d2-stamp
STAMP_EXT := $(VENV)/.ext-stamp
STAMP_WEB := $(VENV)/.web-stamp
STAMP_WEB_TEST := $(VENV)/.web-test-stamp
WEB_DEMO_CONFIG := projects/RLIPv2/configs/demo/rlipv2_parseda_tiny_synthetic.py
WEB_DEMO_WEIGHTS := output/demo/train/model_final.pth
WEB_DEMO_PORT ?= 7860
EXT_SOURCES := $(shell find rlipv2/csrc -name '*.cpp' -o -name '*.h' -o -name '*.cu' 2>/dev/null) setup.py
PYTEST_ARGS ?=
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: setup test test-all lint demo reproduce-mini bench build-cuda clean collect-env

setup: $(STAMP_EXT)

$(PY):
	$(PYTHON_BOOT) -m venv $(VENV)

$(STAMP_DEPS): $(PY) requirements/torch.txt requirements/base.txt requirements/test.txt requirements/extra.txt
	$(PIP) install -q -r requirements/torch.txt
	$(PIP) install -q -r requirements/torch.txt -r requirements/base.txt -r requirements/test.txt -r requirements/extra.txt
	@touch $@

# detectron2 at upstream commit a59f05630a8f205756064244bf5beb8661f96180, as pure Python
# (its wheel is tagged cp310 and carries a _C we never use; see docs/INSTALL.md).
$(STAMP_D2): $(STAMP_DEPS)
	$(PIP) install -q --no-deps --only-binary=:all: --python-version 3.10 --upgrade \
	    --target "$$($(PY) -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')" $(D2_DIST)
	@touch $@

$(STAMP_EXT): $(STAMP_D2) $(EXT_SOURCES)
	$(PIP) install -q -e . --no-build-isolation --no-deps
	@touch $@

# The optional web demo (Gradio) and its browser test (Playwright; Chromium comes from Debian:
# `apt-get install chromium`). `make test` needs neither.
$(STAMP_WEB): $(STAMP_EXT) requirements/web.txt
	$(PIP) install -q -r requirements/torch.txt -r requirements/web.txt
	@touch $@

$(STAMP_WEB_TEST): $(STAMP_WEB) requirements/web-test.txt
	$(PIP) install -q -r requirements/torch.txt -r requirements/web-test.txt
	@touch $@

.PHONY: setup-web web-demo
setup-web: $(STAMP_WEB_TEST)

test: setup
	$(PY) -m pytest -q -m "not slow" $(PYTEST_ARGS)

test-all: setup $(STAMP_WEB_TEST)
	$(PY) -m pytest -q $(PYTEST_ARGS)

lint: setup
	$(PY) -m ruff check .

collect-env: setup
	$(PY) -m rlipv2.collect_env

demo: setup
	$(PY) tools/run_demo.py --output output/demo

# RLIPv2 in miniature: R-Tagger pseudo-labels, pre-training, zero-/few-shot transfer (docs/reproduction_mini.md).
# Resumes: a finished stage is skipped. REPRODUCE_ARGS="--quick" for the short run.
REPRODUCE_ARGS ?=
reproduce-mini: setup
	$(PY) tools/reproduce_mini.py $(REPRODUCE_ARGS)

bench: setup
	$(PY) tools/run_benchmarks.py

# The web demo on `make demo`'s model (trained first if missing), on http://127.0.0.1:$(WEB_DEMO_PORT)/
web-demo: $(STAMP_WEB)
	@if [ ! -f $(WEB_DEMO_WEIGHTS) ]; then \
	    echo "$(WEB_DEMO_WEIGHTS) is missing: training it first with 'make demo' (about 8 min on 2 cores)"; \
	    $(MAKE) demo; fi
	$(PY) tools/web_demo.py --config-file $(WEB_DEMO_CONFIG) --weights $(WEB_DEMO_WEIGHTS) \
	    --min-size 128 --max-size 256 --score-thresh 0.2 --port $(WEB_DEMO_PORT)

# The CUDA build of rlipv2._C (minutes on 2 cores; not part of `make test`). CUDA_HOME defaults to the
# toolkit of the `nvcc` on PATH as nvcc reports it (setup.py); set TORCH_CUDA_ARCH_LIST (e.g. "9.0")
# to compile for fewer GPU architectures.
build-cuda: setup
	FORCE_CUDA=1 $(PY) setup.py build_ext --inplace

clean:
	rm -rf build rlipv2/_C*.so *.egg-info
