"""A1 policy requests (A1_POLICY_REQ over RMR, from the O-RAN SC A1 mediator) applied to the xApp
through its /ric/v1/policies endpoint, and the A1_POLICY_RESP to send back.

    request   {"operation": "CREATE" | "UPDATE" | "DELETE", "policy_type_id": 28001 (or "28001"),
               "policy_instance_id": "...", "payload": {...} (or the same as a JSON string; "" for DELETE)}
    response  {"policy_type_id": 28001, "policy_instance_id": "...", "handler_id": "<xApp>",
               "status": "OK" | "ERROR" | "DELETED"}

The Go mediator sends every value as a string and reads `policy_type_id` back as a number; both
spellings are taken, the number is sent. A request for another policy type, or one that is not
JSON, is answered ERROR (when it names an instance) and counted. The response carries no reason
(A1 has no field for it): the bridge logs it, the xApp logs and counts it.
"""

from __future__ import annotations

import json
import urllib.parse

from ..policy import POLICY_TYPE_ID
from .ric import RicError, call

TIMEOUT_S = 1.0       # the xApp is on the pod's loopback; the RMR loop waits for this at most (twice)


def handle(xapp_url: str, payload: bytes, handler_id: str) -> tuple[dict | None, str]:
    """An A1_POLICY_REQ payload -> (the A1_POLICY_RESP document, or None when there is nobody to answer;
    what happened, for the log and the metrics: ok, deleted, refused, bad_request, other_type, xapp_down)."""
    try:
        req = json.loads(payload)
        op, type_id, instance = req["operation"], int(req["policy_type_id"]), str(req["policy_instance_id"])
    except (ValueError, KeyError, TypeError, UnicodeDecodeError, OverflowError):
        return None, "bad_request"

    def answer(status: str, result: str) -> tuple[dict, str]:
        return {"policy_type_id": type_id, "policy_instance_id": instance, "handler_id": handler_id,
                "status": status}, result
    if type_id != POLICY_TYPE_ID:
        return answer("ERROR", "other_type")
    url = f"{xapp_url}/ric/v1/policies/{urllib.parse.quote(instance, safe='')}"
    try:
        if op == "DELETE":
            try:
                call("DELETE", url, timeout_s=TIMEOUT_S, what=f"policy {instance}")
            except RicError as exc:
                if exc.status != 404:                      # already gone: deleted all the same
                    raise
            return answer("DELETED", "deleted")
        if op not in ("CREATE", "UPDATE"):
            return answer("ERROR", "bad_request")
        doc = req.get("payload")
        doc = json.loads(doc) if isinstance(doc, str) else doc
        call("PUT", url, doc, timeout_s=TIMEOUT_S, what=f"policy {instance}")
        return answer("OK", "ok")
    except ValueError:                                     # a payload string that is not JSON
        return answer("ERROR", "refused")
    except RicError as exc:                                # a 4xx: the xApp said no; else it did not answer
        return answer("ERROR", "refused" if exc.status and 400 <= exc.status < 500 else "xapp_down")


def query(policy_type_id: int = POLICY_TYPE_ID) -> bytes:
    """The A1_POLICY_QUERY payload: the mediator answers with every instance of the type (as CREATEs)."""
    return json.dumps({"policy_type_id": policy_type_id}).encode()
