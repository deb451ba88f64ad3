# WMFM xApp. `make demo` and `make test` do all the set-up on a fresh machine.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
WMFM   := $(VENV)/bin/wmfm
# CPU wheel of torch pinned here (GPU hosts install their own build; pyproject says torch>=2.4)
TORCH  := torch==2.13.0
DEMO   := .cache/demo
# The deployed model size with random weights: what the latency benchmarks run (no training needed)
CPU_RANDOM := .cache/cpu-random

.PHONY: setup test test-all lint proto descriptor reference demo scale experiment-cpu bench-twin bench-model \
        bench-decode bench-xapp bench-queue soak gpu-check clean

$(VENV)/.done: pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(TORCH)
	$(PY) -m pip install -q -e '.[dev,sim,train]'
	# the RIC's Python SDL, for the test that reads the insights as other xApps do; its metadata pins
	# redis==4.3.6 and hiredis==2.0.0, yet it runs on the redis-py installed above
	$(PY) -m pip install -q --no-deps ricsdl==3.1.3
	touch $@

setup: $(VENV)/.done

# The fast suite (~75 s): no training; the service runs a random-weight model of the deployed size
test: setup
	$(PY) -m pytest -q

# Everything, the `slow` end-to-end tests included (a trained model, several xApps, the demo; ~3 min)
test-all: setup
	$(PY) -m pytest -q -m ""

lint: setup
	$(VENV)/bin/ruff check .

