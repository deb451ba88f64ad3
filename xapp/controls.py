"""The xApp's configuration: the `controls` section of the O-RAN xApp descriptor.

    deploy/descriptor/config-file.json   {"name": "wmfm-xapp", ..., "controls": {...}}
    deploy/descriptor/schema.json        JSON schema of the controls (for the RIC's onboarder)

Loaded into frozen dataclasses once at start: an unknown control or a wrong type stops
start-up with one line naming the dotted field (`controls.sync.max_skew_ms: expected float,
got str`). Overrides: `--set sync.max_skew_ms=30` on the command line or
`WMFM__SYNC__MAX_SKEW_MS=30` in the environment (values parsed as JSON, else taken as strings).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from wmfm.config import ConfigError, check, check_cell, check_range, from_dict

ENV_PREFIX = "WMFM__"                        # WMFM__<SECTION>__<KEY>=value
_TCP = re.compile(r"^tcp://(\[[0-9a-fA-F:.]+\]|[^:/\[\]]+):(\*|[0-9]{1,5})$")


def check_endpoint(endpoint: str, where: str) -> None:
    """A ZeroMQ endpoint we can bind or connect: tcp://host:port (port 1-65535, or * to bind a free
    one), ipc://path or inproc://name."""
    scheme = endpoint.split("://")[0] if "://" in endpoint else ""
    check(scheme in ("tcp", "ipc", "inproc"), where,
          f"expected tcp://host:port, ipc://path or inproc://name, got {endpoint!r}")
    if scheme == "tcp":
        m = _TCP.match(endpoint)
        check(m is not None, where, f"expected tcp://host:port, got {endpoint!r}")
        check(m.group(2) == "*" or 1 <= int(m.group(2)) <= 65535, where,
              f"port must be in 1-65535 (or * for a free one), got {m.group(2)}")
    else:
        check(len(endpoint) > len(scheme) + 3, where, f"empty {scheme} address in {endpoint!r}")


