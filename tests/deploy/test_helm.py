"""The Helm chart (deploy/helm/wmfm-xapp), rendered by tests/deploy/helmlite.py (no helm here):
every object valid against the Kubernetes OpenAPI schemas (strict; the ServiceMonitor against the
fields of its CRD that matter), names and labels as the O-RAN SC xApp chart (xapp-std) makes them,
the same descriptor as deploy/descriptor/config-file.json, probes and ports from it, the E2 bridge
beside the xApp (its container, the RMR Service, the ipc:// socket they share), DBAAS_* and WMFM__
variables that the app's own config loader and dbaas resolver accept, and a Grafana dashboard that
only asks for metrics the app serves."""

import base64
import copy
import json
import re
import shutil
import sys
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest
from kubernetes_validate.utils import all_versions, latest_version
from packaging.version import Version
from prometheus_client.metrics import MetricWrapperBase
from wmfm.xapp import controls as config
from wmfm.xapp import dbaas
from wmfm.xapp.bridge.bridge import client_host
from wmfm.xapp.metrics import Metrics

sys.path.insert(0, str(Path(__file__).parent))
from helmlite import Chart, TemplateError, render_string  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy" / "helm" / "wmfm-xapp"
DESCRIPTOR = ROOT / "deploy" / "descriptor" / "config-file.json"
DESC = json.loads(DESCRIPTOR.read_text())
NS, NAME = "ricxapp", DESC["name"]                 # the default namespace of the renders, the xApp's name
FULL = f"{NS}-{NAME}"
PORTS = {p["name"]: p for p in DESC["messaging"]["ports"]}
XAPP, BRIDGE = PORTS["http"]["container"], PORTS["rmrdata"]["container"]     # the descriptor's two containers
SOCKET = "ipc:///var/run/wmfm/indications.sock"                             # between them, in the pod
DBAAS_HOST = "service-ricplt-dbaas-tcp.ricplt.svc.cluster.local"
# the oldest Kubernetes the chart claims (Chart.yaml kubeVersion: >=1.25; or the oldest schema the
# package still ships) and the newest one it ships
K8S_VERSIONS = (next(v for v in all_versions() if Version(v) >= Version("1.25")), latest_version())

CASES = {
    "defaults": {},
    "scaled": {"replicaCount": 3, "scaling": {"roundRobin": True, "cells": ["00101:1", "00101:2"]}},
    "connect": {"replicaCount": 2, "bridge": {"enabled": False},
                "connect": {"indications": "tcp://e2-gateway.ricplt:5560", "frames": "tcp://camera-gateway.ricplt:5561"}},
    "no-bridge": {"bridge": {"enabled": False}},
    "no-bridge-e2ap": {"bridge": {"enabled": False}, "indications": {"encoding": "e2ap"}},
    "bridge-image": {"bridge": {"image": {"repository": "127.0.0.1:5000/wmfm-e2-bridge", "tag": "0.1.0-rc1",
                                          "pullPolicy": "Always"}},
                     "image": {"repository": "127.0.0.1:5000/wmfm-xapp"}},
    "gpu": {"gpu": {"enabled": True}},
    "password": {"redis": {"password": "s3cret", "username": "wmfm"}},
    "existing-secret": {"redis": {"existingSecret": "dbaas-auth", "existingSecretKey": "redis-password"}},
    "claim": {"artifact": {"existingClaim": "wmfm-artifact"}},
    "sentinel": {"dbaas": {"masterName": "dbaasmaster", "sentinelPort": 26379}},
    "monitoring": {"serviceMonitor": {"enabled": True, "interval": "30s",
                                      "labels": {"release": "kube-prometheus-stack"}}},
    "no-extras": {"grafanaDashboard": {"enabled": False}, "dbaas": {"appconfig": ""}},
    "tls": {"redis": {"url": "rediss://service-ricplt-dbaas-tcp.ricplt:6380/0"},
            "env": {"WMFM__REDIS__TLS_CA_FILE": "/etc/wmfm/redis-tls/ca.crt"},
            "extraVolumes": [{"name": "redis-tls", "secret": {"secretName": "dbaas-tls"}}],
            "extraVolumeMounts": [{"name": "redis-tls", "mountPath": "/etc/wmfm/redis-tls", "readOnly": True}]},
    "claim-gpu": {"artifact": {"existingClaim": "wmfm-artifact"}, "gpu": {"enabled": True},
                  "nodeSelector": {"nvidia.com/gpu.present": "true"}},
    "env": {"env": {"WMFM__SYNC__MAX_SKEW_MS": 30, "WMFM__LOG_LEVEL": "DEBUG",
                    "WMFM__CAMERAS": {"unit1_cam1": {"cells": [], "width": 320, "height": 240}}},
            "imagePullSecrets": [{"name": "registry"}], "podAnnotations": {"team": "ran"},
            "tolerations": [{"key": "ric", "operator": "Exists", "effect": "NoSchedule"}]},
}


@pytest.fixture(scope="module")
def chart():
    return Chart(CHART)


def objects(chart, case=None, values=None, **release):
    objs = chart.render(copy.deepcopy(CASES[case] if case else values), **release)
    return {(o["kind"], o["metadata"]["name"]): o for o in objs}


def one(objs, kind, suffix=""):
    found = [o for (k, name), o in objs.items() if k == kind and name.endswith(suffix)]
    assert len(found) == 1, (kind, suffix, list(objs))
    return found[0]


def services(objs) -> dict:
    """{descriptor port name: its Service}."""
    return {o["spec"]["ports"][0]["name"]: o for (k, _), o in objs.items() if k == "Service"}


def bridged(case) -> bool:
    return CASES[case].get("bridge", {}).get("enabled", True)


def containers(objs) -> dict:
    return {c["name"]: c for c in one(objs, "Deployment")["spec"]["template"]["spec"]["containers"]}


def container(objs):
    """The xApp's container."""
    return containers(objs)[XAPP]


def bridge(objs):
    return containers(objs)[BRIDGE]


