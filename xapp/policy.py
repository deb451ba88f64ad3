"""A1 policies: what an operator steers at run time, over the controls read at start.

    policy type 28001 "wmfm-insights" (POLICY_TYPE: Draft-07 `create_schema`, what the A1 mediator
    is given with PUT /A1-P/v2/policytypes/28001 and checks instances against)
    an instance   {"los_threshold": 0.7, "max_skew_ms": 50, "cells": ["00101:1"], "publish": "state"}
                  every field optional; a field an instance leaves out keeps its value

Instances arrive through the E2 bridge (A1 policy requests over RMR, bridge/a1.py) or straight
on the xApp's HTTP surface (PUT/DELETE /ric/v1/policies/<instance id>, for a RIC without RMR).
The effective settings are the controls overlaid with every instance in the order they were
last created or updated (the newest wins field by field); deleting one re-computes them from
the rest. A bad instance is refused with a reason and changes nothing. The store is shared with
the HTTP threads; the loop picks up a new version between two turns (app.py).
"""

from __future__ import annotations

import math
import re
import threading
from dataclasses import dataclass
from typing import Literal

from .sink import PUBLISH_MODES

POLICY_TYPE_ID = 28001
_INSTANCE_ID = re.compile(r"[A-Za-z0-9._~:-]{1,128}")
_CELL = r"[0-9]{5,6}:[0-9]{1,11}"          # fullmatch here; anchored in the JSON schema (ECMAScript `$` ends
                                            # the string there)
MAX_INSTANCES = 64

CREATE_SCHEMA = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "title": "wmfm-insights policy",
    "description": "Run-time steering of the WMFM xApp's LoS/position insights; a field left out keeps its value.",
    "type": "object",
    "additionalProperties": False,
    "minProperties": 1,
    "properties": {
        "los_threshold": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1,
                          "description": "an insight says LoS when p_los > this"},
        "max_skew_ms": {"type": "number", "minimum": 0, "maximum": 60000,
                        "description": "a camera frame pairs with CSI only within this time difference"},
        "cells": {"type": "array", "maxItems": 4096, "uniqueItems": True,
                  "items": {"type": "string", "pattern": f"^{_CELL}$"},
                  "description": "cells (\"<plmn>:<nr_cell_id>\") whose UEs get insights; [] = every cell"},
        "publish": {"enum": list(PUBLISH_MODES),
                    "description": "all: every key, stream and channel; state: the per-UE keys only; none: nothing"},
    },
}
POLICY_TYPE = {"policy_type_id": POLICY_TYPE_ID, "name": "wmfm-insights",
               "description": "WMFM xApp: LoS threshold, frame pairing skew, enabled cells, publish mode",
               "create_schema": CREATE_SCHEMA}


class PolicyError(ValueError):
    """A policy instance refused; the message is the reason sent back."""


@dataclass(frozen=True)
class Effective:
    """The settings in force."""
    los_threshold: float
    max_skew_ms: float
    cells: tuple[str, ...]                  # () = every cell
    publish: Literal["all", "state", "none"]

    def to_json(self) -> dict:
        return {"los_threshold": self.los_threshold, "max_skew_ms": self.max_skew_ms, "cells": list(self.cells),
                "publish": self.publish}