# Regenerate proto/*_pb2.py and proto/e2sm_wmfm_csi.py (committed; tests check they are current)
proto: setup
	$(PY) -m grpc_tools.protoc -Iproto --python_out=proto proto/*.proto
	$(VENV)/bin/pycrate_asn1compile.py -i proto/e2sm_wmfm_csi.asn -o proto/e2sm_wmfm_csi

# Regenerate deploy/descriptor/schema.json and the descriptor's measurements from xapp/, and the A1
# policy type deploy/a1/policy-type.json from xapp/policy.py (tests check they are current)
descriptor: setup
	$(PY) -m wmfm.xapp.schema > deploy/descriptor/schema.json
	$(PY) -m wmfm.xapp.schema --measurements deploy/descriptor/config-file.json
	$(PY) -m wmfm.xapp.policy > deploy/a1/policy-type.json

# Regenerate docs/reference/ (controls, metrics, messages, Redis keys) from the code (a test checks it is current)
reference: setup
	$(PY) -m wmfm.reference docs/reference

# The main job on embedded defaults (`wmfm demo`): twin -> cache -> WMFM `tiny` experiment -> ONNX export ->
# embedded redis-server + the xApp -> real-time replay of the test trajectories -> scores + pictures in
# $(DEMO)/replay (README: what it prints, how long it takes).
demo: setup
	$(WMFM) demo --out $(DEMO)

# Horizontal scaling on this machine (`wmfm scale`): 1 vs 2 xApp instances (round-robin, cell sharding)
# behind one max-rate replay of the demo's twin; exactly-once check + combined throughput (~2 min after demo).
scale: setup
	$(WMFM) scale --demo $(DEMO) --out .cache/scale
	mkdir -p docs/results/scale
	cp .cache/scale/scale.json .cache/scale/scale.png docs/results/scale/

# The committed reference result (docs/results/cpu): <= 90 min on the 2-core CPU machine with both cores,
# its 20-world corpus included (as the committed run); the worlds, caches and corpus in
# .cache/experiment-cpu/data are reused when they match. Also the target world's `dataset stats`.
experiment-cpu: setup
	$(WMFM) experiment --preset cpu --out .cache/experiment-cpu --overwrite --threads 2
	mkdir -p docs/results/cpu
	cp .cache/experiment-cpu/report.md .cache/experiment-cpu/report.json .cache/experiment-cpu/config.json \
	   .cache/experiment-cpu/*.png docs/results/cpu/
	$(WMFM) dataset stats .cache/experiment-cpu/data/cache --out docs/results/cpu/target_stats.png > /dev/null

bench-twin: setup
	$(WMFM) bench twin --scenes 2000 --out .cache/bench_twin.json

$(CPU_RANDOM)/manifest.sha256: $(VENV)/.done
	$(WMFM) export --random-init --preset cpu --fp16 --overwrite --out $(CPU_RANDOM)

# Backends vs torch eager on the `cpu` preset's model size (batch-1 p50/p99 >= 1000 calls, batch 8/32)
bench-model: $(CPU_RANDOM)/manifest.sha256
	$(WMFM) bench model --artifact $(CPU_RANDOM) --threads 2 --quiet --out docs/results/bench/model.json

# Frame decode per camera resolution: OpenCV reduced (what the cache and the xApp run) vs OpenCV full, Pillow
# draft and Pillow full, in one run (docs/results/bench/decode.*, ~1 min)
bench-decode: $(CPU_RANDOM)/manifest.sha256
	$(WMFM) bench decode --artifact $(CPU_RANDOM) --quiet --out docs/results/bench/decode.json

# The memory one xApp receive socket can hold per setting, filled with nobody reading (docs/results/bench/queue.*)
bench-queue: setup
	$(WMFM) bench queue --out docs/results/bench/queue.json

# One hour at 1000 UE/s (two 720p JPEG cameras at 10 fps): the xApp's memory and p99 every minute
# (docs/results/soak/; 61 min)
soak: $(CPU_RANDOM)/manifest.sha256
	$(WMFM) bench soak --artifact $(CPU_RANDOM) --rate 1000 --duration 3600 --quiet --out docs/results/soak/soak.json

# The committed xApp benchmark figures (docs/results/bench/, ~8 min): the service under load, 720p30 JPEG cameras,
# vs the naive baseline (and, at max rate, without frame conflation) in the same run; then the frame worker's
# cost per frame at 320x240 and 1920x1080
bench-xapp: bench-model bench-decode
	$(WMFM) bench xapp --artifact $(CPU_RANDOM) --rate 100 --duration 10 --ues-per-frame 1 --cameras 2 \
	    --camera-size 1280x720 --fps 30 --quiet --out docs/results/bench/xapp_100_per_s_1ue.json
	$(WMFM) bench xapp --artifact $(CPU_RANDOM) --rate 1000 --duration 10 --ues-per-frame 8 --cameras 4 \
	    --camera-size 1280x720 --fps 30 --quiet --out docs/results/bench/xapp_1000_per_s.json
	$(WMFM) bench xapp --artifact $(CPU_RANDOM) --max-rate --rate 2500 --duration 10 --ues-per-frame 8 --cameras 4 \
	    --camera-size 1280x720 --fps 30 --also frame_worker.conflate=false --quiet \
	    --out docs/results/bench/xapp_max_rate.json
	$(WMFM) bench xapp --artifact $(CPU_RANDOM) --rate 100 --duration 10 --ues-per-frame 1 --cameras 2 \
	    --camera-size 320x240 --fps 30 --no-baseline --quiet --out docs/results/bench/xapp_100_per_s_240p.json
	$(WMFM) bench xapp --artifact $(CPU_RANDOM) --rate 100 --duration 10 --ues-per-frame 1 --cameras 2 \
	    --camera-size 1920x1080 --fps 30 --no-baseline --quiet --out docs/results/bench/xapp_100_per_s_1080p.json
	$(WMFM) bench xapp --artifact $(CPU_RANDOM) --rate 1000 --duration 10 --ues-per-frame 8 --cameras 4 \
	    --camera-size 1280x720 --fps 30 --also indications.encoding=e2ap --no-baseline --quiet \
	    --out docs/results/bench/xapp_e2ap.json

# On a host with an NVIDIA GPU: parity + latency with torch CUDA, ONNX Runtime, TensorRT FP32/FP16, and the
# `gpu`-marked tests (the TensorRT backend through the same tests as the others).
gpu-check: setup
	$(VENV)/bin/pip install -q -e '.[gpu]' || echo 'tensorrt/cuda-python not installable here: the TensorRT cases will be skipped'
	PY=$(PY) scripts/gpu_check.sh
	$(PY) -m pytest -q -m gpu

clean:
	rm -rf $(VENV) .cache .pytest_cache