def app_env(objs, c=None) -> dict:
    """The environment the app (or, with `c`, another container) would see where the platform's
    dbaas-appconfig does not exist: the appenv ConfigMap (envFrom), the container's env (a placeholder
    for a secretKeyRef or a field of the pod)."""
    c = c or container(objs)
    ref = c["envFrom"][0]["configMapRef"]
    assert ref == {"name": one(objs, "ConfigMap", "-appenv")["metadata"]["name"]}        # not optional
    env = dict(one(objs, "ConfigMap", "-appenv")["data"])
    pod = one(objs, "Deployment")["metadata"]
    fields = {"metadata.namespace": pod["namespace"], "status.podIP": "10.0.0.7"}
    for e in c["env"]:
        field = e.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath")
        env[e["name"]] = e["value"] if "value" in e else fields[field] if field else "placeholder-from-secret"
    return env


# The fields of the ServiceMonitor CRD (prometheus-operator, monitoring.coreos.com/v1) that the chart
# sets, restated. The API server prunes a field its CRD does not declare without a word, so the
# restatement refuses any other field: a misspelt one fails here instead of vanishing there.
DURATION = r"^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$"
_STRINGS = {"type": "object", "additionalProperties": {"type": "string"}}
SERVICE_MONITOR = {
    "type": "object", "required": ["apiVersion", "kind", "metadata", "spec"], "additionalProperties": False,
    "properties": {
        "apiVersion": {"const": "monitoring.coreos.com/v1"}, "kind": {"const": "ServiceMonitor"},
        "metadata": {"type": "object"},
        "spec": {"type": "object", "required": ["selector"], "additionalProperties": False, "properties": {
            "selector": {"type": "object", "additionalProperties": False, "properties": {"matchLabels": _STRINGS}},
            "namespaceSelector": {"type": "object", "additionalProperties": False, "properties": {
                "any": {"type": "boolean"}, "matchNames": {"type": "array", "items": {"type": "string"}}}},
            "endpoints": {"type": "array", "minItems": 1, "items": {
                "type": "object", "additionalProperties": False, "properties": {
                    "port": {"type": "string"}, "path": {"type": "string"},
                    "scheme": {"enum": ["http", "https"]},
                    "interval": {"type": "string", "pattern": DURATION}}}}}}}}


def check_service_monitor(sm, objs, version):
    jsonschema.validate(sm, SERVICE_MONITOR)
    # its metadata is an ObjectMeta: checked as a ConfigMap's (names, label syntax)
    kubernetes_validate.validate({"apiVersion": "v1", "kind": "ConfigMap", "metadata": sm["metadata"]},
                                 version, strict=True)
    picked = [s for s in services(objs).values()
              if s["metadata"]["namespace"] in sm["spec"]["namespaceSelector"]["matchNames"]
              and sm["spec"]["selector"]["matchLabels"].items() <= s["metadata"]["labels"].items()]
    assert [s["metadata"]["name"] for s in picked] == [f"service-{FULL}-http"]           # that one only
    assert {e["port"] for e in sm["spec"]["endpoints"]} <= {p["name"] for p in picked[0]["spec"]["ports"]}
    assert sm["metadata"]["namespace"] == NS


def expected_kinds(case):
    values = CASES[case]
    # http, frames, and indications without the bridge; bridge and rmr with it
    return sorted(["ConfigMap", "ConfigMap", "Deployment"] + ["Service"] * (4 if bridged(case) else 3)
                  + ["ConfigMap"] * values.get("grafanaDashboard", {}).get("enabled", True)
                  + ["Secret"] * bool(values.get("redis", {}).get("password"))
                  + ["ServiceMonitor"] * values.get("serviceMonitor", {}).get("enabled", False))


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_every_object_is_valid_kubernetes(chart, case, version):
    objs = objects(chart, case)
    assert sorted(k for k, _ in objs) == expected_kinds(case)
    for obj in objs.values():
        if obj["kind"] == "ServiceMonitor":                  # a CRD: kubernetes-validate does not know it
            check_service_monitor(obj, objs, version)
        else:
            kubernetes_validate.validate(obj, version, strict=True)
    chart.render_text(CASES[case])["NOTES.txt"]                          # NOTES.txt renders too


def test_strict_validation_would_catch_a_misplaced_field(chart):
    objs = objects(chart, "monitoring")
    dep = one(objs, "Deployment")
    dep["spec"]["template"]["spec"]["containers"][0]["readOnlyRootFilesystem"] = True   # not a container field
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(dep, K8S_VERSIONS[0], strict=True)
    sm = one(objs, "ServiceMonitor")
    sm["spec"]["endpoints"][0]["intervall"] = "15s"                              # pruned by the API server
    with pytest.raises(jsonschema.ValidationError):
        check_service_monitor(sm, objs, K8S_VERSIONS[0])


def test_names_and_labels_are_the_xapp_std_ones(chart):
    """What appmgr and the platform compute from the xApp's name and namespace, not the release's."""
    assert chart.meta["name"] == NAME
    objs = objects(chart, "defaults", name="lab-a")
    assert sorted(name for _, name in objs) == sorted([
        FULL, f"configmap-{FULL}-appconfig", f"configmap-{FULL}-appenv", f"configmap-{FULL}-grafana",
        *(f"service-{FULL}-{p}" for p in ("http", "frames", "bridge", "rmr"))])
    dep = one(objs, "Deployment")
    std = {"app": FULL, "chart": f"wmfm-xapp-{chart.meta['version']}", "release": "lab-a", "heritage": "Helm"}
    for obj in objs.values():
        assert std.items() <= obj["metadata"]["labels"].items(), obj["metadata"]["name"]
        assert obj["metadata"]["labels"]["app.kubernetes.io/name"] == NAME
    assert dep["spec"]["selector"]["matchLabels"] == {"app": FULL, "release": "lab-a"}
    pod = dep["spec"]["template"]
    want = {"app": FULL, "kubernetes_name": f"{NS}_{NAME}", "release": "lab-a"}
    assert want.items() <= pod["metadata"]["labels"].items()
    assert pod["spec"]["hostname"] == NAME
    for svc in services(objs).values():
        assert svc["spec"]["selector"] == dep["spec"]["selector"]["matchLabels"]
    # every Service NOTES.txt names is one the chart makes
    notes = chart.render_text({}, name="lab-a")["NOTES.txt"]
    assert set(re.findall(rf"service-{FULL}-[a-z0-9]+", notes)) == {name for k, name in objs if k == "Service"}


