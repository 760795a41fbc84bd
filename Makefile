# Two commands on a fresh machine: `make demo` and `make test`. Both create .venv when missing.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check
# The CPU wheel of torch lies on this machine; a bare `torch` would pull GBs of CUDA packages.
TORCH_SPEC ?= torch==2.13.0
STAMP := $(VENV)/.installed

.PHONY: demo test venv clean

venv: $(STAMP)

$(STAMP): setup.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -c "import torch" 2>/dev/null || $(PIP) install -q "$(TORCH_SPEC)"
	$(PIP) install -q -e ".[test]"
	touch $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q tests cryostar_plugin/tests

demo: $(STAMP)
	$(PY) -m cryostar_engine check-inputs --particles data/adk_sim48/particles.star \
		--model data/adk_models/adk_ref_frame048.pdb --map data/adk_sim48/ideal_map_frame048.mrc \
		--out demo_output/check

clean:
	rm -rf $(VENV) demo_output .pytest_cache
