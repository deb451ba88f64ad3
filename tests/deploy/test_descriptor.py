"""The O-RAN xApp descriptor (deploy/descriptor/config-file.json) against the rules the O-RAN SC
xApp onboarder (`dms_cli onboard`) enforces, and its `controls` against the app itself.

ONBOARDER restates exactly the onboarder's root schema: o-ran-sc/ric-plt-appmgr at b8bdc7bd,
xapp_orchestrater/dev/xapp_onboarder/xapp_onboarder/helm_controller/xapp_schema.py (unchanged
since be6039c, 2022-02-15), every keyword that validates (types, patterns, required fields, the
probes' oneOf, the ports' dependencies, `metrics` an object); titles, defaults and examples are
left out. Like the onboarder (api/onboard.py), the test puts the xApp's controls schema
(deploy/descriptor/schema.json) under `properties.controls`, checks the result with Draft-07's
meta-schema, then validates; and, as its chart builder and REST model do, needs `name` and
`version`. The copies in the onboarder's docs (embedded-schema.json: `metrics` an array, no
IPv4 registry) are older than the code and are not what it enforces."""

import copy
import json
import re
from pathlib import Path

import jsonschema
import pytest
from wmfm.xapp.controls import load
from wmfm.xapp.schema import controls_schema, measurements

from wmfm.config import ConfigError

DESC = Path(__file__).resolve().parents[2] / "deploy" / "descriptor"

_STR, _INT = {"type": "string"}, {"type": "integer"}
_STRINGS = {"type": "array", "items": [_STR]}                # tuple form, as upstream: the first item is checked


def _probe(name: str) -> dict:
    return {"type": "object",
            "properties": {"exec": {"type": "object", "properties": {"command": _STRINGS}, "required": ["command"]},
                           "httpGet": {"type": "object", "properties": {"path": _STR, "port": _INT},
                                       "required": ["path", "port"]},
                           "initialDelaySeconds": _INT, "periodSeconds": _INT},
            "oneOf": [{"$id": f"#/properties/{name}/oneof/exec",
                       "required": ["exec", "initialDelaySeconds", "periodSeconds"]},
                      {"$id": f"#/properties/{name}/oneof/httpget",
                       "required": ["httpGet", "initialDelaySeconds", "periodSeconds"]}]}


VERSION = (r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)"
           r"(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$")
REGISTRY = (r"^([A-Za-z0-9\.-]{1,}\.[A-Za-z]{1,}|((?:(?:25[0-5]|2[0-4][0-9]|[01]?[0-9][0-9]?)\.){3}"
            r"(?:25[0-5]|2[0-4][0-9]|[01]?[0-9][0-9]?)))(?:\:\d+)?$")
ONBOARDER = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "$id": "http://o-ran-sc.org/xapp_root.json",
    "type": "object",
    "properties": {
        "name": _STR,
        "version": {"type": "string", "pattern": VERSION},
        "annotations": {"type": "object", "additionalProperties": {
            "anyOf": [_STR, {"type": "array", "items": {"type": "object"}}]}},
        "containers": {"type": "array", "items": {
            "type": "object", "required": ["name", "image"], "properties": {
                "name": _STR,
                "image": {"type": "object", "required": ["registry", "name", "tag"], "properties": {
                    "registry": {"type": "string", "pattern": REGISTRY}, "name": _STR, "tag": _STR}},
                "command": _STRINGS, "args": _STRINGS}}},
        "livenessProbe": _probe("livenessprobe"),
        "readinessProbe": _probe("readinessprobe"),
        "messaging": {"type": "object", "required": ["ports"], "properties": {"ports": {"type": "array", "items": {
            "type": "object", "required": ["name", "container", "port"],
            "dependencies": {"txMessages": ["rxMessages", "policies"], "rxMessages": ["txMessages", "policies"],
                             "policies": ["rxMessages", "txMessages"]},
            "properties": {"name": _STR, "container": _STR, "port": _INT, "description": _STR,
                           "txMessages": {"type": "array", "items": _STR},
                           "rxMessages": {"type": "array", "items": _STR},
                           "policies": {"type": "array", "items": _INT}}}}}},
        # upstream also has an `items` schema here (objectName, ...); on an object it checks nothing
        "metrics": {"type": "object"},
        "controls": {"required": ["__empty_control_section__"]},       # replaced by the xApp's schema
    },
}


def onboard(desc: dict, controls: dict | None) -> None:
    """What `dms_cli onboard --config_file_path=config-file.json --shcema_file_path=schema.json` checks
    (raises jsonschema's ValidationError / SchemaError, or ValueError for a missing name/version)."""
    schema = copy.deepcopy(ONBOARDER)
    if controls is not None:
        schema["properties"]["controls"] = controls
    jsonschema.Draft7Validator.check_schema(schema)
    jsonschema.validate(desc, schema)
    if not (desc.get("name") or desc.get("xapp_name")) or "version" not in desc:   # xApp_builder.xApp.__init__
        raise ValueError("name and version are required")