def test_the_name_follows_the_namespace_and_name_override(chart):
    objs = objects(chart, values={"nameOverride": "wmfm-cells-a"}, namespace="ran")
    dep = one(objs, "Deployment")
    assert dep["metadata"]["name"] == dep["metadata"]["labels"]["app"] == "ran-wmfm-cells-a"
    assert dep["spec"]["template"]["metadata"]["labels"]["kubernetes_name"] == "ran_wmfm-cells-a"
    assert dep["spec"]["template"]["spec"]["hostname"] == "wmfm-cells-a"
    assert one(objs, "ConfigMap", "-appconfig")["metadata"]["name"] == "configmap-ran-wmfm-cells-a-appconfig"
    assert sorted(s["metadata"]["name"] for s in services(objs).values()) == [
        "service-ran-wmfm-cells-a-bridge", "service-ran-wmfm-cells-a-frames", "service-ran-wmfm-cells-a-http",
        "service-ran-wmfm-cells-a-rmr"]
    assert one(objs, "ConfigMap", "-appenv")["data"]["RMR_SRC_ID"] == "service-ran-wmfm-cells-a-rmr.ran"
    assert all(o["metadata"]["namespace"] == "ran" for o in objs.values())


def test_the_chart_label_makes_build_metadata_label_safe():
    chart = Chart(CHART)
    chart.meta = dict(chart.meta, version="0.1.0+build.5")
    objs = objects(chart, "defaults")
    assert {o["metadata"]["labels"]["chart"] for o in objs.values()} == {"wmfm-xapp-0.1.0_build.5"}
    kubernetes_validate.validate(one(objs, "Deployment"), K8S_VERSIONS[0], strict=True)


def test_the_chart_ships_the_descriptor_and_its_schema_themselves(chart):
    objs = objects(chart, "defaults")
    cm = one(objs, "ConfigMap", "-appconfig")
    assert cm["metadata"]["name"] == f"configmap-{NS}-{NAME}-appconfig"                # what appmgr looks up
    assert sorted(cm["data"]) == ["config-file.json", "schema.json"]
    for key in cm["data"]:
        link = CHART / "files" / key
        assert link.is_symlink() and not Path(link.readlink()).is_absolute()
        assert link.resolve() == (DESCRIPTOR.parent / key).resolve()
        assert cm["data"][key] == (DESCRIPTOR.parent / key).read_text()        # byte for byte
    pod = one(objs, "Deployment")["spec"]["template"]["spec"]
    mount = next(m for m in container(objs)["volumeMounts"] if m["mountPath"] == "/opt/ric/config")
    volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])
    assert volume["configMap"]["name"] == cm["metadata"]["name"] and mount["readOnly"]
    assert one(objs, "ConfigMap", "-appenv")["data"]["XAPP_DESCRIPTOR_PATH"] == mount["mountPath"]


@pytest.mark.parametrize("case", ["defaults", "gpu"])
def test_probes_are_the_descriptor_probes(chart, case):
    c = container(objects(chart, case))
    for probe in ("livenessProbe", "readinessProbe"):
        want, got = copy.deepcopy(DESC[probe]), copy.deepcopy(c[probe])
        assert got["httpGet"].pop("path") == "/" + want["httpGet"].pop("path").lstrip("/")
        assert got == want
    startup = c["startupProbe"]
    assert startup["httpGet"] == {"path": "/" + DESC["livenessProbe"]["httpGet"]["path"].lstrip("/"),
                                  "port": DESC["livenessProbe"]["httpGet"]["port"]}
    # the budget covers the image's HEALTHCHECK start period (60 s CPU, 300 s GPU: engine build)
    assert startup["periodSeconds"] * startup["failureThreshold"] == (300 if case == "gpu" else 60)


def ports_of(container_name: str, *skip: str) -> set:
    return {(p["name"], p["port"]) for p in DESC["messaging"]["ports"]
            if p["container"] == container_name and p["name"] not in skip}


@pytest.mark.parametrize("case", ["defaults", "no-bridge"])
def test_ports_are_the_descriptor_ports(chart, case):
    """Each container has its own descriptor ports (the xApp's indications port only without the bridge,
    which hands them over ipc://); each port served has its Service, the RMR ones share one; every
    Service selects the pod and targets a port a container of it declares."""
    objs = objects(chart, case)
    cs = containers(objs)
    if bridged(case):
        assert list(cs) == [XAPP, BRIDGE] and {c["name"] for c in DESC["containers"]} == {XAPP, BRIDGE}
        want = {XAPP: ports_of(XAPP, "indications"), BRIDGE: ports_of(BRIDGE)}
    else:
        assert list(cs) == [XAPP]
        want = {XAPP: ports_of(XAPP)}
    assert {n: {(p["name"], p["containerPort"]) for p in c["ports"]} for n, c in cs.items()} == want
    served = set().union(*want.values())
    svcs = services(objs)
    assert {s["metadata"]["name"]: {(p["name"], p["port"]) for p in s["spec"]["ports"]} for s in svcs.values()} == {
        **{f"service-{FULL}-{n}": {(n, port)} for n, port in served if "rmr" not in n},
        **({f"service-{FULL}-rmr": ports_of(BRIDGE, "bridge")} if bridged(case) else {})}
    pod = one(objs, "Deployment")["spec"]["template"]
    named = {p["name"] for c in cs.values() for p in c["ports"]}
    for svc in svcs.values():
        assert svc["spec"]["selector"].items() <= pod["metadata"]["labels"].items()
        assert all(p["targetPort"] == p["name"] and p["name"] in named for p in svc["spec"]["ports"])


def test_the_rmr_service_is_the_one_the_ric_routes_to(tmp_path, chart):
    """service-<ns>-<name>-rmr, ClusterIP, every port whose name contains "rmr" with rmrdata first (as
    xapp-std, whatever the descriptor's order), targeting the bridge's ports; RMR_SRC_ID names it."""
    objs = objects(chart, "defaults")
    rmr = one(objs, "Service", "-rmr")
    assert rmr["metadata"]["name"] == f"service-{FULL}-rmr" and rmr["spec"]["type"] == "ClusterIP"
    assert "clusterIP" not in rmr["spec"] and "annotations" not in rmr["metadata"]
    assert rmr["spec"]["ports"] == [{"name": n, "port": PORTS[n]["port"], "targetPort": n, "protocol": "TCP"}
                                    for n in ("rmrdata", "rmrroute")]
    assert rmr["metadata"]["labels"]["app.kubernetes.io/component"] == "rmr"
    env = one(objs, "ConfigMap", "-appenv")["data"]
    assert env["RMR_SRC_ID"] == f"{rmr['metadata']['name']}.{NS}"
    assert env["RMR_RTG_SVC"] == str(PORTS["rmrroute"]["port"])
    shutil.copytree(CHART, tmp_path / "chart")                         # the links copied as files
    desc = copy.deepcopy(DESC)
    desc["messaging"]["ports"].sort(key=lambda p: p["name"] != "rmrroute")      # rmrroute listed first
    (tmp_path / "chart" / "files" / "config-file.json").write_text(json.dumps(desc))
    rmr = one(objects(Chart(tmp_path / "chart"), "defaults"), "Service", "-rmr")
    assert [p["name"] for p in rmr["spec"]["ports"]] == ["rmrdata", "rmrroute"]