@dataclass(frozen=True)
class SocketConfig:
    """A ZeroMQ receive socket."""
    endpoint: str = "tcp://127.0.0.1:5560"  # tcp://host:port (port * = a free one), ipc://path or inproc://name
    mode: Literal["bind", "connect"] = "bind"   # bind: senders connect to the xApp; connect: it connects to them
    pattern: Literal["pull", "sub"] = "pull"    # pull (from PUSH senders) or sub (from a PUB, e.g. a camera gateway)
    rcvhwm: int = 10000                     # messages queued per sender before it blocks (PUSH) or drops (PUB);
                                            # lowered to fit queue_bytes
    max_message_bytes: int = 4 << 20        # larger messages are counted ("oversize") and dropped (more than
                                            # twice as large: cut by ZeroMQ, which drops the sender's connection)
    queue_bytes: int = 256 << 20            # memory the socket may queue per sender: it holds at most
                                            # queue_bytes // (2 x max_message_bytes) messages (and rcvhwm)
    encoding: Literal["protobuf", "e2ap"] = "protobuf"   # indications: the RICIndication protobuf envelope, or
                                            # E2AP RICindication PDUs (APER, E2SM-WMFM-CSI); frames: protobuf

    def validate(self, where: str) -> None:
        check_endpoint(self.endpoint, f"{where}.endpoint")
        check_range(self.rcvhwm, 1, 10_000_000, f"{where}.rcvhwm")
        check(1024 <= self.max_message_bytes <= 256 << 20, f"{where}.max_message_bytes", "must be in [1 KiB, 256 MiB]")
        check(2 * self.max_message_bytes <= self.queue_bytes <= 64 << 30, f"{where}.queue_bytes",
              f"must hold one message of up to twice max_message_bytes ({2 * self.max_message_bytes}) and be at "
              f"most 64 GiB, got {self.queue_bytes}")

    @property
    def hwm(self) -> int:
        """Messages the socket queues per sender: rcvhwm, fewer when queue_bytes says so."""
        return min(self.rcvhwm, self.queue_bytes // (2 * self.max_message_bytes))

    @property
    def queue_bound(self) -> int:
        """The most bytes the socket holds per sender: hwm messages and one being received, each of
        up to twice max_message_bytes (what ZeroMQ lets in)."""
        return (self.hwm + 1) * 2 * self.max_message_bytes


@dataclass(frozen=True)
class CurveConfig:
    """ZeroMQ CURVE: encryption + authentication; only allow-listed client public keys get in."""
    enabled: bool = False                   # encrypt and authenticate both sockets (bind mode only)
    server_secret_key_file: str = ""        # a zmq.auth `.key_secret` file (zmq.auth.create_certificates)
    allowed_clients_dir: str = ""           # folder of client `.key` public-key files: the allow-list

    def validate(self, where: str) -> None:
        if self.enabled:
            check(bool(self.server_secret_key_file), f"{where}.server_secret_key_file", "required when enabled")
            check(bool(self.allowed_clients_dir), f"{where}.allowed_clients_dir", "required when enabled")


@dataclass(frozen=True)
class CameraConfig:
    """A camera whose frames the xApp pairs with the CSI of the cells it sees."""
    cells: tuple[str, ...] = ()             # "<plmn>:<nr_cell_id>" cells this camera sees; () = every cell
    width: int = 0                          # expected frame width; 0 = any (with height 0)
    height: int = 0                         # expected frame height; 0 = any (with width 0)
    max_pixels: int = 3840 * 2160           # with width/height 0: frames of more pixels are refused from the
                                            # message, before decoding ("image_size"; a 4096x4096 PNG takes ~0.2 s)

    def validate(self, where: str) -> None:
        check((self.width == 0) == (self.height == 0) and 0 <= self.width <= 16384 and 0 <= self.height <= 16384,
              where, f"width and height: both 0 (any size) or both in 1-16384, got {self.width}x{self.height}")
        check_range(self.max_pixels, 256, 8192 * 8192, f"{where}.max_pixels")

    @property
    def limit(self) -> tuple[int, int] | int:
        """What the codec checks a frame's header against: (width, height), or the pixel budget."""
        return (self.width, self.height) if self.width and self.height else self.max_pixels


@dataclass(frozen=True)
class SyncConfig:
    """Pairing each CSI report with the camera frame nearest in time."""
    max_skew_ms: float = 100.0              # a frame pairs with CSI only if |t_frame - t_csi| <= this
                                            # (one frame period at 10 fps: every CSI report has a frame)
    deadline_ms: float = 1.0                # wait at most this (after the CSI arrived) for a nearer, later frame
                                            # (only when one is due by then); more: fresher frames, more latency
    frames_per_camera: int = 16             # ring buffer of recent frames per camera

    def validate(self, where: str) -> None:
        check_range(self.max_skew_ms, 0, 60_000, f"{where}.max_skew_ms")
        check_range(self.deadline_ms, 0, 60_000, f"{where}.deadline_ms")
        check_range(self.frames_per_camera, 1, 10_000, f"{where}.frames_per_camera")


@dataclass(frozen=True)
class BatchConfig:
    """Micro-batching of paired reports for inference."""
    max_batch: int = 32                     # UEs per inference call
    max_wait_us: int = 0                    # a partial batch waits at most this for more UEs; 0: run as soon
                                            # as the sockets are drained (under load, what arrives during a
                                            # batch forms the next one; on 2 cores waiting buys little)
    queue: int = 4096                       # pending UEs before new ones are dropped ("queue_full")
    reuse_frames: bool = True               # embed each camera frame once for all its UEs (false: per UE)

    def validate(self, where: str) -> None:
        check_range(self.max_batch, 1, 4096, f"{where}.max_batch")
        check_range(self.max_wait_us, 0, 10_000_000, f"{where}.max_wait_us")
        check_range(self.queue, self.max_batch, 10_000_000, f"{where}.queue")


@dataclass(frozen=True)
class FrameWorkerConfig:
    """The thread that decodes and embeds camera frames beside the CSI path (xapp/frames.py)."""
    conflate: bool = True                   # drop unread a queued frame that a newer one of the same camera
                                            # supersedes, unless a report may still pair with it (one waiting
                                            # and nearer to it, or one still to come)
    nice: int = 0                           # Linux niceness of the worker thread (0: as the CSI path, up to 19: the
                                            # kernel runs CSI work first when every core is busy; no gain measured
                                            # on the 2-core host, docs/performance.md)

    def validate(self, where: str) -> None:
        check_range(self.nice, 0, 19, f"{where}.nice")


@dataclass(frozen=True)
class BackendConfig:
    """The inference backend that runs the artifact's graphs."""
    name: Literal["auto", "onnxruntime", "tensorrt", "torch"] = "auto"   # auto: tensorrt with a GPU, else onnxruntime
    precision: Literal["fp32", "fp16"] = "fp32"   # fp16: the mixed-precision encoders (`wmfm export --fp16`)
    threads: int = 1                        # CPU threads per inference call (onnxruntime/torch); 0 = the library's
                                            # default. 1: the loop and the frame worker each run one at a time
                                            # (1000 UE/s on 2 cores: p99 9 ms with 1, 11-21 ms with 2)

    def validate(self, where: str) -> None:
        check_range(self.threads, 0, 1024, f"{where}.threads")


@dataclass(frozen=True)
class RedisConfig:
    """Where insights are written (the RIC's SDL/dbaas, or an embedded redis-server)."""
    url: str = "auto"                       # "auto": the RIC's dbaas when DBAAS_SERVICE_HOST is set, else "embedded"
                                            # (a private redis-server the app starts); or redis://, rediss://,
                                            # unix://, redis+sentinel://host:port[,host:port]/master[/db]
    namespace: str = "wmfm"                 # SDL namespace: keys are "{wmfm},..."
    stream_maxlen: int = 100000             # XADD MAXLEN ~ (approximate trim)
    buffer: int = 100000                    # insights held in memory while Redis is unreachable (oldest dropped)
    username: str = ""                      # ACL user
    password_env: str = ""                  # name of the env variable holding the password (never in the file)
    tls_ca_file: str = ""                   # rediss:// with this CA; client cert/key below for mutual TLS
    tls_cert_file: str = ""                 # client certificate (mutual TLS)
    tls_key_file: str = ""                  # client key (mutual TLS)
    retry_backoff_ms: tuple[float, float] = (50.0, 2000.0)   # exponential backoff: first, cap
    sdl_mirror: bool = True                 # also write each UE's newest insight as the RIC's SDL libraries read it
                                            # (a JSON string per UE, a set of UEs, a text event channel)
    sdl_ttl_s: float = 60.0                 # a UE's mirror key expires this long after its last insight (and
                                            # the UE leaves the set)

    def validate(self, where: str) -> None:
        schemes = ("redis", "rediss", "unix", "redis+sentinel")
        check(self.url in ("auto", "embedded") or self.url.split("://")[0] in schemes, f"{where}.url",
              f"expected 'auto', 'embedded' or a redis://, rediss://, unix:// or redis+sentinel:// URL, "
              f"got {self.url!r}")
        check(bool(self.namespace) and "," not in self.namespace, f"{where}.namespace", "non-empty, no comma")
        check_range(self.stream_maxlen, 1, 1 << 40, f"{where}.stream_maxlen")
        check_range(self.buffer, 1, 100_000_000, f"{where}.buffer")
        check_range(self.sdl_ttl_s, 1, 86_400, f"{where}.sdl_ttl_s")
        first, cap = self.retry_backoff_ms
        check(0 < first <= cap <= 3_600_000, f"{where}.retry_backoff_ms",
              f"expected 0 < first <= cap <= 3600000 ms, got [{first}, {cap}]")


@dataclass(frozen=True)
class ScalingConfig:
    """Several instances sharing one RAN (README "Deploy on a RIC": horizontal scaling)."""
    cells: tuple[str, ...] = ()             # cells this instance serves; () = every cell. Indications of other
                                            # cells are counted (wmfm_skipped{reason="other_cell"}) and dropped
    round_robin: bool = False               # the senders spread indications over the instances (ZeroMQ PUSH
                                            # round-robin): SN gaps are expected (not counted), and the per-UE
                                            # hash is guarded in Redis (several instances write the same UE)

    def validate(self, where: str) -> None:
        for cell in self.cells:
            check_cell(cell, f"{where}.cells")


@dataclass(frozen=True)
class HttpConfig:
    """The HTTP surface: health, config and Prometheus metrics (/ric/v1/...)."""
    host: str = "0.0.0.0"                   # address the HTTP surface listens on
    port: int = 8080                        # 0 = a free port (tests)
    timeout_s: float = 5.0                  # a connection idle or slow this long (reading a request or writing
                                            # the answer) is closed
    max_connections: int = 32               # connections served at once; more are closed unanswered (counted)
    backlog: int = 128                      # connections the kernel queues before they are accepted

    def validate(self, where: str) -> None:
        check(bool(self.host), f"{where}.host", "must not be empty")
        check_range(self.port, 0, 65535, f"{where}.port")
        check_range(self.timeout_s, 0.1, 600, f"{where}.timeout_s")
        check_range(self.max_connections, 1, 10_000, f"{where}.max_connections")
        check_range(self.backlog, 1, 65535, f"{where}.backlog")


@dataclass(frozen=True)
class PolicyConfig:
    """A1 policies (policy type 28001): the LoS threshold, pairing skew, enabled cells and publish mode
    an operator steers at run time, over these controls."""
    rest: Literal["any", "local", "off"] = "any"   # who may PUT/DELETE /ric/v1/policies/<id> on the HTTP port:
                                            # any client, local (loopback only: the E2 bridge in the same pod) or
                                            # nobody (the policies stay readable)


@dataclass(frozen=True)
class BridgeConfig:
    """The E2 bridge (`wmfm bridge`, its own container beside the xApp): subscribes for the WMFM-CSI RAN
    function, receives RIC indications and A1 policy requests over RMR, hands them to the xApp."""
    rmr_port: int = 4560                    # RMR data port (the descriptor's `rmrdata`)
    http_port: int = 8090                   # the bridge's own health and metrics (/ric/v1/...)
    forward: str = "tcp://127.0.0.1:5560"   # the xApp's indication socket, as the bridge reaches it (same pod:
                                            # loopback, or ipc:// on a shared volume)
    xapp_url: str = "http://127.0.0.1:8080"   # the xApp's HTTP surface (A1 policies go to /ric/v1/policies)
    submgr_url: str = "http://service-ricplt-submgr-http.ricplt:8088/ric/v1"   # the RIC's subscription manager
    e2mgr_url: str = "http://service-ricplt-e2mgr-http.ricplt:3800/v1"   # E2 nodes and their RAN functions
    appmgr_url: str = "http://service-ricplt-appmgr-http.ricplt:8080/ric/v1"   # registration; "" = none
    e2_nodes: tuple[str, ...] = ()          # E2 nodes (inventory names) to subscribe at; () = every connected node
                                            # whose RAN functions include WMFM-CSI (by its OID)
    ran_function_id: int = 0                # the RAN function id where e2mgr does not list the OID; 0 = by OID only
    reporting_period_ms: int = 100          # the event trigger: a CSI report every this
    dtype: Literal["complex64", "complex32"] = "complex64"   # the action definition: how the CSI is sent
    max_ues_per_report: int = 256           # the action definition: UEs per indication at most
    client_host: str = ""                   # the Host the RIC calls back (subscription notifications, at the xApp's
                                            # HTTP port); "" = from RMR_SRC_ID ("service-<ns>-<name>-rmr.<ns>",
                                            # with http for rmr), as the RIC derives the RMR endpoint the other way
    retry_s: float = 5.0                    # retry a failed subscription or registration after this

    def validate(self, where: str) -> None:
        check_range(self.rmr_port, 1, 65535, f"{where}.rmr_port")
        check_range(self.http_port, 0, 65535, f"{where}.http_port")
        check_endpoint(self.forward, f"{where}.forward")
        for name in ("xapp_url", "submgr_url", "e2mgr_url", "appmgr_url"):
            url = getattr(self, name)
            check(url.startswith(("http://", "https://")) or (name == "appmgr_url" and url == ""), f"{where}.{name}",
                  f"expected an http:// or https:// URL, got {url!r}")
        check_range(self.ran_function_id, 0, 4095, f"{where}.ran_function_id")
        check_range(self.reporting_period_ms, 1, 60000, f"{where}.reporting_period_ms")
        check_range(self.max_ues_per_report, 1, 1024, f"{where}.max_ues_per_report")
        check_range(self.retry_s, 0.1, 3600, f"{where}.retry_s")


@dataclass(frozen=True)
class XAppConfig:
    """The xApp's controls (the descriptor's `controls` section)."""
    artifact: str = "artifact"              # `wmfm export` output folder
    backend: BackendConfig = field(default_factory=BackendConfig)
    indications: SocketConfig = field(default_factory=SocketConfig)
    frames: SocketConfig = field(default_factory=lambda: SocketConfig(endpoint="tcp://127.0.0.1:5561"))
    curve: CurveConfig = field(default_factory=CurveConfig)
    cameras: dict[str, CameraConfig] = field(default_factory=lambda: {"cam0": CameraConfig()})
    frame_worker: FrameWorkerConfig = field(default_factory=FrameWorkerConfig)
    sync: SyncConfig = field(default_factory=SyncConfig)
    batch: BatchConfig = field(default_factory=BatchConfig)
    redis: RedisConfig = field(default_factory=RedisConfig)
    http: HttpConfig = field(default_factory=HttpConfig)
    scaling: ScalingConfig = field(default_factory=ScalingConfig)
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    bridge: BridgeConfig = field(default_factory=BridgeConfig)   # read by `wmfm bridge` only
    los_threshold: float = 0.5              # an insight says LoS when p_los > this
    drain_s: float = 5.0                    # SIGTERM: finish in-flight work within this, then exit
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"   # DEBUG logs every dropped message

    def validate(self, where: str) -> None:
        check(bool(self.cameras), f"{where}.cameras", "at least one camera")
        check(self.frames.encoding == "protobuf", f"{where}.frames.encoding", "camera frames are protobuf only")
        if self.curve.enabled:
            for name in ("indications", "frames"):
                check(getattr(self, name).mode == "bind", f"{where}.{name}.mode",
                      "must be bind with curve enabled (the xApp is the CURVE server)")
        check(0.0 < self.los_threshold < 1.0, f"{where}.los_threshold", "must be in (0, 1)")
        check_range(self.drain_s, 0, 3600, f"{where}.drain_s")
        owners: dict[str, str] = {}
        for cam, c in self.cameras.items():
            for cell in c.cells:
                check_cell(cell, f"{where}.cameras.{cam}.cells")
            for cell in c.cells or ("*",):
                check(cell not in owners, f"{where}.cameras.{cam}.cells",
                      f"{cell} already belongs to {owners.get(cell)}")
                owners[cell] = cam

    def camera_for(self, cell: str) -> str | None:
        """The camera that sees `cell` (a camera with no cells sees every cell)."""
        for cam, c in self.cameras.items():
            if cell in c.cells:
                return cam
        for cam, c in self.cameras.items():
            if not c.cells:
                return cam
        return None


def _set(tree: dict, dotted: str, raw: str, where: str) -> None:
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    keys = dotted.split(".")
    node = tree
    for k in keys[:-1]:
        node = node.setdefault(k, {})
        if not isinstance(node, dict):
            raise ConfigError(f"{where}: {dotted}: {k} is not a section")
    node[keys[-1]] = value


def load(path: str | Path | None = None, overrides: list[str] = (), env: dict | None = None) -> XAppConfig:
    """Descriptor file (its `controls`) + env (`WMFM__A__B=v`) + overrides (`a.b=v`) -> XAppConfig."""
    controls: dict = {}
    if path is not None:
        path = Path(path)
        try:
            doc = json.loads(path.read_text())
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read ({exc.strerror})") from None
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{path}: not valid JSON: {exc}") from None
        if not isinstance(doc, dict) or not isinstance(doc.get("controls"), dict):
            raise ConfigError(f"{path}: controls: missing (an O-RAN xApp descriptor keeps its settings there)")
        controls = doc["controls"]
    env = os.environ if env is None else env
    for k, v in sorted(env.items()):
        if k.startswith(ENV_PREFIX):
            _set(controls, k[len(ENV_PREFIX):].lower().replace("__", "."), v, f"env {k}")
    for o in overrides:
        if "=" not in o:
            raise ConfigError(f"--set {o}: expected key=value")
        k, v = o.split("=", 1)
        _set(controls, k.strip(), v, f"--set {o}")
    return from_dict(XAppConfig, controls, "controls")
