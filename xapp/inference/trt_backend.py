"""TensorRT: strongly typed engines built from the artifact's ONNX graphs, cached on disk.

Written for the TensorRT 10.12+ / 11 Python API:
- Networks are *strongly typed* (the only kind in TensorRT 11, where the FP16/INT8 builder
  flags are gone): every tensor's type comes from the ONNX file. FP32 engines build from the
  FP32 graphs; FP16 engines from the mixed-precision copies `wmfm export --fp16` writes
  (wmfm.model.fp16: FP32 inputs/outputs, CSI normalisation and reductions kept FP32).
  The FP32 ONNX stays the source of truth.
- One optimisation profile per engine: batch 1 (opt `opt_batch`) .. the artifact's `max_batch`.
- Engines are cached under `cache_dir` (default ARTIFACT/engines) keyed by the ONNX sha256,
  the TensorRT version, the GPU name, precision and profile; a sidecar JSON holds the engine's
  own sha256, checked before deserialising. A timing cache per TensorRT version + GPU makes
  rebuilds fast.
- Execution uses the tensor-address API (`set_tensor_address`, `set_input_shape`,
  `execute_async_v3`) on one CUDA stream, with pinned host buffers sized for `max_batch`, and
  a CUDA graph captured for batch 1 (the near-RT hot path: one UE, one frame).

CUDA calls go through cuda-python (`cuda.bindings.runtime`), so the xApp needs no torch on a
GPU host. Nothing here runs on a host without an NVIDIA GPU; the tests skip it with the reason.
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import os
import time
from pathlib import Path

import numpy as np

from wmfm.artifact import Artifact, Graph, sha256

from .base import Backend


def _cudart():
    try:
        from cuda.bindings import runtime as cudart  # cuda-python >= 12.6
    except ImportError:
        from cuda import cudart  # older cuda-python
    return cudart


def _ck(result):
    """cuda-python calls return (error, *values): raise on error, return the value(s)."""
    cudart = _cudart()
    err, *values = result if isinstance(result, tuple) else (result,)
    if int(err) != int(cudart.cudaError_t.cudaSuccess):
        raise RuntimeError(f"CUDA error {cudart.cudaGetErrorName(err)[1].decode()}")
    return values[0] if len(values) == 1 else (values or None)


def gpu_name(device: int = 0) -> str:
    props = _ck(_cudart().cudaGetDeviceProperties(device))
    name = props.name
    return (name.decode() if isinstance(name, bytes) else str(name)).split("\x00")[0].strip()


# how engines are built (TF32 off, one profile); change it and cached engines are rebuilt
BUILD_RECIPE = "strongly-typed/no-tf32/profile-1/v1"


def engine_key(onnx_sha256: str, trt_version: str, gpu: str, precision: str, opt_batch: int, max_batch: int) -> str:
    blob = json.dumps([onnx_sha256, trt_version, gpu, precision, opt_batch, max_batch, BUILD_RECIPE])
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    tmp.replace(path)


def build_engine(onnx_path: Path, cache_dir: Path, precision: str, opt_batch: int, max_batch: int,
                 onnx_sha256: str, device: int = 0, workspace_mb: int = 1024, log=print) -> bytes:
    """The serialized engine for `onnx_path`, from the cache or built (and cached) now."""
    import tensorrt as trt
    gpu = gpu_name(device)
    key = engine_key(onnx_sha256, trt.__version__, gpu, precision, opt_batch, max_batch)
    cache_dir.mkdir(parents=True, exist_ok=True)
    path = cache_dir / f"{onnx_path.stem}-{key}.engine"
    side = path.with_suffix(".json")
    if path.is_file() and side.is_file():
        try:
            if json.loads(side.read_text()).get("engine_sha256") == sha256(path):
                return path.read_bytes()
        except (OSError, json.JSONDecodeError):
            pass
        log(f"{path.name}: cached engine does not match its sidecar: rebuilding")

    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    flags = 0
    if hasattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED"):   # TensorRT 11: always strongly typed
        flags |= 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise RuntimeError(f"{onnx_path}: TensorRT cannot parse it: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace_mb << 20)
    if hasattr(trt.BuilderFlag, "TF32"):
        # FP32 tensors stay FP32: TF32 (10-bit mantissa) would break FP32 parity, and the FP32
        # regions of the mixed graphs (CSI normalisation, DFT) are FP32 on purpose
        config.clear_flag(trt.BuilderFlag.TF32)
    profile = builder.create_optimization_profile()
    for i in range(network.num_inputs):
        t = network.get_input(i)
        rest = tuple(t.shape)[1:]
        profile.set_shape(t.name, (1, *rest), (opt_batch, *rest), (max_batch, *rest))
    config.add_optimization_profile(profile)
    slug = "".join(c if c.isalnum() else "_" for c in gpu)
    tc_path = cache_dir / f"timing-{trt.__version__}-{slug}.cache"
    timing = config.create_timing_cache(tc_path.read_bytes() if tc_path.is_file() else b"")
    if timing is None or not config.set_timing_cache(timing, ignore_mismatch=False):
        log(f"{tc_path.name}: unusable timing cache: starting a new one")
        config.set_timing_cache(config.create_timing_cache(b""), ignore_mismatch=False)
    t0 = time.perf_counter()
    blob = builder.build_serialized_network(network, config)
    if blob is None:
        raise RuntimeError(f"{onnx_path}: TensorRT engine build failed (see the TensorRT log above)")
    data = bytes(blob)
    _write_atomic(path, data)                        # the engine first: a timing-cache problem must not lose it
    _write_atomic(side, json.dumps({"onnx": onnx_path.name, "onnx_sha256": onnx_sha256, "tensorrt": trt.__version__,
                                    "gpu": gpu, "precision": precision, "opt_batch": opt_batch,
                                    "max_batch": max_batch, "recipe": BUILD_RECIPE,
                                    "engine_sha256": hashlib.sha256(data).hexdigest(),
                                    "build_s": round(time.perf_counter() - t0, 2)}, indent=2).encode())
    tc = config.get_timing_cache()
    if tc is not None:
        _write_atomic(tc_path, bytes(tc.serialize()))
    log(f"built {path.name} ({precision}, batch 1..{max_batch}) in {time.perf_counter() - t0:.1f} s")
    return data


class _Buffer:
    """A pinned host array and a device buffer of the same size (float32, [max_batch, ...])."""

    def __init__(self, shape: tuple[int, ...]):
        cudart = _cudart()
        self.nbytes = int(np.prod(shape)) * 4
        self.device = _ck(cudart.cudaMalloc(self.nbytes))
        self.host_ptr = _ck(cudart.cudaMallocHost(self.nbytes))
        raw = (ctypes.c_float * int(np.prod(shape))).from_address(int(self.host_ptr))
        self.host = np.ctypeslib.as_array(raw).reshape(shape)

    def free(self) -> None:
        cudart = _cudart()
        cudart.cudaFree(self.device)
        cudart.cudaFreeHost(self.host_ptr)


class _Engine:
    """One graph's engine, its execution contexts and I/O buffers on a shared stream.

    Batch 1 runs on its own context, captured once as a CUDA graph: a captured graph is tied
    to its context's shapes and state, which the general context changes for every batch size.
    """

    def __init__(self, runtime, data: bytes, graph: Graph, max_batch: int, stream, cuda_graph: bool):
        import tensorrt as trt
        self.graph, self.stream = graph, stream
        self.buffers, self.exec_graph, self.context, self.graph_ctx = {}, None, None, None
        try:
            self.engine = runtime.deserialize_cuda_engine(data)
            if self.engine is None:
                raise RuntimeError(f"{graph.name}: the TensorRT engine could not be deserialised")
            names = {self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)}
            want = {s.name for s in (*graph.inputs, *graph.outputs)}
            if names != want:
                raise RuntimeError(f"{graph.name}: engine tensors {sorted(names)} != manifest {sorted(want)}")
            for spec in (*graph.inputs, *graph.outputs):
                if self.engine.get_tensor_dtype(spec.name) != trt.DataType.FLOAT:
                    raise RuntimeError(f"{graph.name}.{spec.name}: engine I/O must be FP32")
                self.buffers[spec.name] = _Buffer((max_batch, *spec.shape[1:]))
            self.context = self._new_context()
            if cuda_graph:
                self.graph_ctx = self._new_context()
                for spec in graph.inputs:
                    self.graph_ctx.set_input_shape(spec.name, (1, *spec.shape[1:]))
        except BaseException:
            self.close()
            raise

    def _new_context(self):
        ctx = self.engine.create_execution_context()
        for name, buf in self.buffers.items():
            ctx.set_tensor_address(name, int(buf.device))
        return ctx

    def _enqueue(self, ctx) -> bool:
        return bool(ctx.execute_async_v3(int(self.stream)))

    def _capture(self) -> None:
        """Record batch-1 execution as a CUDA graph, after one normal run (as TensorRT asks).
        A failed capture always ends the capture and falls back to plain enqueues."""
        cudart = _cudart()
        if not self._enqueue(self.graph_ctx):
            raise RuntimeError(f"{self.graph.name}: execute_async_v3 failed")
        _ck(cudart.cudaStreamSynchronize(self.stream))
        _ck(cudart.cudaStreamBeginCapture(self.stream, cudart.cudaStreamCaptureMode.cudaStreamCaptureModeThreadLocal))
        ok = self._enqueue(self.graph_ctx)
        err, g = cudart.cudaStreamEndCapture(self.stream)
        if ok and int(err) == 0:
            err, exec_graph = cudart.cudaGraphInstantiate(g, 0)
            self.exec_graph = exec_graph if int(err) == 0 else None
        if g is not None:
            cudart.cudaGraphDestroy(g)
        if self.exec_graph is None:
            cudart.cudaGetLastError()                   # clear the sticky error of the failed capture
            self.graph_ctx = None                       # plain enqueues from now on

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        cudart = _cudart()
        h2d, d2h = cudart.cudaMemcpyKind.cudaMemcpyHostToDevice, cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost
        b = next(iter(feeds.values())).shape[0]
        for spec in self.graph.inputs:
            buf = self.buffers[spec.name]
            buf.host[:b] = feeds[spec.name]
            _ck(cudart.cudaMemcpyAsync(buf.device, buf.host_ptr, buf.nbytes // buf.host.shape[0] * b, h2d,
                                       self.stream))
        if b == 1 and self.graph_ctx is not None and self.exec_graph is None:
            self._capture()
        if b == 1 and self.exec_graph is not None:
            _ck(cudart.cudaGraphLaunch(self.exec_graph, self.stream))
        else:
            for spec in self.graph.inputs:
                self.context.set_input_shape(spec.name, (b, *spec.shape[1:]))
            if not self._enqueue(self.context):
                raise RuntimeError(f"{self.graph.name}: execute_async_v3 failed")
        for spec in self.graph.outputs:
            buf = self.buffers[spec.name]
            _ck(cudart.cudaMemcpyAsync(buf.host_ptr, buf.device, buf.nbytes // buf.host.shape[0] * b, d2h,
                                       self.stream))
        _ck(cudart.cudaStreamSynchronize(self.stream))
        return [self.buffers[s.name].host[:b].copy() for s in self.graph.outputs]

    def close(self) -> None:
        cudart = _cudart()
        cudart.cudaStreamSynchronize(self.stream)       # nothing in flight on memory about to be freed
        if self.exec_graph is not None:
            cudart.cudaGraphExecDestroy(self.exec_graph)
            self.exec_graph = None
        self.graph_ctx = self.context = None
        for buf in self.buffers.values():
            buf.free()
        self.buffers = {}


class TensorRTBackend(Backend):
    """Options: `precision` "fp32" | "fp16", `cache_dir` (engines; default ARTIFACT/engines),
    `device` (CUDA device index), `opt_batch` (profile optimum, default 1), `cuda_graph` (batch 1)."""

    name = "tensorrt"

    @classmethod
    def unavailable(cls) -> str | None:
        try:
            import tensorrt  # noqa: F401
        except ImportError:
            return "tensorrt is not installed (pip install 'wmfm-xapp[gpu]' on a host with an NVIDIA GPU)"
        try:
            cudart = _cudart()
        except ImportError:
            return "cuda-python is not installed (pip install 'wmfm-xapp[gpu]')"
        err, n = cudart.cudaGetDeviceCount()
        if int(err) != 0 or n == 0:
            return "no NVIDIA GPU is visible"
        return None

    @classmethod
    def options(cls, cfg) -> dict:
        return {"precision": cfg.precision}

    def __init__(self, artifact: Artifact, precision: str = "fp32", cache_dir: str | Path | None = None,
                 device: int = 0, opt_batch: int = 1, cuda_graph: bool = True, workspace_mb: int = 1024, log=print):
        super().__init__(artifact)
        import tensorrt as trt
        if precision not in ("fp32", "fp16"):
            raise ValueError(f"precision: expected fp32 or fp16, got {precision!r}")
        cudart = _cudart()
        _ck(cudart.cudaSetDevice(device))
        self.precision, self.device, self.gpu = precision, device, gpu_name(device)
        self.cache_dir = Path(cache_dir) if cache_dir else artifact.root / "engines"
        self.stream = _ck(cudart.cudaStreamCreate())
        self.runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        self.engines: dict[str, _Engine] = {}
        files = artifact.manifest["files"]
        try:
            for name, g in self.graphs.items():
                file = g.file
                if precision == "fp16" and name.endswith("_encoder"):
                    if not g.fp16_file:
                        raise ValueError(f"precision fp16: {artifact.root} has no fp16 graphs (export with --fp16)")
                    file = g.fp16_file
                data = build_engine(artifact.path(file), self.cache_dir, precision if file != g.file else "fp32",
                                    opt_batch, self.max_batch, files[file], device, workspace_mb, log)
                self.engines[name] = _Engine(self.runtime, data, g, self.max_batch, self.stream, cuda_graph)
        except BaseException:
            self.close()
            raise

    def _run(self, graph: str, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        _ck(_cudart().cudaSetDevice(self.device))       # the current device is per thread
        return self.engines[graph].run(feeds)

    def describe(self) -> dict:
        import tensorrt as trt
        return {"backend": self.name, "version": trt.__version__, "device": f"cuda:{self.device} {self.gpu}",
                "precision": self.precision, "cache_dir": str(self.cache_dir)}

    def close(self) -> None:
        for e in self.engines.values():
            e.close()
        self.engines = {}
        if getattr(self, "stream", None) is not None:
            _cudart().cudaStreamDestroy(self.stream)
            self.stream = None
