# Two commands on a fresh machine: `make demo` and `make test`. Both create .venv when missing.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check
# The CPU wheel of torch lies on this machine; a bare `torch` would pull GBs of CUDA packages.
TORCH_SPEC ?= torch==2.13.0
STAMP := $(VENV)/.installed

.PHONY: demo test test-gui test-flexhub venv clean

venv: $(STAMP)

$(STAMP): setup.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -c "import torch" 2>/dev/null || $(PIP) install -q "$(TORCH_SPEC)"
	$(PIP) install -q -e ".[test]"
	touch $(STAMP)

# pytest-xdist workers, one per core (at most 4): conftest.py gives each worker its own cores
# and its own throw-away Scipion folder; a file's tests stay in one worker (they share fixtures).
TEST_WORKERS ?= $(shell $(PYTHON) -c "import os; print(min(4, len(os.sched_getaffinity(0))))")

test: $(STAMP)
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile tests cryostar_plugin/tests

# The Scipion GUI on a virtual display (needs Xvfb; screenshots in test-artifacts/gui/).
test-gui: $(STAMP)
	$(PY) -m pytest -q cryostar_plugin/tests/test_gui.py

# FlexHub neighbours (docs/flexhub.md): flexutils' tools on our output, in a separate venv
# because scipion-em-flexutils pins older pandas; not part of `make test`.
FLEX := .venv-flexhub
test-flexhub:
	test -x $(FLEX)/bin/python || $(PYTHON) -m venv $(FLEX)
	$(FLEX)/bin/python -c "import torch" 2>/dev/null || $(FLEX)/bin/python -m pip install -q "$(TORCH_SPEC)"
	$(FLEX)/bin/python -m pip install -q -e ".[test]" scipion-em-flexutils scipion-em-xmipp
	$(FLEX)/bin/python -m pytest -q cryostar_plugin/tests/test_flexutils.py

# The main job: a headless Scipion project on the bundled data (check inputs -> train atom
# generator -> analyze -> train density generator -> particles subset), a few minutes on 2 cores.
demo: $(STAMP)
	$(PY) -m cryostar_plugin.demo --out $(CURDIR)/demo_output

clean:
	rm -rf $(VENV) $(FLEX) demo_output .pytest_cache test-artifacts
