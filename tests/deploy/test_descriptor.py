"""The O-RAN xApp descriptor (deploy/descriptor/config-file.json) against what the O-RAN SC
xApp onboarder (`dms_cli onboard`) requires, and its `controls` against the app itself.

ONBOARDER below restates, in our words, the fields and shapes the onboarder enforces
(o-ran-sc/ric-plt-appmgr, xapp_orchestrater/dev/xapp_onboarder: the descriptor schema in
helm_controller/xapp_schema.py and docs/.../embedded-schema.json, plus xApp_builder.py, which
needs `name` or `xapp_name`, and `version`). Like the onboarder, it validates with Draft-07
and puts the xApp's own controls schema (deploy/descriptor/schema.json) under `controls`.
The two upstream copies disagree on `metrics` (array in the docs schema and examples, object
in the code); ours is the array of the docs."""

import copy
import json
from pathlib import Path

import jsonschema
import pytest
from wmfm.xapp.controls import load
from wmfm.xapp.schema import controls_schema, metrics_descriptor

from wmfm.config import ConfigError

DESC = Path(__file__).resolve().parents[2] / "deploy" / "descriptor"

_STR = {"type": "string"}
_INT = {"type": "integer"}
_PROBE = {"type": "object", "oneOf": [
    {"required": ["exec", "initialDelaySeconds", "periodSeconds"]},
    {"required": ["httpGet", "initialDelaySeconds", "periodSeconds"]}],
    "properties": {
        "exec": {"type": "object", "required": ["command"], "properties": {"command": {"type": "array"}}},
        "httpGet": {"type": "object", "required": ["path", "port"], "properties": {"path": _STR, "port": _INT}},
        "initialDelaySeconds": _INT, "periodSeconds": _INT}}
ONBOARDER = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "type": "object",
    "required": ["name", "version", "containers"],
    "properties": {
        "name": _STR,
        "version": {"type": "string", "pattern": r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(-[0-9A-Za-z.-]+)?$"},
        "containers": {"type": "array", "minItems": 1, "items": {
            "type": "object", "required": ["name", "image"], "properties": {
                "name": _STR, "command": {"type": "array"}, "args": {"type": "array"},
                "image": {"type": "object", "required": ["registry", "name", "tag"], "properties": {
                    "registry": {"type": "string", "pattern": r"^[A-Za-z0-9.-]+(:[0-9]+)?$"},
                    "name": _STR, "tag": _STR}}}}},
        "livenessProbe": _PROBE,
        "readinessProbe": _PROBE,
        "messaging": {"type": "object", "required": ["ports"], "properties": {"ports": {"type": "array", "items": {
            "type": "object", "required": ["name", "container", "port"],
            "properties": {"name": _STR, "container": _STR, "port": _INT, "description": _STR,
                           "txMessages": {"type": "array", "items": _STR},
                           "rxMessages": {"type": "array", "items": _STR},
                           "policies": {"type": "array", "items": _INT}},
            "dependencies": {"txMessages": ["rxMessages", "policies"], "rxMessages": ["txMessages", "policies"],
                             "policies": ["txMessages", "rxMessages"]}}}}},
        "metrics": {"type": "array", "items": {
            "type": "object", "required": ["objectName", "objectInstance", "name", "type", "description"],
            "properties": {k: _STR for k in ("objectName", "objectInstance", "name", "type", "description")}}},
    },
}


def descriptor() -> dict:
    return json.loads((DESC / "config-file.json").read_text())


def onboarder_schema() -> dict:
    s = copy.deepcopy(ONBOARDER)
    s["properties"]["controls"] = json.loads((DESC / "schema.json").read_text())
    return s


def test_the_descriptor_passes_the_onboarders_checks_with_our_controls_schema():
    jsonschema.Draft7Validator.check_schema(onboarder_schema())
    jsonschema.Draft7Validator(onboarder_schema()).validate(descriptor())


@pytest.mark.parametrize("break_it", [
    lambda d: d.pop("version"),
    lambda d: d["containers"][0]["image"].pop("tag"),
    lambda d: d["livenessProbe"].pop("periodSeconds"),
    lambda d: d["messaging"]["ports"][0].update(port="8080"),
    lambda d: d["messaging"]["ports"][1].update(rxMessages=["RIC_INDICATION"]),     # without tx/policies
    lambda d: d["metrics"][0].pop("type"),
    lambda d: d["controls"]["sync"].update(max_skew_ms="100"),
    lambda d: d["controls"].update(unknown_control=1),
], ids=["version", "image.tag", "probe.periodSeconds", "port type", "rx without tx", "metric type",
        "control type", "unknown control"])
def test_a_broken_descriptor_is_refused(break_it):
    d = descriptor()
    break_it(d)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft7Validator(onboarder_schema()).validate(d)


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


def test_the_descriptor_metrics_are_the_ones_the_app_serves():
    assert descriptor()["metrics"] == metrics_descriptor(), "copy wmfm.xapp.schema.metrics_descriptor() into it"
