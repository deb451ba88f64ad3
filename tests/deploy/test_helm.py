"""The Helm chart (deploy/helm/wmfm-xapp), rendered by tests/deploy/helmlite.py (no helm here):
every object valid against the Kubernetes OpenAPI schemas (strict), the same descriptor as
deploy/descriptor/config-file.json, probes and ports from it, and WMFM__ overrides that the
app's own config loader accepts."""

import base64
import copy
import json
import re
import sys
from pathlib import Path

import kubernetes_validate
import pytest
from kubernetes_validate.utils import all_versions, latest_version
from packaging.version import Version
from wmfm.xapp import controls as config

sys.path.insert(0, str(Path(__file__).parent))
from helmlite import Chart, TemplateError, render_string  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy" / "helm" / "wmfm-xapp"
DESCRIPTOR = ROOT / "deploy" / "descriptor" / "config-file.json"
DESC = json.loads(DESCRIPTOR.read_text())
# the oldest Kubernetes the chart claims (Chart.yaml kubeVersion: >=1.25; or the oldest schema the
# package still ships) and the newest one it ships
K8S_VERSIONS = (next(v for v in all_versions() if Version(v) >= Version("1.25")), latest_version())

CASES = {
    "defaults": {},
    "scaled": {"replicaCount": 3, "scaling": {"roundRobin": True, "cells": ["00101:1", "00101:2"]}},
    "connect": {"replicaCount": 2, "connect": {"indications": "tcp://e2-gateway.ricplt:5560",
                                               "frames": "tcp://camera-gateway.ricplt:5561"}},
    "gpu": {"gpu": {"enabled": True}},
    "password": {"redis": {"password": "s3cret", "username": "wmfm"}},
    "existing-secret": {"redis": {"existingSecret": "dbaas-auth", "existingSecretKey": "redis-password"}},
    "claim": {"artifact": {"existingClaim": "wmfm-artifact"}},
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


def objects(chart, case=None, values=None):
    objs = chart.render(copy.deepcopy(CASES[case] if case else values))
    return {(o["kind"], o["metadata"]["name"]): o for o in objs}


def one(objs, kind, suffix=""):
    found = [o for (k, name), o in objs.items() if k == kind and name.endswith(suffix)]
    assert len(found) == 1, (kind, suffix, list(objs))
    return found[0]


def container(objs):
    (c,) = one(objs, "Deployment")["spec"]["template"]["spec"]["containers"]
    return c


def app_env(objs) -> dict:
    """The environment the app would see: the appenv ConfigMap (envFrom), the container's env
    (a placeholder for a secretKeyRef)."""
    c = container(objs)
    (ref,) = c["envFrom"]
    env = dict(one(objs, "ConfigMap", "-appenv")["data"])
    assert ref["configMapRef"]["name"] == one(objs, "ConfigMap", "-appenv")["metadata"]["name"]
    for e in c["env"]:
        env[e["name"]] = e.get("value", "placeholder-from-secret")
    return env


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_every_object_is_valid_kubernetes(chart, case, version):
    objs = objects(chart, case)
    kinds = sorted(k for k, _ in objs)
    secret = case == "password"
    assert kinds == sorted(["ConfigMap", "ConfigMap", "Deployment", "Service", "Service"] + ["Secret"] * secret)
    for obj in objs.values():
        kubernetes_validate.validate(obj, version, strict=True)
    chart.render_text(CASES[case])["NOTES.txt"]                          # NOTES.txt renders too


def test_strict_validation_would_catch_a_misplaced_field(chart):
    dep = one(objects(chart, "defaults"), "Deployment")
    dep["spec"]["template"]["spec"]["containers"][0]["readOnlyRootFilesystem"] = True   # not a container field
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(dep, K8S_VERSIONS[0], strict=True)


def test_the_chart_ships_the_descriptor_itself(chart):
    link = CHART / "files" / "config-file.json"
    assert link.is_symlink() and not Path(link.readlink()).is_absolute()
    assert link.resolve() == DESCRIPTOR.resolve()
    objs = objects(chart, "defaults")
    cm = one(objs, "ConfigMap", "-appconfig")
    assert cm["metadata"]["name"] == "wmfm-xapp-appconfig"
    assert cm["data"]["config-file.json"] == DESCRIPTOR.read_text()      # byte for byte
    pod = one(objs, "Deployment")["spec"]["template"]["spec"]
    mount = next(m for m in container(objs)["volumeMounts"] if m["mountPath"] == "/opt/ric/config")
    volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])
    assert volume["configMap"]["name"] == cm["metadata"]["name"] and mount["readOnly"]


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


