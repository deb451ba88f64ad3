"""Prometheus metrics of the xApp (one registry per app instance), served at /ric/v1/metrics.
Each stage records its own (transport.Inbox, sync, batch, inference.Engine, sink); the replay
reads them back from the endpoint (wmfm.sim.probe)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector, generate_latest

_MS = (0.0002, 0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.1, 0.25, 0.5, 1.0)


class Metrics:
    def __init__(self):
        r = self.registry = CollectorRegistry()
        self.messages = Counter("wmfm_messages", "messages received, by socket", ["socket"], registry=r)
        self.indications = Counter("wmfm_indications", "RIC indications decoded (and not duplicates), by encoding "
                                   "(protobuf, e2ap) and service model (\"WMFM-CSI/1.0\")", ["encoding", "sm"],
                                   registry=r)
        self.reports = Counter("wmfm_ue_reports", "UE CSI reports decoded", registry=r)
        self.decode_errors = Counter("wmfm_decode_errors", "messages dropped by the codec, by socket and reason",
                                     ["socket", "reason"], registry=r)
        self.sn = Counter("wmfm_sn_events", "indication SN anomalies: gap, duplicate (dropped), out_of_order",
                          ["event"], registry=r)
        self.sn_missing = Counter("wmfm_sn_missing", "indications missing according to SN gaps", registry=r)
        self.sync = Counter("wmfm_sync", "CSI reports by pairing result: fused or csi_only (no frame in time)",
                            ["result"], registry=r)
        self.skipped = Counter("wmfm_skipped", "indications not served, by reason: other_cell (another instance's, "
                               "scaling.cells), policy_cell (a cell the A1 policy leaves out)",
                               ["reason"], registry=r)
        self.dropped = Counter("wmfm_dropped", "UE reports dropped after decoding, by reason: queue_full, "
                               "inference_error (their batch failed), internal_error (a handler failed)",
                               ["reason"], registry=r)
        self.batch_failures = Counter("wmfm_batch_failures", "inference batches that failed, by exception type "
                                      "(their UE reports are counted in wmfm_dropped_total)", ["error"], registry=r)
        self.insights = Counter("wmfm_insights", "insights produced, by mode", ["mode"], registry=r)
        self.batch = Histogram("wmfm_batch_size", "UEs per inference batch", registry=r,
                               buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256))
        self.frames = Counter("wmfm_frames", "camera frames by camera and result: decoded (then embedded), or "
                              "superseded (a newer frame of the camera was queued and no waiting report needed "
                              "this one: dropped unread)", ["camera", "result"], registry=r)
        self.frame_embeds = Counter("wmfm_frame_embeds", "camera frames embedded, by path: worker (beside the CSI "
                                    "path), batch (a batch found its frame's tokens missing and embedded it)",
                                    ["path"], registry=r)
        self.frame_cpu = Counter("wmfm_frame_worker_cpu_seconds", "CPU time of the frame worker thread "
                                 "(receive, decode, embed)", registry=r)
        self.stage = Histogram("wmfm_stage_seconds",
                               "time per stage: decode, frame_decode, frame_embed, sync_wait, queue, infer, redis",
                               ["stage"], registry=r, buckets=_MS)
        self.e2e = Histogram("wmfm_e2e_latency_seconds", "CSI collection time (source clock) to the Redis write",
                             registry=r, buckets=_MS)
        self.latency = Histogram("wmfm_latency_seconds", "message received to the Redis write (this host's clock)",
                                 registry=r, buckets=_MS)
        self.redis_errors = Counter("wmfm_redis_errors", "failed Redis round trips", registry=r)
        self.redis_dropped = Counter("wmfm_redis_dropped", "insights dropped because the buffer was full", registry=r)
        self.withheld = Counter("wmfm_withheld", "insights not written: the A1 policy's publish mode is none",
                                registry=r)
        self.redis_buffer = Gauge("wmfm_redis_buffer_depth", "insights waiting for Redis", registry=r)
        self.queue = Gauge("wmfm_queue_depth", "UE reports waiting for inference", registry=r)
        self.http = Counter("wmfm_http_connections", "HTTP connections by result: served (a GET answered), refused "
                            "(http.max_connections busy: closed unanswered), error (the client went away, timed "
                            "out or sent junk)", ["result"], registry=r)
        self.policy_requests = Counter("wmfm_policy_requests", "A1 policy requests by operation (CREATE, UPDATE, "
                                       "DELETE, PUT) and result (ok, deleted, unknown, refused)",
                                       ["operation", "result"], registry=r)
        self.subscriptions = Counter("wmfm_subscription_notices", "the RIC subscription manager's notices, per "
                                     "subscription instance: ok (in force at the E2 node), failed", ["result"],
                                     registry=r)
        self.policy_instances = Gauge("wmfm_policy_instances", "A1 policy instances in force", registry=r)
        self.waiting = Gauge("wmfm_sync_waiting", "UE reports waiting for a camera frame", registry=r)
        ProcessCollector(registry=r)        # process_cpu_seconds_total, process_resident_memory_bytes, ...

    def render(self) -> bytes:
        return generate_latest(self.registry)
