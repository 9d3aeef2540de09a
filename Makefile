# Quick start: `make demo` runs the main job on the embedded synthetic data, `make test` runs the
# tests. Both install first when needed; `make install` is idempotent (a stamp file records a
# finished install, and pip's wheel cache serves the ~10 minute mmcv build on later runs).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=
# compiler processes of the mmcv ops build (MAX_JOBS=8 make install on a larger machine)
MAX_JOBS ?= 2

.PHONY: install demo test benchmark science clean

install: $(STAMP)

$(STAMP): requirements.txt requirements-build.txt pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -r requirements-build.txt
	@# torch first: mmcv's ops build compiles against it (no build isolation).
	$(PIP) install "torch===2.13.0" "torchvision==0.28.0"
	MMCV_WITH_OPS=1 MAX_JOBS=$(MAX_JOBS) $(PIP) install --no-build-isolation "mmcv==2.1.0"
	$(PIP) install -r requirements.txt
	$(PIP) install --no-deps --no-build-isolation -e .
	@# timm's own model tests (tests/models/test_timm_model_suite.py) ship in its sdist only
	$(PIP) download -q --no-deps --no-binary :all: -d $(VENV)/share/timm-sdist \
		"$$(grep '^timm==' requirements.txt)"
	@# mmcv's compiled ops loaded by name (and run on a GPU), not just imported
	$(PY) -m rats_mm.runtime.install_check
	touch $(STAMP)

demo: install
	$(PY) tools/demo.py

test: install
	$(PY) -m pytest $(PYTEST_ARGS)

# Emergence at GPU scale (docs/findings.md, "Emergence at GPU scale"): RATS, RATS with
# competition and ViT trained with DINO for MINUTES in all.
MINUTES ?= 7
science: install
	$(PY) tools/science.py --minutes $(MINUTES) --out work_dirs/science

benchmark: install
	$(PY) benchmarks/backbone_scaling.py

clean:
	rm -rf $(VENV) work_dirs