def test_ports_are_the_descriptor_ports(chart):
    objs = objects(chart, "defaults")
    want = {(p["name"], p["port"]) for p in DESC["messaging"]["ports"]}
    c = container(objs)
    assert {(p["name"], p["containerPort"]) for p in c["ports"]} == want
    assert c["name"] == DESC["containers"][0]["name"] == DESC["messaging"]["ports"][0]["container"]
    http, zmq = one(objs, "Service", "-http"), one(objs, "Service", "-zmq")
    assert http["metadata"]["name"] == "service-wmfm-xapp-http" and zmq["metadata"]["name"] == "service-wmfm-xapp-zmq"
    assert [p["name"] for p in http["spec"]["ports"]] == ["http"]
    served = {(p["name"], p["port"]) for s in (http, zmq) for p in s["spec"]["ports"]}
    assert served == want
    pod_labels = one(objs, "Deployment")["spec"]["template"]["metadata"]["labels"]
    for svc in (http, zmq):
        assert all(p["targetPort"] == p["name"] for p in svc["spec"]["ports"])
        assert svc["spec"]["selector"].items() <= pod_labels.items()
    ann = one(objs, "Deployment")["spec"]["template"]["metadata"]["annotations"]
    assert (ann["prometheus.io/scrape"], ann["prometheus.io/path"]) == ("true", "/ric/v1/metrics")
    assert ann["prometheus.io/port"] == str(dict(want)["http"])


def test_chart_and_image_versions_are_the_package_version(chart):
    version = re.search(r'^version = "([^"]+)"', (ROOT / "pyproject.toml").read_text(), re.M).group(1)
    assert chart.meta["version"] == chart.meta["appVersion"] == version == DESC["version"]
    image = DESC["containers"][0]["image"]
    assert container(objects(chart, "defaults"))["image"] == f"{image['name']}:{image['tag']}"
    assert container(objects(chart, "gpu"))["image"] == f"{image['name']}:{image['tag']}-gpu"
    assert container(objects(chart, values={"image": {"repository": "localhost:5000/wmfm-xapp", "tag": "dev"}}))[
        "image"] == "localhost:5000/wmfm-xapp:dev"


@pytest.mark.parametrize("case", CASES)
def test_the_env_overrides_load_through_the_apps_own_loader(chart, case):
    objs = objects(chart, case)
    env = app_env(objs)
    cfg = config.load(DESCRIPTOR, env=env)                    # raises on an unknown control or a wrong type
    redis = {**chart.values["redis"], **CASES[case].get("redis", {})}
    assert cfg.redis.url == redis["url"]
    if case == "tls":                                          # the CA file is where the extra volume puts it
        assert cfg.redis.url.startswith("rediss://") and cfg.redis.tls_ca_file == "/etc/wmfm/redis-tls/ca.crt"
        c, pod = container(objs), one(objs, "Deployment")["spec"]["template"]["spec"]
        mount = next(m for m in c["volumeMounts"] if m["name"] == "redis-tls")
        assert cfg.redis.tls_ca_file.startswith(mount["mountPath"] + "/")
        assert {"name": "redis-tls", "secret": {"secretName": "dbaas-tls"}} in pod["volumes"]
    else:
        assert cfg.redis.url == "redis://service-ricplt-dbaas-tcp.ricplt:6379/0"
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


def test_names_and_labels_fit_kubernetes_limits_with_a_long_release_name(chart):
    release = "wmfm-xapp-for-the-downtown-cells-of-the-lab-" + "x" * 9      # 53: the longest helm accepts
    assert len(release) == 53
    objs = chart.render({}, name=release, namespace="ricxapp")
    label = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
    for obj in objs:
        name = obj["metadata"]["name"]
        assert len(name) <= (63 if obj["kind"] == "Service" else 253), name          # a Service name is a DNS label
        assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", name), name
        for value in obj["metadata"]["labels"].values():
            assert len(value) <= 63 and label.match(value), value
    assert {o["metadata"]["name"] for o in objs if o["kind"] == "Service"} == {
        ("service-" + release + "-http")[:63], ("service-" + release + "-zmq")[:63]}


def test_round_robin_and_headless_follow_the_replica_count(chart):
    for replicas, rr, headless, want_rr, want_headless in [(1, None, None, "false", False),
                                                           (3, None, None, "true", True),
                                                           (3, False, False, "false", False),
                                                           (1, True, True, "true", True)]:
        objs = objects(chart, values={"replicaCount": replicas, "scaling": {"roundRobin": rr},
                                      "service": {"zmq": {"headless": headless}}})
        assert one(objs, "Deployment")["spec"]["replicas"] == replicas
        assert one(objs, "ConfigMap", "-appenv")["data"]["WMFM__SCALING__ROUND_ROBIN"] == want_rr
        assert (one(objs, "Service", "-zmq")["spec"].get("clusterIP") == "None") is want_headless
        assert "clusterIP" not in one(objs, "Service", "-http")["spec"]
    # pods that connect to a sender may be scaled later (kubectl scale, an autoscaler): on from the start
    objs = objects(chart, values={"connect": {"indications": "tcp://e2-gateway.ricplt:5560"}})
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
    assert secret["metadata"]["name"] == "wmfm-xapp-redis" and secret["type"] == "Opaque"
    assert base64.b64decode(secret["data"]["password"]).decode() == "s3cret"
    (pw,) = [e for e in container(objs)["env"] if e["name"] == "REDIS_PASSWORD"]
    assert pw["valueFrom"]["secretKeyRef"] == {"name": "wmfm-xapp-redis", "key": "password"}
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
        chart.render({"env": {"WMFM__REDIS__URL": "redis://x:6379/0"}})


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
