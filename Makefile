# WMFM xApp. `make demo` and `make test` do all the set-up on a fresh machine.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
# CPU wheel of torch pinned here (GPU hosts install their own build; pyproject says torch>=2.4)
TORCH  := torch==2.13.0
DEMO   := .cache/demo

.PHONY: setup test test-all lint demo experiment-cpu bench-twin clean

$(VENV)/.done: pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(TORCH)
	$(PY) -m pip install -q -e '.[dev,train]'
	touch $@

setup: $(VENV)/.done

test: setup
	$(PY) -m pytest -q

test-all: setup
	$(PY) -m pytest -q -m ""

lint: setup
	$(VENV)/bin/ruff check .

# The main job on embedded defaults: twin -> cache -> WMFM pretraining -> heads and E2E at
# six label fractions x 3 seeds -> report (the `tiny` preset, ~1.5 min on 2 cores).
demo: setup
	$(VENV)/bin/wmfm experiment --preset tiny --out $(DEMO)
	$(VENV)/bin/wmfm twin show --scenario $(DEMO)/data/twin --scene 250 --out $(DEMO)/scene_250.png
	@echo "report: $(DEMO)/report.md (plots next to it), deployable model: $(DEMO)/model.pt"

# The committed reference result (docs/results/cpu): ~45 min on the 2-core CPU machine.
experiment-cpu: setup
	$(VENV)/bin/wmfm experiment --preset cpu --out .cache/experiment-cpu
	mkdir -p docs/results/cpu
	cp .cache/experiment-cpu/report.md .cache/experiment-cpu/report.json .cache/experiment-cpu/config.json \
	   .cache/experiment-cpu/*.png docs/results/cpu/

bench-twin: setup
	$(PY) -m wmfm.sim.bench --scenes 2000 --out .cache/bench_twin.json

clean:
	rm -rf $(VENV) .cache .pytest_cache
