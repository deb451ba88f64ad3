"""JSON schema of the descriptor's `controls`, generated from the config dataclasses
(xapp/controls.py is the single source, descriptions included; `make descriptor` writes deploy/descriptor/schema.json,
and a test checks the committed file is current and that config-file.json validates).

Draft-07, the draft the O-RAN SC xApp onboarder validates with (it puts an xApp's controls
schema under `properties.controls` of its descriptor schema). `measurements()` is the
descriptor's `measurements` section: the Prometheus counters and gauges the app serves at
/ric/v1/metrics, as the RIC's VES manager reads them."""

from __future__ import annotations

import dataclasses
import json
import types
import typing

from wmfm.config import field_docs

from .controls import XAppConfig


def _schema(tp, default=dataclasses.MISSING) -> dict:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if dataclasses.is_dataclass(tp):
        hints, docs = typing.get_type_hints(tp), field_docs(tp)
        props = {}
        for f in dataclasses.fields(tp):
            d = f.default if f.default is not dataclasses.MISSING else (
                f.default_factory() if f.default_factory is not dataclasses.MISSING else dataclasses.MISSING)
            props[f.name] = _schema(hints[f.name], d)
            if docs.get(f.name):
                props[f.name] = {"description": docs[f.name], **props[f.name]}
        out = {"type": "object", "properties": props, "additionalProperties": False}
        return {"description": tp.__doc__.strip(), **out} if tp.__doc__ and not tp.__doc__.startswith(tp.__name__) \
            else out
    if origin is typing.Literal:
        out = {"enum": list(args)}
    elif origin in (typing.Union, types.UnionType):
        out = {"anyOf": [_schema(a) for a in args]}
    elif origin is tuple:
        item = args[0] if args and (len(args) == 1 or args[-1] is Ellipsis) else None
        out = {"type": "array", "items": _schema(item)} if item is not None else \
            {"type": "array", "items": [_schema(a) for a in args], "additionalItems": False, "minItems": len(args),
             "maxItems": len(args)}
    elif origin is dict:
        out = {"type": "object", "additionalProperties": _schema(args[1])}
    else:
        out = {"type": {bool: "boolean", int: "integer", float: "number", str: "string", type(None): "null"}[tp]}
    if default is not dataclasses.MISSING and not dataclasses.is_dataclass(default):
        from wmfm.config import to_dict
        out["default"] = to_dict(default)
    return out


def controls_schema() -> dict:
    return {"$schema": "http://json-schema.org/draft-07/schema#", "$id": "wmfm-xapp/controls",
            "title": "wmfm-xapp controls", **_schema(XAppConfig)}


MEASUREMENT = {"moId": "XAPP-wmfm-xapp", "measType": "WMFM", "measId": "9101", "measInterval": "60"}


def measurements() -> list[dict]:
    """The descriptor's `measurements`: what the RIC's VES manager collects from /ric/v1/metrics
    (the counters and gauges the app serves; histograms stay in Prometheus)."""
    from .metrics import Metrics
    metrics = [{"objectName": "wmfm-xapp", "objectInstance": "ric/v1/metrics",
                "name": fam.name + ("_total" if fam.type == "counter" else ""), "type": fam.type,
                "description": fam.documentation}
               for fam in Metrics().registry.collect() if fam.type in ("counter", "gauge")]
    return [{**MEASUREMENT, "metrics": metrics}]


def write_measurements(path) -> None:
    """Rewrite the descriptor's `measurements` block in place (one metric per line, the rest of the
    file as it is)."""
    from pathlib import Path
    path = Path(path)
    text = path.read_text()
    head, rest = text.split('  "measurements": [\n', 1)
    tail = rest[rest.index('\n  ],\n') + 1:]
    (m,) = measurements()
    lines = ",\n".join("      " + json.dumps(x) for x in m["metrics"])
    meta = json.dumps({k: v for k, v in m.items() if k != "metrics"})[:-1]
    path.write_text(f'{head}  "measurements": [\n    {meta}, "metrics": [\n{lines}\n    ]}}\n{tail}')


if __name__ == "__main__":
    import sys
    if sys.argv[1:2] == ["--measurements"]:         # make descriptor: the descriptor's measurements block
        write_measurements(sys.argv[2])
    else:
        print(json.dumps(controls_schema(), indent=2))
