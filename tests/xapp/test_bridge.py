"""The E2 bridge between an O-RAN SC RIC and the xApp: everything but the RMR socket, with a real xApp
(E2AP indications), real ZeroMQ, HTTP and Redis; RMR and the platform's REST services are stand-ins
(bridge_fakes.py). The RMR binding itself is checked against the real library when one is present."""

import json
import os
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest
import redis
from bridge_fakes import FakeRic, FakeRmr
from conftest import Sender, wait_for
from wmfm.xapp.bridge import a1
from wmfm.xapp.bridge.bridge import Bridge
from wmfm.xapp.bridge.rmr import A1_POLICY_QUERY, A1_POLICY_REQ, A1_POLICY_RESP, RIC_INDICATION, Message
from wmfm.xapp.controls import load
from wmfm.xapp.e2ap import decode_sm, encode_e2ap_indication

ROOT = Path(__file__).resolve().parents[2]
DESCRIPTOR = json.loads((ROOT / "deploy" / "descriptor" / "config-file.json").read_text())
ENV = {"RMR_SRC_ID": "service-ricxapp-wmfm-xapp-rmr.ricxapp", "HOSTNAME": "ricxapp-wmfm-xapp-7d9f",
       "POD_IP": "10.0.0.5"}


@pytest.fixture
def ric():
    r = FakeRic(busy=1)
    yield r
    r.close()


@pytest.fixture
def bridged(run_xapp, ric):
    """(xApp fed by the bridge, the bridge, its FakeRmr): the bridge runs in a thread, stopped after the test."""
    app = run_xapp("indications.encoding=e2ap", "sync.deadline_ms=20")
    cfg = load(None, [f"bridge.forward={app.endpoints['indications']}", f"bridge.xapp_url=http://127.0.0.1:"
                      f"{app.status.port}", "bridge.http_port=0", f"bridge.submgr_url={ric.url}/ric/v1",
                      f"bridge.e2mgr_url={ric.url}/v1", f"bridge.appmgr_url={ric.url}/ric/v1", "bridge.retry_s=0.2"],
               env={})
    rmrs = []
    bridge = Bridge(cfg, DESCRIPTOR, rmr=lambda port: rmrs.append(FakeRmr(port)) or rmrs[-1], env=ENV).start()
    th = threading.Thread(target=bridge.run, daemon=True)
    th.start()
    yield app, bridge, rmrs[0]
    bridge.stop()
    th.join(timeout=10)


def test_start_up_registers_asks_a1_and_subscribes_where_wmfm_csi_is_offered(bridged, ric):
    app, bridge, rmr = bridged
    assert rmr.port == 4560
    assert [(m.mtype, json.loads(m.payload)) for m in rmr.sent] == [(A1_POLICY_QUERY, {"policy_type_id": 28001})]
    (reg,) = ric.calls("POST", "/ric/v1/register")
    assert {k: reg[k] for k in ("appName", "appInstanceName", "httpEndpoint", "rmrEndpoint")} == {
        "appName": "ricxapp-wmfm-xapp-7d9f", "appInstanceName": "wmfm-xapp", "httpEndpoint": "10.0.0.5:8080",
        "rmrEndpoint": "10.0.0.5:4560"}
    assert json.loads(reg["config"]) == DESCRIPTOR                     # appmgr takes the descriptor as a string
    # the first subscribe was refused (503: node not connected yet); retried until it took
    assert wait_for(lambda: bridge.subscriptions == {"gnb_001": "sub-1"})
    subs = ric.calls("POST", "/ric/v1/subscriptions")
    assert len(subs) == 2 and subs[0] == subs[1]
    s = subs[1]
    assert s["ClientEndpoint"] == {"Host": "service-ricxapp-wmfm-xapp-http.ricxapp", "HTTPPort": 8080, "RMRPort": 4560}
    assert s["Meid"] == "gnb_001" and s["RANFunctionID"] == 3      # found by the E2SM's OID; gnb_kpm offers no WMFM
    (d,) = s["SubscriptionDetails"]
    assert decode_sm("E2SM-WMFM-CSI-EventTriggerDefinition", bytes(d["EventTriggers"])) == {"reportingPeriodMs": 100}
    (act,) = d["ActionToBeSetupList"]
    assert act["ActionType"] == "report" and decode_sm("E2SM-WMFM-CSI-ActionDefinition", bytes(
        act["ActionDefinition"])) == {"dtype": "complex64", "maxUEsPerReport": 256}
    assert bridge.metrics.registry.get_sample_value("wmfm_bridge_ric_errors_total", {"call": "subscribe"}) == 1
    # the subscription manager's notice reaches the xApp's HTTP surface
    notice = json.dumps({"SubscriptionId": "sub-1", "SubscriptionInstances": [
        {"XappEventInstanceId": 1, "E2EventInstanceId": 7, "ErrorCause": "", "ErrorSource": "", "TimeoutType": ""}]})
    req = urllib.request.Request(f"http://127.0.0.1:{app.status.port}/ric/v1/subscriptions/response",
                                 data=notice.encode(), method="POST")
    assert urllib.request.urlopen(req, timeout=5).status == 200
    assert app.metrics.registry.get_sample_value("wmfm_subscription_notices_total", {"result": "ok"}) == 1


