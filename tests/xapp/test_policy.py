"""A1 policies: the policy type's schema and the xApp's own check agree; instances merge newest
first; the REST endpoint; and changes apply live, mid-stream, with a real xApp."""

import json
import time
import urllib.error
import urllib.request

import jsonschema
import pytest
import redis
from conftest import Sender, wait_for
from test_app import MS, PERIOD_MS, entries
from wmfm.xapp.policy import CREATE_SCHEMA, POLICY_TYPE, POLICY_TYPE_ID, Effective, Policies, PolicyError, check

VALID = [{"los_threshold": 0.7}, {"max_skew_ms": 0}, {"max_skew_ms": 60000}, {"cells": []},
         {"cells": ["00101:1", "001010:68719476735"]}, {"publish": "state"}, {"publish": "none"},
         {"los_threshold": 0.01, "max_skew_ms": 12.5, "cells": ["00101:2"], "publish": "all"}]
INVALID = [{}, [], "x", None, {"los_threshold": 0}, {"los_threshold": 1}, {"los_threshold": "0.5"},
           {"los_threshold": True}, {"max_skew_ms": -1}, {"max_skew_ms": 60001}, {"cells": "00101:1"},
           {"cells": ["0010:1"]}, {"cells": ["00101:1", "00101:1"]}, {"cells": [1]}, {"publish": "some"},
           {"threshold": 0.5}, {"los_threshold": 0.5, "extra": 1}]


@pytest.mark.parametrize("doc", VALID, ids=json.dumps)
def test_a_valid_instance_passes_the_schema_and_the_check(doc):
    jsonschema.Draft7Validator.check_schema(CREATE_SCHEMA)
    jsonschema.validate(doc, CREATE_SCHEMA)
    check(doc)


@pytest.mark.parametrize("doc", INVALID, ids=json.dumps)
def test_an_invalid_instance_fails_both_with_a_reason(doc):
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(doc, CREATE_SCHEMA)
    with pytest.raises(PolicyError) as err:
        check(doc)
    assert str(err.value)


def test_a_cell_with_a_trailing_newline_is_refused():
    """The schema's `$` ends the string in ECMAScript (the A1 mediator); Python's `$` would let a newline through."""
    with pytest.raises(PolicyError, match="cells"):
        check({"cells": ["00101:1\n"]})


def test_the_shipped_policy_type_is_current():
    from pathlib import Path
    shipped = json.loads((Path(__file__).resolve().parents[2] / "deploy" / "a1" / "policy-type.json").read_text())
    assert shipped == POLICY_TYPE, "run `make descriptor`"
    assert set(shipped) == {"policy_type_id", "name", "description", "create_schema"}   # what A1 PUT requires


def test_instances_merge_the_newest_first_and_a_delete_recomputes():
    p = Policies(Effective(0.5, 100.0, (), "all"))
    assert p.put("a", {"los_threshold": 0.7, "publish": "state"}) is True
    assert p.put("b", {"los_threshold": 0.9}) is True
    assert p.effective == Effective(0.9, 100.0, (), "state")
    assert p.put("a", {"los_threshold": 0.6}) is False                 # an update: a is the newest now
    assert p.effective == Effective(0.6, 100.0, (), "all")
    v = p.version
    with pytest.raises(PolicyError):
        p.put("b", {"los_threshold": 2})                                # refused: nothing changes
    assert p.version == v and p.effective.los_threshold == 0.6
    assert p.delete("a") and not p.delete("a")
    assert p.effective == Effective(0.9, 100.0, (), "all")
    assert p.delete("b") and p.effective == Effective(0.5, 100.0, (), "all")
    with pytest.raises(PolicyError, match="instance id"):
        p.put("a/b", {"los_threshold": 0.7})