def descriptor() -> dict:
    return json.loads((DESC / "config-file.json").read_text())


def controls() -> dict:
    return json.loads((DESC / "schema.json").read_text())


def test_the_descriptor_passes_the_onboarders_checks_with_our_controls_schema():
    onboard(descriptor(), controls())


def test_the_restated_schema_refuses_what_the_onboarder_refuses():
    """Its patterns and shapes do what upstream's own cases say (and what the old descriptor did)."""
    registry = re.compile(REGISTRY)
    for ok in ("nexus3.o-ran-sc.org:10002", "docker.io", "10.0.0.1:5000", "127.0.0.1:5000", "registry.local"):
        assert registry.match(ok), ok
    for bad in ("localhost:5000", "localhost", "ghcr.io/org", "300.1.1.1:5000", "nexus3.o-ran-sc.org:port"):
        assert not registry.match(bad), bad
    with pytest.raises(jsonschema.ValidationError, match="__empty_control_section__"):
        onboard(descriptor(), None)                  # controls without their schema: refused upstream too


@pytest.mark.parametrize("former", [
    lambda d: d["containers"][0]["image"].update(registry="localhost:5000"),
    lambda d: d.update(metrics=measurements()[0]["metrics"]),
], ids=["registry localhost:5000", "metrics as a list"])
def test_each_former_violation_is_refused(former):
    d = descriptor()
    former(d)
    with pytest.raises(jsonschema.ValidationError):
        onboard(d, controls())


@pytest.mark.parametrize("break_it", [
    lambda d: d.pop("version"),
    lambda d: d["containers"][0]["image"].pop("tag"),
    lambda d: d["livenessProbe"].pop("periodSeconds"),
    lambda d: d["messaging"]["ports"][0].update(port="8080"),
    lambda d: d["messaging"]["ports"][1].update(rxMessages=["RIC_INDICATION"]),     # without tx/policies
    lambda d: d["livenessProbe"].update(exec={"command": ["true"]}),
    lambda d: d["containers"][0].update(command="wmfm xapp"),
    lambda d: d["annotations"].update({"prometheus.io/port": 8080}),
    lambda d: d.update(version="0.1"),
    lambda d: d["controls"]["sync"].update(max_skew_ms="100"),
    lambda d: d["controls"].update(unknown_control=1),
], ids=["version", "image.tag", "probe.periodSeconds", "port type", "rx without tx", "probe exec and httpGet",
        "command a string", "annotation a number", "version not semver", "control type", "unknown control"])
def test_a_broken_descriptor_is_refused(break_it):
    d = descriptor()
    break_it(d)
    with pytest.raises((jsonschema.ValidationError, ValueError)):
        onboard(d, controls())


def _leaves(schema: dict, path: str = ""):
    """(dotted control, its default) for every leaf of the controls schema; maps (cameras) through
    one entry named `x`."""
    if schema.get("type") != "object":
        yield path, schema.get("default")
        return
    props = schema.get("properties")
    if props is None:                                    # a map: any name -> the item schema
        props = {"x": schema["additionalProperties"]}
    for k, sub in props.items():
        yield from _leaves(sub, f"{path}.{k}" if path else k)


def test_the_controls_the_app_accepts_are_exactly_those_of_schema_json():
    schema = json.loads((DESC / "schema.json").read_text())
    assert schema == controls_schema(), "run `make descriptor`"
    leaves = dict(_leaves(schema))
    assert len(leaves) > 40
    for control, default in leaves.items():              # every control in the schema: the app takes it
        load(None, [f"{control}={json.dumps(default)}"], env={})
    sections = {c.rsplit(".", 1)[0] for c in leaves if "." in c} | {""}
    for sec in sections:                                 # anything else: refused, as the schema refuses it
        bogus = f"{sec}.bogus" if sec else "bogus"
        with pytest.raises(ConfigError, match=f"controls.{bogus}: unknown key"):
            load(None, [f"{bogus}=1"], env={})
        node = schema
        for k in filter(None, sec.split(".")):
            node = node["properties"][k] if "properties" in node else node["additionalProperties"]
        assert node["additionalProperties"] is False
    shipped = descriptor()["controls"]                   # the descriptor spells out every control
    assert set(dict(_leaves(schema)).keys()) == {c.replace(".unit1_cam1.", ".x.") for c, _ in _leaves_of(shipped)}


def _leaves_of(tree: dict, path: str = ""):
    for k, v in tree.items():
        p = f"{path}.{k}" if path else k
        if isinstance(v, dict):
            yield from _leaves_of(v, p)
        else:
            yield p, v


def test_the_descriptor_measurements_are_the_ones_the_app_serves():
    assert descriptor()["measurements"] == measurements(), "run `make descriptor`"
    assert descriptor()["metrics"] == {"url": "/ric/v1/metrics", "namespace": "ricxapp"}