def test_a1_is_asked_again_when_the_xapp_restarts(bridged):
    app, bridge, rmr = bridged
    queries = lambda: [m for m in rmr.sent if m.mtype == A1_POLICY_QUERY]     # noqa: E731
    assert len(queries()) == 1                                  # the xApp was ready when the bridge started
    app.started_ns += 1                                          # as a restarted xApp container reports it
    assert wait_for(lambda: len(queries()) == 2)
    time.sleep(0.5)
    assert len(queries()) == 2                                   # once per start


def test_a_failed_or_gone_subscription_is_made_again(bridged, ric):
    app, bridge, rmr = bridged
    assert wait_for(lambda: bridge.subscriptions == {"gnb_001": "sub-1"})
    notice = json.dumps({"SubscriptionId": "sub-1", "SubscriptionInstances": [
        {"XappEventInstanceId": 1, "E2EventInstanceId": 0, "ErrorCause": "RAN function not supported",
         "ErrorSource": "E2Node", "TimeoutType": ""}]}).encode()
    req = urllib.request.Request(f"http://127.0.0.1:{app.status.port}/ric/v1/subscriptions/response", data=notice,
                                 method="POST")
    assert urllib.request.urlopen(req, timeout=5).status == 200
    assert app.describe()["subscriptions"] == {"sub-1": "failed"}
    assert wait_for(lambda: bridge.subscriptions == {"gnb_001": "sub-2"})          # deleted, then made again
    assert ("DELETE", "/ric/v1/subscriptions/sub-1", None) in ric.requests
    ric.nodes[0]["connectionStatus"] = "DISCONNECTED"                               # the node goes away
    assert wait_for(lambda: bridge.subscriptions == {})
    ric.nodes[0]["connectionStatus"] = "CONNECTED"                                  # and comes back
    assert wait_for(lambda: bridge.subscriptions == {"gnb_001": "sub-3"})


def test_ric_indications_reach_the_xapp_unchanged(bridged, samples):
    app, bridge, rmr = bridged
    frames = Sender(app)
    t0 = time.time_ns() + 50_000_000
    for k in range(5):
        t = t0 + k * 20_000_000
        frames.frame("cam0", k, t, samples["images"][k])
        reports = [(10 + u, samples["csi"][2 * k + u]) for u in range(2)]
        pdu = encode_e2ap_indication("gnb_001", k, t + 2_000_000, reports)
        rmr.inbox.put(Message(RIC_INDICATION, 7, pdu, "gnb_001"))
    r = redis.Redis.from_url(app.redis_url)
    assert wait_for(lambda: r.xlen("{wmfm},insights") == 10)
    assert {f[b"ran"] for _, f in r.xrange("{wmfm},insights")} == {b"gnb_001"}
    assert bridge.metrics.registry.get_sample_value("wmfm_bridge_forwarded_total") == 5
    assert app.metrics.registry.get_sample_value("wmfm_indications_total", {"encoding": "e2ap", "sm": "WMFM-CSI/1.0"}) \
        == 5
    frames.close()