def call(app, method: str, path: str, doc=None, raw: bytes | None = None) -> tuple[int, dict]:
    body = raw if raw is not None else (json.dumps(doc).encode() if doc is not None else None)
    req = urllib.request.Request(f"http://127.0.0.1:{app.status.port}{path}", data=body, method=method,
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def test_the_rest_endpoint(run_xapp):
    app = run_xapp()
    assert call(app, "GET", "/ric/v1/policytype") == (200, POLICY_TYPE)
    assert call(app, "PUT", "/ric/v1/policies/p1", {"los_threshold": 0.8})[0] == 201
    code, doc = call(app, "PUT", "/ric/v1/policies/p1", {"los_threshold": 0.7, "publish": "state"})
    assert code == 200 and doc["effective"]["los_threshold"] == 0.7 and doc["effective"]["publish"] == "state"
    code, doc = call(app, "PUT", "/ric/v1/policies/p2", {"los_threshold": 1.5})
    assert code == 400 and doc == {"status": "ERROR", "reason": "los_threshold: must be in (0, 1), got 1.5"}
    code, doc = call(app, "PUT", "/ric/v1/policies/p2", raw=b"{not json")
    assert code == 400 and doc["reason"].startswith("not JSON")
    assert call(app, "PUT", "/ric/v1/policies/p2", raw=b"x" * (65 << 10))[0] == 413
    code, doc = call(app, "GET", "/ric/v1/policies")
    assert code == 200 and doc["policy_type_id"] == POLICY_TYPE_ID
    assert doc["instances"] == {"p1": {"los_threshold": 0.7, "publish": "state"}}
    assert call(app, "GET", "/ric/v1/policies/p1") == (200, {"los_threshold": 0.7, "publish": "state"})
    assert call(app, "DELETE", "/ric/v1/policies/p1") == (200, {"status": "DELETED"})
    assert call(app, "DELETE", "/ric/v1/policies/p1")[0] == 404
    assert wait_for(lambda: app.describe()["policy"] == {"los_threshold": 0.5, "max_skew_ms": 100.0, "cells": [],
                                                         "publish": "all"})
    reg = app.metrics.registry
    assert reg.get_sample_value("wmfm_policy_requests_total", {"operation": "PUT", "result": "refused"}) == 3
    assert reg.get_sample_value("wmfm_policy_requests_total", {"operation": "CREATE", "result": "ok"}) == 1
    assert reg.get_sample_value("wmfm_policy_instances") == 0


@pytest.mark.parametrize("rest, status", [("off", 403), ("local", 201)])
def test_who_may_write_policies(run_xapp, rest, status):
    app = run_xapp(f"policy.rest={rest}")
    assert call(app, "PUT", "/ric/v1/policies/p1", {"los_threshold": 0.8})[0] == status     # from 127.0.0.1
    code, _, body = app.status.write("PUT", "/ric/v1/policies/p2", b'{"los_threshold": 0.8}', ("10.1.2.3", 4000))
    assert code == 403 and b"may not write" in body
    assert call(app, "GET", "/ric/v1/policies")[0] == 200                                   # readable all the same


class Stream:
    """Frames and indications (UEs 10 and 11, cell 00101:1, 2 ms after each frame) sent in real time
    from frame k on; returns the SN range sent."""

    def __init__(self, app, samples):
        self.tx, self.samples, self.k, self.t0 = Sender(app), samples, 0, time.time_ns() + 50 * MS

    def send(self, n: int, cell: int = 1) -> range:
        first = self.k
        for k in range(first, first + n):
            t = self.t0 + k * PERIOD_MS * MS
            time.sleep(max(0.0, (t - time.time_ns()) / 1e9))
            self.tx.frame("cam0", k, t, self.samples["images"][k % len(self.samples["images"])])
            time.sleep(max(0.0, (t + 2 * MS - time.time_ns()) / 1e9))
            self.tx.indication(k, t + 2 * MS, [(10 + u, self.samples["csi"][(2 * k + u) % len(self.samples["csi"])])
                                               for u in range(2)], nr_cell_id=cell)
        self.k += n
        return range(first, self.k)


def test_policy_changes_apply_live_mid_stream(run_xapp, samples):
    app = run_xapp("sync.deadline_ms=20")
    r, s = redis.Redis.from_url(app.redis_url), Stream(app, samples)

    def written(sns: range) -> list[dict]:
        assert wait_for(lambda: len([e for e in entries(r) if int(e["sn"]) in sns]) == 2 * len(sns)), sns
        return [e for e in entries(r) if int(e["sn"]) in sns]

    before = written(s.send(10))
    p = sorted(float(e["p_los"]) for e in before)
    assert all(e["los"] == str(int(float(e["p_los"]) > 0.5)) for e in before)
    threshold = round((p[len(p) // 4] + p[len(p) // 4 + 1]) / 2, 6)        # between two of the p_los seen
    assert call(app, "PUT", "/ric/v1/policies/t", {"los_threshold": threshold})[0] == 201
    after = written(s.send(10))                                           # the threshold follows the policy
    assert all(e["los"] == str(int(float(e["p_los"]) > threshold)) for e in after)
    assert any((float(e["p_los"]) > threshold) != (float(e["p_los"]) > 0.5) for e in before + after)

    assert all(e["mode"] == "fused" for e in after)
    assert call(app, "PUT", "/ric/v1/policies/skew", {"max_skew_ms": 1})[0] == 201   # frames are 2 ms off
    assert all(e["mode"] == "csi_only" for e in written(s.send(5)))

    assert call(app, "PUT", "/ric/v1/policies/cells", {"cells": ["00101:2"]})[0] == 201
    skipped = s.send(5, cell=1)                                           # cell 1 is left out now
    cell2 = written(s.send(5, cell=2))
    assert not [e for e in entries(r) if int(e["sn"]) in skipped] and len(cell2) == 10
    assert app.metrics.registry.get_sample_value("wmfm_skipped_total", {"reason": "policy_cell"}) == 5

    assert call(app, "PUT", "/ric/v1/policies/quiet", {"publish": "state"})[0] == 201
    n, sns = r.xlen("{wmfm},insights"), s.send(5, cell=2)
    assert wait_for(lambda: r.hget("{wmfm},ue:gnb1:10", "sn") == str(sns[-1]).encode())   # the state moves on
    assert r.xlen("{wmfm},insights") == n                                 # the stream does not
    assert call(app, "PUT", "/ric/v1/policies/quiet", {"publish": "none"})[0] == 200
    sns = s.send(3, cell=2)
    assert wait_for(lambda: app.metrics.registry.get_sample_value("wmfm_withheld_total") == 6)
    assert r.hget("{wmfm},ue:gnb1:10", "sn") != str(sns[-1]).encode() and r.xlen("{wmfm},insights") == n
    assert call(app, "DELETE", "/ric/v1/policies/quiet")[0] == 200
    assert len(written(s.send(3, cell=2))) == 6                            # back to every key
    s.tx.close()