def check(doc) -> dict:
    """A policy instance (parsed JSON) -> its fields, or PolicyError naming what is wrong (the same
    rules as CREATE_SCHEMA, which the tests hold against each other)."""
    if not isinstance(doc, dict):
        raise PolicyError(f"expected a JSON object, got {type(doc).__name__}")
    if not doc:
        raise PolicyError("empty policy: give at least one of " + ", ".join(CREATE_SCHEMA["properties"]))
    for k in doc:
        if k not in CREATE_SCHEMA["properties"]:
            raise PolicyError(f"{k}: unknown field (known: {', '.join(CREATE_SCHEMA['properties'])})")
    out = {}
    if "los_threshold" in doc:
        out["los_threshold"] = _number(doc["los_threshold"], "los_threshold")
        if not 0 < out["los_threshold"] < 1:
            raise PolicyError(f"los_threshold: must be in (0, 1), got {doc['los_threshold']}")
    if "max_skew_ms" in doc:
        out["max_skew_ms"] = _number(doc["max_skew_ms"], "max_skew_ms")
        if not 0 <= out["max_skew_ms"] <= 60000:
            raise PolicyError(f"max_skew_ms: must be in [0, 60000], got {doc['max_skew_ms']}")
    if "cells" in doc:
        cells = doc["cells"]
        if not isinstance(cells, list) or len(cells) > 4096:
            raise PolicyError("cells: expected a list of at most 4096 \"<plmn>:<nr_cell_id>\"")
        for c in cells:
            if not (isinstance(c, str) and re.fullmatch(_CELL, c)):
                raise PolicyError(f"cells: {str(c)[:40]!r} is not \"<plmn>:<nr_cell_id>\" (5-6 digits, a number)")
        if len(set(cells)) != len(cells):
            raise PolicyError("cells: listed twice")
        out["cells"] = tuple(cells)
    if "publish" in doc:
        if doc["publish"] not in PUBLISH_MODES:
            raise PolicyError(f"publish: expected one of {', '.join(PUBLISH_MODES)}, got {str(doc['publish'])[:40]!r}")
        out["publish"] = doc["publish"]
    return out


def _number(v, name: str) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise PolicyError(f"{name}: expected a number, got {str(v)[:40]!r}")
    return float(v)


class Policies:
    """The policy instances in force, over the controls' values (thread-safe)."""

    def __init__(self, base: Effective, metrics=None):
        self.base = base
        self.instances: dict[str, dict] = {}          # instance id -> its document, oldest change first
        self.fields: dict[str, dict] = {}             # instance id -> its checked fields
        self.version = 0
        self.m = metrics
        self._lock = threading.Lock()
        self._effective = base

    def put(self, instance_id: str, doc) -> bool:
        """Create or update an instance; True if it was new. PolicyError: refused, nothing changed."""
        if not isinstance(instance_id, str) or not _INSTANCE_ID.fullmatch(instance_id):
            raise PolicyError(f"instance id {str(instance_id)[:40]!r}: 1-128 of [A-Za-z0-9._~:-]")
        fields = check(doc)
        with self._lock:
            new = instance_id not in self.instances
            if new and len(self.instances) >= MAX_INSTANCES:
                raise PolicyError(f"{MAX_INSTANCES} instances already: delete one first")
            self.instances.pop(instance_id, None)
            self.fields.pop(instance_id, None)
            self.instances[instance_id], self.fields[instance_id] = doc, fields      # the newest: last
            self._changed()
        return new

    def delete(self, instance_id: str) -> bool:
        """Remove an instance; False if there was none."""
        with self._lock:
            if instance_id not in self.instances:
                return False
            del self.instances[instance_id], self.fields[instance_id]
            self._changed()
        return True

    def _changed(self) -> None:
        merged = self.base.to_json()
        for fields in self.fields.values():
            merged.update(fields)
        merged["cells"] = tuple(merged["cells"])
        self._effective = Effective(**merged)
        self.version += 1
        if self.m is not None:
            self.m.policy_instances.set(len(self.instances))

    @property
    def effective(self) -> Effective:
        return self._effective

    def instance(self, instance_id: str) -> dict | None:
        with self._lock:
            return self.instances.get(instance_id)

    def describe(self) -> dict:
        with self._lock:
            return {"policy_type_id": POLICY_TYPE_ID, "effective": self._effective.to_json(),
                    "instances": dict(self.instances)}


if __name__ == "__main__":                 # make descriptor: deploy/a1/policy-type.json
    import json
    print(json.dumps(POLICY_TYPE, indent=2))