def test_a_slow_platform_never_holds_up_the_indications(bridged, ric, samples):
    app, bridge, rmr = bridged
    ric.delay_s = 3.0                                      # every REST call of the bridge now takes 3 s
    time.sleep(0.5)                                        # its REST thread is inside one
    t0 = time.monotonic()
    pdu = encode_e2ap_indication("gnb_001", 0, time.time_ns(), [(10, samples["csi"][0])])
    rmr.inbox.put(Message(RIC_INDICATION, 7, pdu, "gnb_001"))
    assert wait_for(lambda: bridge.metrics.registry.get_sample_value("wmfm_bridge_forwarded_total") == 1, timeout=2)
    assert time.monotonic() - t0 < 1.0
    ric.delay_s = 0.0


def _a1(rmr, doc) -> dict | None:
    n = len(rmr.replies)
    rmr.inbox.put(Message(A1_POLICY_REQ, 28001, json.dumps(doc).encode() if not isinstance(doc, bytes) else doc))
    wait_for(lambda: len(rmr.replies) > n, timeout=5)
    if len(rmr.replies) == n:
        return None
    asked, answer = rmr.replies[-1]
    assert answer.mtype == A1_POLICY_RESP and asked.mtype == A1_POLICY_REQ     # returned to its sender
    return json.loads(answer.payload)


def test_a1_policy_requests_apply_to_the_xapp_and_are_answered(bridged):
    app, bridge, rmr = bridged
    # as the Go mediator sends it: every value a string, the payload a JSON string
    ok = _a1(rmr, {"operation": "CREATE", "policy_type_id": "28001", "policy_instance_id": "night",
                   "payload": json.dumps({"los_threshold": 0.8, "publish": "state"})})
    assert ok == {"policy_type_id": 28001, "policy_instance_id": "night", "handler_id": "wmfm-xapp", "status": "OK"}
    assert wait_for(lambda: app.describe()["policy"]["los_threshold"] == 0.8)
    assert _a1(rmr, {"operation": "UPDATE", "policy_type_id": 28001, "policy_instance_id": "night",
                     "payload": {"los_threshold": 0.6}})["status"] == "OK"
    assert app.policies.effective.los_threshold == 0.6
    bad = _a1(rmr, {"operation": "CREATE", "policy_type_id": "28001", "policy_instance_id": "bad",
                    "payload": "{\"los_threshold\": 5}"})
    assert bad["status"] == "ERROR" and "bad" not in app.policies.instances
    assert _a1(rmr, {"operation": "CREATE", "policy_type_id": "20008", "policy_instance_id": "x",
                     "payload": "{}"})["status"] == "ERROR"
    assert _a1(rmr, b"{not json") is None                               # nobody to answer: counted only
    assert _a1(rmr, b'{"operation": "CREATE", "policy_type_id": Infinity, "policy_instance_id": "x"}') is None
    assert _a1(rmr, {"operation": "CREATE", "policy_type_id": 28001, "policy_instance_id": "ops:night",
                     "payload": {"publish": "state"}})["status"] == "OK"             # an id with `:`, quoted
    assert "ops:night" in app.policies.instances
    assert _a1(rmr, {"operation": "DELETE", "policy_type_id": 28001, "policy_instance_id": "ops:night",
                     "payload": ""})["status"] == "DELETED" and "ops:night" not in app.policies.instances
    assert _a1(rmr, {"operation": "DELETE", "policy_type_id": "28001", "policy_instance_id": "night",
                     "payload": ""})["status"] == "DELETED"
    assert app.policies.instances == {} and app.policies.effective.los_threshold == 0.5
    assert _a1(rmr, {"operation": "DELETE", "policy_type_id": "28001", "policy_instance_id": "never",
                     "payload": ""})["status"] == "DELETED"
    reg = bridge.metrics.registry
    assert [reg.get_sample_value("wmfm_bridge_policy_requests_total", {"result": r}) for r in
            ("ok", "refused", "other_type", "bad_request", "deleted")] == [3, 1, 1, 2, 3]


def test_the_callback_host_follows_the_charts_rmr_source_id_else_the_namespace():
    from wmfm.xapp.bridge.bridge import client_host
    cfg = load(None, [], env={})
    assert client_host(cfg, ENV) == "service-ricxapp-wmfm-xapp-http.ricxapp"
    assert client_host(cfg, {"POD_NAMESPACE": "ric-xapps"}, "wmfm") == "service-ric-xapps-wmfm-http.ric-xapps"
    assert client_host(load(None, ["bridge.client_host=x.y"], env={}), ENV) == "x.y"


