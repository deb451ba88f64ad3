# WMFM xApp. `make demo` and `make test` do all the set-up on a fresh machine.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
# CPU wheel of torch pinned here (GPU hosts install their own build; pyproject says torch>=2.4)
TORCH  := torch==2.13.0
DEMO   := .cache/demo

.PHONY: setup test test-all lint demo bench-twin clean

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

# Until the model exists: a small twin, its cache, the dataset summary and pictures.
demo: setup
	$(VENV)/bin/wmfm twin generate --out $(DEMO) --name demo_twin --scenes 1500 --seed 0 --overwrite
	$(VENV)/bin/wmfm dataset build --scenario $(DEMO)/demo_twin --out $(DEMO)/cache --overwrite
	$(VENV)/bin/wmfm dataset stats $(DEMO)/cache
	$(VENV)/bin/wmfm twin show --scenario $(DEMO)/demo_twin --scene 700 --out $(DEMO)/scene_700.png

bench-twin: setup
	$(PY) -m wmfm.sim.bench --scenes 2000 --out .cache/bench_twin.json

clean:
	rm -rf $(VENV) .cache .pytest_cache