def test_the_bridge_runs_beside_the_xapp(chart):
    objs = objects(chart, "defaults")
    pod = one(objs, "Deployment")["spec"]["template"]
    b, x = bridge(objs), container(objs)
    (desc_bridge,) = [c for c in DESC["containers"] if c["name"] == BRIDGE]
    assert b["image"] == f"wmfm-e2-bridge:{chart.meta['appVersion']}" == \
        f"{desc_bridge['image']['name']}:{desc_bridge['image']['tag']}"
    assert b["args"] == desc_bridge["args"] and "command" not in b        # the image's entrypoint: wmfm
    assert pod["metadata"]["annotations"]["kubectl.kubernetes.io/default-container"] == XAPP
    # probes: the descriptor's timings, on the bridge's own port (named, one of its ports)
    for probe, path in (("livenessProbe", "/ric/v1/health/alive"), ("readinessProbe", "/ric/v1/health/ready")):
        want = {k: v for k, v in DESC[probe].items() if k != "httpGet"}
        assert b[probe] == {"httpGet": {"path": path, "port": "bridge"}, **want}
    assert "bridge" in {p["name"] for p in b["ports"]}
    # its environment: the appenv ConfigMap (RMR_*, WMFM__*) and the pod's address and namespace
    assert b["envFrom"] == [{"configMapRef": {"name": f"configmap-{FULL}-appenv"}}]
    assert b["env"] == [{"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                        {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}}]
    assert b["securityContext"] == x["securityContext"]
    # the same descriptor as the xApp (the ConfigMap, where its --config points), and the shared socket folder
    config = desc_bridge["args"][desc_bridge["args"].index("--config") + 1]
    mounts = {m["mountPath"]: m for m in b["volumeMounts"]}
    assert mounts["/opt/ric/config"] == {"name": "appconfig", "mountPath": "/opt/ric/config", "readOnly": True}
    assert Path(config).parent == Path("/opt/ric/config") and Path(config).name in \
        one(objs, "ConfigMap", "-appconfig")["data"]
    run = [m for m in x["volumeMounts"] if m["name"] == "run"]
    assert run == [m for m in b["volumeMounts"] if m["name"] == "run"] == [
        {"name": "run", "mountPath": "/var/run/wmfm"}]
    assert {"name": "run", "emptyDir": {}} in pod["spec"]["volumes"]
    assert SOCKET.startswith("ipc://" + run[0]["mountPath"] + "/")
    assert (b["resources"]["requests"], b["resources"]["limits"]) == ({"cpu": "100m", "memory": "128Mi"},
                                                                      {"memory": "256Mi"})
    objs = objects(chart, "bridge-image")
    assert (bridge(objs)["image"], bridge(objs)["imagePullPolicy"]) == ("127.0.0.1:5000/wmfm-e2-bridge:0.1.0-rc1",
                                                                        "Always")
    assert container(objs)["image"] == f"127.0.0.1:5000/wmfm-xapp:{chart.meta['appVersion']}"


@pytest.mark.parametrize("case", ["defaults", "gpu", "scaled", "no-bridge", "no-bridge-e2ap", "connect"])
def test_the_xapp_and_the_bridge_meet_on_the_socket(chart, case):
    """What each process reads through the app's own loader: with the bridge, the xApp binds the ipc://
    socket the bridge forwards to, both E2AP, and the bridge calls the RIC back at the http Service;
    without it, the xApp takes ZeroMQ senders' protobuf (or indications.encoding) on its TCP port."""
    objs = objects(chart, case)
    cfg = config.load(DESCRIPTOR, env=app_env(objs))
    if not bridged(case):
        assert BRIDGE not in containers(objs)
        assert not any(v["name"] == "run" for v in one(objs, "Deployment")["spec"]["template"]["spec"]["volumes"])
        appenv = one(objs, "ConfigMap", "-appenv")["data"]
        assert not {"RMR_SRC_ID", "RMR_RTG_SVC", "WMFM__BRIDGE__FORWARD"} & appenv.keys()
        assert cfg.indications.encoding == CASES[case].get("indications", {}).get("encoding", "protobuf")
        assert cfg.indications.endpoint.startswith("tcp://")
        return
    env = app_env(objs, bridge(objs))
    side = config.load(DESCRIPTOR, env=env)
    assert cfg.indications.endpoint == side.bridge.forward == SOCKET
    assert (cfg.indications.mode, cfg.indications.pattern) == ("bind", "pull")
    assert cfg.indications.encoding == side.indications.encoding == "e2ap"
    assert side.bridge.xapp_url == f"http://127.0.0.1:{cfg.http.port}"                 # the xApp, in the same pod
    assert side.bridge.rmr_port == PORTS["rmrdata"]["port"] and side.bridge.http_port == PORTS["bridge"]["port"]
    host = client_host(side, env, NAME)                                           # where the RIC calls back
    assert host == f"{one(objs, 'Service', '-http')['metadata']['name']}.{NS}"


def test_the_bridge_refuses_another_indications_sender(chart):
    with pytest.raises(TemplateError, match="connect.indications"):
        chart.render({"connect": {"indications": "tcp://e2-gateway.ricplt:5560"}})
    with pytest.raises(TemplateError, match="indications.encoding protobuf"):
        chart.render({"indications": {"encoding": "protobuf"}})
    chart.render({"indications": {"encoding": "e2ap"}})                          # what it forwards: fine
    with pytest.raises(TemplateError, match="duplicate key"):
        chart.render({"env": {"WMFM__INDICATIONS__ENDPOINT": "tcp://0.0.0.0:5560"}})


@pytest.mark.parametrize("case", ["defaults", "no-bridge"])
def test_prometheus_finds_the_http_service_and_the_pod(chart, case):
    objs = objects(chart, case)
    port = str(PORTS["http"]["port"])
    want = {"prometheus.io/scrape": "true", "prometheus.io/port": port, "prometheus.io/path": "/ric/v1/metrics"}
    assert want["prometheus.io/path"] == DESC["metrics"]["url"]
    svcs = services(objs)
    assert svcs["http"]["metadata"]["annotations"] == want
    if bridged(case):                                   # the bridge's own metrics, on its port
        assert svcs["bridge"]["metadata"]["annotations"] == {**want, "prometheus.io/port": str(PORTS["bridge"]["port"])}
    assert all("annotations" not in s["metadata"] for name, s in svcs.items() if name not in ("http", "bridge"))
    assert want.items() <= one(objs, "Deployment")["spec"]["template"]["metadata"]["annotations"].items()
    assert not any(k == "ServiceMonitor" for k, _ in objs)                 # off by default


def test_the_service_monitor_scrapes_the_http_service(chart):
    objs = objects(chart, "monitoring")
    sm = one(objs, "ServiceMonitor")
    check_service_monitor(sm, objs, K8S_VERSIONS[-1])
    assert sm["metadata"]["name"] == FULL
    assert sm["spec"]["endpoints"] == [{"port": "http", "path": DESC["metrics"]["url"], "scheme": "http",
                                        "interval": "30s"}]
    assert sm["spec"]["namespaceSelector"] == {"matchNames": [NS]}
    labels = sm["metadata"]["labels"]                  # serviceMonitor.labels over the chart's own
    assert labels["release"] == "kube-prometheus-stack" and labels["app"] == FULL
    sm = one(objects(chart, values={"serviceMonitor": {"enabled": True}}), "ServiceMonitor")
    assert sm["spec"]["endpoints"][0]["interval"] == "15s" and sm["metadata"]["labels"]["release"] == "wmfm-xapp"


@pytest.mark.parametrize("case", CASES)
def test_the_env_overrides_load_through_the_apps_own_loader(chart, case):
    objs = objects(chart, case)
    env = app_env(objs)
    cfg = config.load(DESCRIPTOR, env=env)                    # raises on an unknown control or a wrong type
    target = dbaas.resolve(cfg.redis.url, env)
    redis = {**chart.values["redis"], **CASES[case].get("redis", {})}
    if case == "tls":                                          # the CA file is where the extra volume puts it
        assert target == dbaas.Target(redis["url"], "controls") and cfg.redis.url == redis["url"]
        assert cfg.redis.tls_ca_file == "/etc/wmfm/redis-tls/ca.crt"
        c, pod = container(objs), one(objs, "Deployment")["spec"]["template"]["spec"]
        mount = next(m for m in c["volumeMounts"] if m["name"] == "redis-tls")
        assert cfg.redis.tls_ca_file.startswith(mount["mountPath"] + "/")
        assert {"name": "redis-tls", "secret": {"secretName": "dbaas-tls"}} in pod["volumes"]
    elif case == "sentinel":
        assert target == dbaas.Target(f"redis+sentinel://{DBAAS_HOST}:26379/dbaasmaster/0", "dbaas")
    else:
        assert cfg.redis.url == "auto" and target == dbaas.Target(f"redis://{DBAAS_HOST}:6379/0", "dbaas")
    assert cfg.redis.namespace == redis["namespace"] and cfg.redis.username == redis["username"]
    if redis["password"] or redis["existingSecret"]:
        assert cfg.redis.password_env == "REDIS_PASSWORD" and "REDIS_PASSWORD" in env
    else:
        assert cfg.redis.password_env == "" and "REDIS_PASSWORD" not in env
    assert cfg.backend.name == ("tensorrt" if "gpu" in case else "auto")
    scaled = case == "scaled"
    assert cfg.scaling.round_robin is (scaled or case == "connect")        # replicas > 1
    assert cfg.scaling.cells == (("00101:1", "00101:2") if scaled else ())
    if case == "connect":                                      # the pods connect out to the senders
        assert (cfg.indications.mode, cfg.indications.endpoint) == ("connect", "tcp://e2-gateway.ricplt:5560")
        assert (cfg.frames.mode, cfg.frames.pattern, cfg.frames.endpoint) == (
            "connect", "sub", "tcp://camera-gateway.ricplt:5561")
    else:
        assert cfg.indications.mode == cfg.frames.mode == "bind"
    if case == "env":
        assert cfg.sync.max_skew_ms == 30.0 and cfg.log_level == "DEBUG"
        assert cfg.cameras["unit1_cam1"].width == 320


def test_the_appenv_carries_the_xapp_std_dbaas_and_rmr_variables(chart):
    assert DESC["controls"]["redis"]["url"] == chart.values["redis"]["url"] == "auto"
    env = one(objects(chart, "defaults"), "ConfigMap", "-appenv")["data"]
    std = {"DBAAS_SERVICE_HOST": DBAAS_HOST, "DBAAS_SERVICE_PORT": "6379",
           "DBAAS_PORT_6379_TCP_ADDR": DBAAS_HOST, "DBAAS_PORT_6379_TCP_PORT": "6379",
           "XAPP_DESCRIPTOR_PATH": "/opt/ric/config", "RMR_RTG_SVC": "4561",
           "RMR_SRC_ID": f"service-{FULL}-rmr.{NS}"}
    assert std.items() <= env.items()
    assert not {"DBAAS_MASTER_NAME", "DBAAS_SERVICE_SENTINEL_PORT", "WMFM__REDIS__URL"} & env.keys()
    env = one(objects(chart, "sentinel"), "ConfigMap", "-appenv")["data"]
    assert (env["DBAAS_MASTER_NAME"], env["DBAAS_SERVICE_SENTINEL_PORT"]) == ("dbaasmaster", "26379")
    env = one(objects(chart, values={"dbaas": {"host": "dbaas.lab", "port": 6380}}), "ConfigMap", "-appenv")["data"]
    assert (env["DBAAS_SERVICE_HOST"], env["DBAAS_SERVICE_PORT"]) == ("dbaas.lab", "6380")
    env = one(objects(chart, values={"redis": {"url": "redis://other:6379/0"}}), "ConfigMap", "-appenv")["data"]
    assert env["WMFM__REDIS__URL"] == "redis://other:6379/0"
    for half in ({"masterName": "dbaasmaster"}, {"sentinelPort": 26379}):      # a Sentinel needs both
        with pytest.raises(TemplateError, match="needs"):
            chart.render({"dbaas": half})


def test_the_platforms_dbaas_appconfig_is_an_optional_later_env_source(chart):
    refs = container(objects(chart, "defaults"))["envFrom"]
    assert refs == [{"configMapRef": {"name": f"configmap-{FULL}-appenv"}},
                    {"configMapRef": {"name": "dbaas-appconfig", "optional": True}}]      # later wins
    assert container(objects(chart, "no-extras"))["envFrom"] == refs[:1]


@pytest.mark.parametrize("values, port", [({}, "bridge"), ({"bridge": {"enabled": False}}, "indications")],
                         ids=["bridge", "no-bridge"])
def test_names_and_labels_fit_kubernetes_limits_with_a_long_namespace(chart, values, port):
    # the longest namespace with which service-<ns>-wmfm-xapp-<the longest port name served> is still a DNS label
    longest = "ric-xapps-of-the-downtown-cells-xxxxxxxxxx"[:63 - len(f"service--{NAME}-{port}")]
    assert len(f"service-{longest}-{NAME}-{port}") == 63
    objs = chart.render(values, name="r" * 53, namespace=longest)     # 53: the longest release name helm accepts
    assert max(len(o["metadata"]["name"]) for o in objs if o["kind"] == "Service") == 63
    label = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
    for obj in objs:
        name = obj["metadata"]["name"]
        assert len(name) <= (63 if obj["kind"] == "Service" else 253), name          # a Service name is a DNS label
        assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", name), name
        labels = {**obj["metadata"]["labels"], **obj.get("spec", {}).get("template", {}).get("metadata", {}).get(
            "labels", {})}
        for value in labels.values():
            assert len(value) <= 63 and label.match(value), value
    # one more character: the platform would look for a name Kubernetes refuses, so the chart refuses it
    with pytest.raises(TemplateError, match="longer than 63"):
        chart.render(values, namespace=longest + "y")


@pytest.mark.parametrize("with_bridge", [True, False], ids=["bridge", "no-bridge"])
def test_round_robin_and_headless_follow_the_replica_count(chart, with_bridge):
    for replicas, rr, headless, want_rr, want_headless in [(1, None, None, "false", False),
                                                           (3, None, None, "true", True),
                                                           (3, False, False, "false", False),
                                                           (1, True, True, "true", True)]:
        objs = objects(chart, values={"replicaCount": replicas, "scaling": {"roundRobin": rr},
                                      "service": {"zmq": {"headless": headless}}, "bridge": {"enabled": with_bridge}})
        assert one(objs, "Deployment")["spec"]["replicas"] == replicas
        assert one(objs, "ConfigMap", "-appenv")["data"]["WMFM__SCALING__ROUND_ROBIN"] == want_rr
        svcs = services(objs)                           # only the ZeroMQ ones are ever headless
        zmq = {"frames": want_headless, **({"bridge": False, "rmrdata": False} if with_bridge
                                           else {"indications": want_headless})}
        assert {n: s["spec"].get("clusterIP") == "None" for n, s in svcs.items()} == {"http": False, **zmq}
    # pods that connect to a sender may be scaled later (kubectl scale, an autoscaler): on from the start
    objs = objects(chart, values={"connect": {"indications": "tcp://e2-gateway.ricplt:5560"},
                                  "bridge": {"enabled": False}})
    assert one(objs, "ConfigMap", "-appenv")["data"]["WMFM__SCALING__ROUND_ROBIN"] == "true"


def test_gpu_asks_for_a_gpu_and_tensorrt(chart):
    objs = objects(chart, "gpu")
    c, pod = container(objs), one(objs, "Deployment")["spec"]["template"]["spec"]
    assert c["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert "nvidia.com/gpu" not in container(objects(chart, "defaults"))["resources"].get("limits", {})
    assert one(objs, "ConfigMap", "-appenv")["data"]["WMFM__BACKEND__NAME"] == "tensorrt"
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod["tolerations"]
    # TensorRT writes ARTIFACT/engines at the first start: an emptyDir over the baked-in artifact...
    engines = next(m for m in c["volumeMounts"] if m["name"] == "engines")
    assert engines["mountPath"] == DESC["controls"]["artifact"] + "/engines"
    assert {"name": "engines", "emptyDir": {}} in pod["volumes"]
    # ...or the claim mounted writable
    claim = objects(chart, "claim-gpu")
    assert next(m for m in container(claim)["volumeMounts"] if m["name"] == "artifact")["readOnly"] is False
    assert one(claim, "Deployment")["spec"]["template"]["spec"]["nodeSelector"] == {"nvidia.com/gpu.present": "true"}


def test_artifact_claim_is_mounted_read_only_at_the_descriptor_path(chart):
    objs = objects(chart, "claim")
    pod = one(objs, "Deployment")["spec"]["template"]["spec"]
    mount = next(m for m in container(objs)["volumeMounts"] if m["name"] == "artifact")
    assert mount == {"name": "artifact", "mountPath": DESC["controls"]["artifact"], "readOnly": True}
    assert {"name": "artifact", "persistentVolumeClaim": {"claimName": "wmfm-artifact", "readOnly": True}} \
        in pod["volumes"]
    assert not any(v["name"] in ("artifact", "engines") for v in one(objects(chart, "defaults"), "Deployment")
                   ["spec"]["template"]["spec"]["volumes"])                 # baked into the image


def test_redis_password_from_a_chart_secret_or_an_existing_one(chart):
    objs = objects(chart, "password")
    secret = one(objs, "Secret")
    assert secret["metadata"]["name"] == f"secret-{FULL}-redis" and secret["type"] == "Opaque"
    assert base64.b64decode(secret["data"]["password"]).decode() == "s3cret"
    (pw,) = [e for e in container(objs)["env"] if e["name"] == "REDIS_PASSWORD"]
    assert pw["valueFrom"]["secretKeyRef"] == {"name": f"secret-{FULL}-redis", "key": "password"}
    assert "s3cret" not in json.dumps(one(objs, "ConfigMap", "-appenv"))
    objs = objects(chart, "existing-secret")
    (pw,) = [e for e in container(objs)["env"] if e["name"] == "REDIS_PASSWORD"]
    assert pw["valueFrom"]["secretKeyRef"] == {"name": "dbaas-auth", "key": "redis-password"}
    with pytest.raises(TemplateError, match="not both"):
        chart.render({"redis": {"password": "a", "existingSecret": "b"}})


def test_pod_hardening_and_drain(chart):
    objs = objects(chart, "defaults")
    pod, c = one(objs, "Deployment")["spec"]["template"]["spec"], container(objs)
    assert pod["securityContext"]["runAsNonRoot"] and pod["securityContext"]["runAsUser"] == 10001
    assert c["securityContext"] == {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                                    "capabilities": {"drop": ["ALL"]}}
    tmp = next(m for m in c["volumeMounts"] if m["mountPath"] == "/tmp")
    assert {"name": tmp["name"], "emptyDir": {}} in pod["volumes"]
    assert pod["terminationGracePeriodSeconds"] > DESC["controls"]["drain_s"]
    res = c["resources"]
    assert res == {"requests": {"cpu": 2, "memory": "1Gi"}, "limits": {"memory": "2Gi"}}


def test_a_config_change_rolls_the_pods(chart):
    def ann(values):
        return one(objects(chart, values=values), "Deployment")["spec"]["template"]["metadata"]["annotations"]
    base, moved = ann({}), ann({"redis": {"url": "redis://other:6379/0"}})
    assert base["checksum/appenv"] != moved["checksum/appenv"]
    assert base["checksum/appconfig"] == moved["checksum/appconfig"]
    assert ann({"redis": {"password": "a"}})["checksum/secret"] != ann({"redis": {"password": "b"}})["checksum/secret"]


def test_a_repeated_env_key_is_refused(chart):
    with pytest.raises(TemplateError, match="duplicate key"):
        chart.render({"env": {"WMFM__REDIS__NAMESPACE": "other"}})
    with pytest.raises(TemplateError, match="duplicate key"):
        chart.render({"env": {"DBAAS_SERVICE_HOST": "dbaas.lab"}})          # that is dbaas.host


def served_metrics() -> dict[str, set[str]]:
    """Every series name /ric/v1/metrics can serve -> its label names, as prometheus_client exposes
    them: a counter as <name>_total, a histogram as <name>_bucket (plus `le`), _sum and _count. A
    labelled metric has no sample before its first use, so its label names are read from the metric
    object itself."""
    metrics = Metrics()
    declared = {m._name: set(m._labelnames) for m in vars(metrics).values() if isinstance(m, MetricWrapperBase)}
    served = {}
    for family in metrics.registry.collect():
        labels = declared.get(family.name, {k for s in family.samples for k in s.labels})
        for suffix in {"counter": ["_total"], "gauge": [""], "histogram": ["_bucket", "_sum", "_count"]}[family.type]:
            served[family.name + suffix] = labels | ({"le"} if suffix == "_bucket" else set())
    return served


# What a PromQL expression may hold besides metric names: the functions and aggregations the
# dashboard uses (anything else is taken for a metric name, and must be one the app serves).
PROMQL_WORDS = {"sum", "max", "rate", "histogram_quantile", "by"}
TARGET_LABELS = {"job", "instance"}                 # added by Prometheus to every scraped series


def promql_problems(expr: str, served: dict[str, set[str]]) -> list[str]:
    """What in `expr` the app does not serve: metric names, label names in selectors and in the
    `by (...)` of an aggregation (each applied to the metrics inside that aggregation)."""
    problems = []
    variable = re.fullmatch(r"label_values\((.+),\s*(\w+)\)", expr)              # Grafana: a label's values
    if variable:
        expr, label = variable.groups()
        metric = re.match(r"\w+", expr).group()
        if label not in served.get(metric, set()) | TARGET_LABELS:
            problems.append(f"{metric} has no label {label}")
    expr = re.sub(r"\[[^\]]*\]", "", expr)                                 # range windows
    assert not re.search(r"\)\s*(by|without)\b", expr), f"write `sum by (...) (...)`: {expr}"
    for m in re.finditer(r"\b(\w+)\s+by\s*\(([^)]*)\)\s*\(", expr):
        depth, i = 1, m.end()                                                   # the aggregated expression
        while depth:
            depth += {"(": 1, ")": -1}.get(expr[i], 0)
            i += 1
        by = {label.strip() for label in m.group(2).split(",")}
        for metric in re.findall(r"(\w+)\{", expr[m.end():i]):
            problems += [f"{metric} has no label {label}" for label in by - served.get(metric, set())]
    for metric, matchers in re.findall(r"(\w+)\{([^}]*)\}", expr):
        if metric not in served:
            continue
        for label in set(re.findall(r"(\w+)\s*(?:=~|!~|!=|=)", matchers)) - served[metric] - TARGET_LABELS:
            problems.append(f"{metric} has no label {label}")
    bare = re.sub(r'"(?:[^"\\]|\\.)*"', "", expr)                               # strings
    bare = re.sub(r"\b(by)\s*\([^)]*\)", "", bare)                              # grouping labels
    bare = re.sub(r"\{[^}]*\}", "", bare)                                         # selectors
    for word in re.findall(r"\b[A-Za-z_:][\w:]*\b", bare):
        if word not in PROMQL_WORDS and word not in served:
            problems.append(f"{word} is not a metric the app serves")
    return problems


@pytest.fixture(scope="module")
def dashboard(chart):
    objs = objects(chart, "defaults")
    cm = one(objs, "ConfigMap", "-grafana")
    (text,) = cm["data"].values()
    return cm, text, json.loads(text)


def test_the_grafana_dashboard_ships_in_a_labelled_configmap(chart, dashboard):
    cm, text, _ = dashboard
    assert cm["metadata"]["name"] == f"configmap-{FULL}-grafana"
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"                 # Grafana's sidecar convention
    assert list(cm["data"]) == [f"{NAME}.json"]
    assert text == (CHART / "files" / "grafana-dashboard.json").read_text()
    objs = objects(chart, values={"grafanaDashboard": {"label": {"key": "dashboards", "value": "ric"}}})
    labels = one(objs, "ConfigMap", "-grafana")["metadata"]["labels"]
    assert labels["dashboards"] == "ric" and "grafana_dashboard" not in labels
    assert not any(n.endswith("-grafana") for _, n in objects(chart, "no-extras"))


def test_the_grafana_dashboard_is_importable(dashboard):
    _, text, dash = dashboard
    assert dash["schemaVersion"] >= 36 and dash["uid"] and dash["title"] and dash["id"] is None
    # the data source is a variable, not an import-time input (${DS_...}) that a provisioned copy cannot fill
    assert "__inputs" not in dash and "${DS_" not in text
    variables = {v["name"]: v for v in dash["templating"]["list"]}
    assert (variables["datasource"]["type"], variables["datasource"]["query"]) == ("datasource", "prometheus")
    panels = dash["panels"]
    assert len({p["id"] for p in panels}) == len(panels)
    for p in panels:
        box = p["gridPos"]
        assert box["x"] >= 0 and box["w"] > 0 and box["x"] + box["w"] <= 24 and box["h"] > 0, p["title"]
        if p["type"] == "row":
            continue
        assert p["type"] in ("timeseries", "stat") and p["targets"], p["title"]
        assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        assert len({t["refId"] for t in p["targets"]}) == len(p["targets"])
        assert all(t["datasource"] == p["datasource"] and t["expr"] for t in p["targets"])
    # no two panels overlap
    cells = [(p["title"], x, y) for p in panels for x in range(p["gridPos"]["x"], p["gridPos"]["x"] + p["gridPos"]["w"])
             for y in range(p["gridPos"]["y"], p["gridPos"]["y"] + p["gridPos"]["h"])]
    assert len({(x, y) for _, x, y in cells}) == len(cells)


def test_the_grafana_dashboard_asks_only_for_what_the_app_serves(dashboard):
    _, _, dash = dashboard
    served = served_metrics()
    exprs = [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]
    exprs += [v["query"]["query"] for v in dash["templating"]["list"] if v["type"] == "query"]
    assert {name for e in exprs for name in re.findall(r"\b(?:wmfm|process)_\w+", e)} >= {
        "wmfm_insights_total", "wmfm_ue_reports_total", "wmfm_decode_errors_total", "wmfm_dropped_total",
        "wmfm_sync_total", "wmfm_e2e_latency_seconds_bucket", "wmfm_latency_seconds_bucket",
        "wmfm_stage_seconds_bucket", "wmfm_batch_size_bucket", "wmfm_queue_depth", "wmfm_sync_waiting",
        "wmfm_redis_buffer_depth", "wmfm_redis_errors_total", "wmfm_redis_dropped_total",
        "wmfm_batch_failures_total", "wmfm_frames_total", "wmfm_http_connections_total",
        "process_resident_memory_bytes", "process_cpu_seconds_total"}
    assert {e: promql_problems(e, served) for e in exprs if promql_problems(e, served)} == {}
    # the check sees a misspelt metric and a label the metric does not have
    assert promql_problems('sum by (mode) (rate(wmfm_insight_total{job="x"}[5m]))', served) == [
        "wmfm_insight_total has no label mode", "wmfm_insight_total is not a metric the app serves"]
    assert promql_problems('sum by (reason) (rate(wmfm_insights_total{mode="fused"}[5m]))', served) == [
        "wmfm_insights_total has no label reason"]
    assert promql_problems("label_values(wmfm_queue_depth, mode)", served) == ["wmfm_queue_depth has no label mode"]


@pytest.mark.parametrize("template, construct", [
    ('{{ lower "A" }}', "lower"),                                # a Sprig function it does not implement
    ('{{ block "x" . }}{{ end }}', "block"),
    ('{{ range $i, $v := .l }}{{ break }}{{ end }}', "break"),
    ('{{ with .a }}x{{ else with .b }}y{{ end }}', "else with"),
    ('{{ (.a).b }}', "parenthesized"),
    ("{{ 'c' }}", "'c'"),                                        # a char constant
    ('{{ printf "%5.2f" 1.0 }}', "%5"),
    ('{{ .missing }}', "nil"),                                   # helm would print "" for a misspelt value
    ('{{ gt .n 1 }}', "incompatible types"),                     # float64 (values) vs int (literal), as in Go
    ('{{ .a }}', "map"),
    ('{{ replace "a" 1 "b" }}', "expected strings"),             # Sprig's replace takes strings only
    ('{{ len .n }}', "len of float64"),
    ('{{ fromYaml "- a" }}', "expected a map"),
    ('{{ mergeOverwrite .a .l }}', "expected maps"),
])
def test_the_renderer_refuses_what_it_does_not_support(template, construct):
    with pytest.raises(TemplateError) as err:
        render_string(template, {"n": 2.0, "a": {"b": 1.0}, "l": [1]})
    assert construct in str(err.value)


def test_the_renderer_trims_and_prints_like_go():
    assert render_string("a \n {{- 1 -}} \n b") == "a1b"
    assert render_string("a {{/* c */}} b {{- /* c */ -}} c") == "a  bc"
    assert render_string("{{ . }} {{ 3.0 }} {{ 1000000.0 }} {{ 0.25 }}", 8080.0) == "8080 3 1e+06 0.25"
    assert render_string('{{ range $k, $v := . }}{{ $k }}={{ $v }};{{ else }}none{{ end }}', {"b": 1, "a": "x"}) \
        == "a=x;b=1;"
    assert render_string('{{ range . }}{{ . }}{{ else }}none{{ end }}', []) == "none"
    assert render_string('{{ define "t" }}[{{ . }}]{{ end }}{{ include "t" "x" | nindent 2 }}{{ template "t" 1 }}') \
        == "\n  [x][1]"
    assert render_string('{{ $x := 1 }}{{ if true }}{{ $x = 2 }}{{ end }}{{ $x }}') == "2"
    assert render_string("{{ toJson . }}|{{ toYaml . }}", {"b": [1.0, "<"], "a": True}) \
        == '{"a":true,"b":[1,"\\u003c"]}|a: true\nb:\n- 1\n- <'
    assert render_string('{{ replace "." "-" "a.b.c" }} {{ contains "rmr" "rmrdata" }} {{ contains "rmr" "http" }}') \
        == "a-b-c true false"
    assert render_string('{{ len "é" }} {{ len (list 1 "x") }} {{ index (list . "y") 0 }}', "z") == "2 2 z"
    assert render_string(r'{{ $m := fromYaml "a: 1\nb: {c: x}" }}{{ kindIs "float64" $m.a }}') == "true"
    merged = r'{{ toJson (mergeOverwrite (fromYaml "a: x\nb: {c: 1, d: 2}") (fromYaml "b: {c: 3}\ne: y")) }}'
    assert render_string(merged) == '{"a":"x","b":{"c":3,"d":2},"e":"y"}'