def test_an_a1_request_while_the_xapp_is_down_is_answered_error():
    resp, result = a1.handle("http://127.0.0.1:9", json.dumps({"operation": "CREATE", "policy_type_id": 28001,
                                                               "policy_instance_id": "p", "payload": {}}).encode(),
                             "wmfm-xapp")
    assert resp["status"] == "ERROR" and result == "xapp_down"


def test_stopping_deletes_the_subscriptions_and_deregisters(run_xapp, ric):
    app = run_xapp("indications.encoding=e2ap")
    cfg = load(None, [f"bridge.forward={app.endpoints['indications']}", "bridge.http_port=0",
                      f"bridge.submgr_url={ric.url}/ric/v1", f"bridge.e2mgr_url={ric.url}/v1",
                      f"bridge.appmgr_url={ric.url}/ric/v1", 'bridge.e2_nodes=["gnb_001"]', "bridge.retry_s=0.2"],
               env={})
    ric.busy = 0
    rmrs = []
    bridge = Bridge(cfg, DESCRIPTOR, rmr=lambda port: rmrs.append(FakeRmr(port)) or rmrs[-1], env=ENV).start()
    assert bridge.subscriptions == {"gnb_001": "sub-1"} and bridge.registered
    th = threading.Thread(target=bridge.run, daemon=True)
    th.start()
    bridge.stop()                                                       # what SIGTERM does
    th.join(timeout=10)
    assert ("DELETE", "/ric/v1/subscriptions/sub-1", None) in ric.requests
    assert ric.calls("POST", "/ric/v1/deregister") == [{"appName": "ricxapp-wmfm-xapp-7d9f",
                                                        "appInstanceName": "wmfm-xapp"}]
    assert rmrs[0].closed and bridge.subscriptions == {}


def test_the_bridge_command_without_the_rmr_library_stops_with_one_line(tmp_path):
    """`wmfm bridge` as its container runs it, pointed at an RMR library that is not there."""
    proc = subprocess.run([sys.executable, "-m", "wmfm", "bridge", "--set", "bridge.http_port=0"],
                          capture_output=True, text=True,
                          timeout=60, env={**os.environ, "RMR_LIBRARY": str(tmp_path / "librmr_si.so")})
    assert proc.returncode == 2
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith("wmfm bridge: error: controls.bridge.rmr_port 4560: RMR library") and "RMR_LIBRARY" in line


RMR = os.environ.get("RMR_LIBRARY", "")


@pytest.mark.skipif(not (RMR and Path(RMR).is_file()), reason="the RMR C library (librmr_si.so, built by the "
                    "bridge image) is not here: set RMR_LIBRARY to run this against it")
def test_the_rmr_binding_against_the_real_library(tmp_path, monkeypatch):
    from wmfm.sim.spawn import free_port
    from wmfm.xapp.bridge.rmr import Rmr
    a, b = free_port(), free_port()
    rt = tmp_path / "route.rt"
    rt.write_text(f"newrt|start\nmse|{RIC_INDICATION}|-1|127.0.0.1:{a}\nmse|{A1_POLICY_RESP}|-1|127.0.0.1:{b}\n"
                  "newrt|end\n")
    monkeypatch.setenv("RMR_SEED_RT", str(rt))
    monkeypatch.setenv("RMR_RTG_SVC", "-1")
    bridge_side, e2term = Rmr(a, ready_timeout_s=10), Rmr(b, ready_timeout_s=10)
    try:
        pdu = encode_e2ap_indication("gnb_001", 1, time.time_ns(), [(1, [[[0.0] * 4] * 2] * 2)]) * 300   # > 64 KiB
        assert wait_for(lambda: e2term.send(RIC_INDICATION, pdu, sub_id=7))
        got = None
        for _ in range(50):
            got = got or bridge_side.receive(100)
        assert got is not None and (got.mtype, got.sub_id, got.payload) == (RIC_INDICATION, 7, pdu)
        assert bridge_side.reply(A1_POLICY_RESP, b'{"status": "OK"}' * 100)       # reuses the received buffer
        back = None
        for _ in range(50):
            back = back or e2term.receive(100)
        assert back is not None and back.mtype == A1_POLICY_RESP and back.payload == b'{"status": "OK"}' * 100
    finally:
        bridge_side.close()
        e2term.close()
