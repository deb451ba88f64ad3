# WMFM xApp. `make demo` and `make test` do all the set-up on a fresh machine.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
# CPU wheel of torch pinned here (GPU hosts install their own build; pyproject says torch>=2.4)
TORCH  := torch==2.13.0
DEMO   := .cache/demo

.PHONY: setup test test-all lint proto descriptor demo scale experiment-cpu bench-twin bench-model bench-xapp gpu-check clean

$(VENV)/.done: pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(TORCH)
	$(PY) -m pip install -q -e '.[dev,sim,train]'
	touch $@

setup: $(VENV)/.done

test: setup
	$(PY) -m pytest -q

test-all: setup
	$(PY) -m pytest -q -m ""

lint: setup
	$(VENV)/bin/ruff check .

# Regenerate proto/*_pb2.py (committed; tests/xapp/test_codec.py checks they are current)
proto: setup
	$(PY) -m grpc_tools.protoc -Iproto --python_out=proto proto/*.proto

# Regenerate deploy/descriptor/schema.json from xapp/config.py (a test checks it is current)
descriptor: setup
	$(PY) -m wmfm.xapp.schema > deploy/descriptor/schema.json

# The main job on embedded defaults (`wmfm demo`): twin -> cache -> WMFM pretraining -> heads and
# E2E sweep (the `tiny` preset, report) -> ONNX export -> embedded redis-server + the xApp ->
# real-time replay of the test trajectories -> scores + pictures in $(DEMO)/replay. ~4 min the first
# time on 2 cores after set-up, ~1 min when $(DEMO)/artifact exists.
demo: setup
	$(VENV)/bin/wmfm demo --out $(DEMO)

# Horizontal scaling on this machine (`wmfm scale`): 1 vs 2 xApp instances (round-robin, cell sharding)
# behind one max-rate replay of the demo's twin; exactly-once check + combined throughput (~2 min after demo).
scale: setup
	$(VENV)/bin/wmfm scale --demo $(DEMO) --out .cache/scale
	mkdir -p docs/results/scale
	cp .cache/scale/scale.json .cache/scale/scale.png docs/results/scale/

# The committed reference result (docs/results/cpu): ~45 min on the 2-core CPU machine.
experiment-cpu: setup
	$(VENV)/bin/wmfm experiment --preset cpu --out .cache/experiment-cpu
	mkdir -p docs/results/cpu
	cp .cache/experiment-cpu/report.md .cache/experiment-cpu/report.json .cache/experiment-cpu/config.json \
	   .cache/experiment-cpu/*.png docs/results/cpu/

bench-twin: setup
	$(PY) -m wmfm.sim.bench --scenes 2000 --out .cache/bench_twin.json

# Backends vs torch eager on the artifact `make demo` exported (batch-1 p50/p99 >= 1000 calls).
bench-model: setup
	$(VENV)/bin/wmfm bench model --artifact $(DEMO)/artifact --out .cache/bench_model.json

# The committed benchmark figures (docs/results/bench/): the `cpu` preset's model (make experiment-cpu
# first, ~45 min), exported, then the model and xApp benchmarks against their baselines (~4 min).
CPU_ART := .cache/experiment-cpu/artifact
bench-xapp: setup
	test -f .cache/experiment-cpu/model.pt || $(MAKE) experiment-cpu
	$(VENV)/bin/wmfm export --checkpoint .cache/experiment-cpu/model.pt --out $(CPU_ART) --fp16 --overwrite
	$(VENV)/bin/wmfm bench model --artifact $(CPU_ART) --threads 2 --quiet --out docs/results/bench/model.json
	$(VENV)/bin/wmfm bench xapp --artifact $(CPU_ART) --rate 100 --duration 10 --ues-per-frame 1 --cameras 2 --out docs/results/bench/xapp_100_per_s_1ue.json
	$(VENV)/bin/wmfm bench xapp --artifact $(CPU_ART) --rate 100 --duration 10 --ues-per-frame 8 --cameras 2 --out docs/results/bench/xapp_100_per_s_8ue.json
	$(VENV)/bin/wmfm bench xapp --artifact $(CPU_ART) --rate 1000 --duration 10 --ues-per-frame 8 --cameras 4 --out docs/results/bench/xapp_1000_per_s.json
	$(VENV)/bin/wmfm bench xapp --artifact $(CPU_ART) --max-rate --duration 10 --ues-per-frame 8 --cameras 4 --out docs/results/bench/xapp_max_rate.json

# On a host with an NVIDIA GPU: parity + latency with torch CUDA, ONNX Runtime, TensorRT FP32/FP16.
gpu-check: setup
	$(VENV)/bin/pip install -q -e '.[gpu]' || echo 'tensorrt/cuda-python not installable here: the TensorRT cases will be skipped'
	PY=$(PY) scripts/gpu_check.sh

clean:
	rm -rf $(VENV) .cache .pytest_cache
