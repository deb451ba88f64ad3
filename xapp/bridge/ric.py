"""The RIC platform's REST services the bridge calls (O-RAN SC: submgr, e2mgr, appmgr), with urllib
and short timeouts. Each call returns what the bridge needs or raises RicError with the status and
the first words of the answer; the bridge retries later.

    submgr  POST   {submgr}/subscriptions          -> {"SubscriptionId": ...}  (503: node not connected)
            DELETE {submgr}/subscriptions/{id}     -> 204
    e2mgr   GET    {e2mgr}/nodeb/states            -> [{"inventoryName", "connectionStatus"}, ...]
            GET    {e2mgr}/nodeb/{name}            -> {"gnb": {"ranFunctions": [{"ranFunctionId",
                                                      "ranFunctionOid", ...}]}, ...}
    appmgr  POST   {appmgr}/register, /deregister
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request


class RicError(RuntimeError):
    def __init__(self, what: str, status: int | None, detail: str):
        super().__init__(f"{what}: {status or 'unreachable'} {detail[:200]}")
        self.status = status


def call(method: str, url: str, doc=None, timeout_s: float = 5.0, what: str = "") -> tuple[int, object]:
    """One JSON request -> (status, parsed body or None); RicError on a transport error or a status >= 300."""
    body = json.dumps(doc).encode() if doc is not None else None
    req = urllib.request.Request(url, data=body, method=method, headers={"Content-Type": "application/json",
                                                                         "Accept": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout_s) as r:
            raw = r.read()
            return r.status, (json.loads(raw) if raw.strip() else None)
    except urllib.error.HTTPError as exc:
        raise RicError(what or f"{method} {url}", exc.code, exc.read().decode(errors="replace")) from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise RicError(what or f"{method} {url}", None, str(getattr(exc, "reason", exc))) from None


def subscription_request(client_host: str, http_port: int, rmr_port: int, meid: str, ran_function_id: int,
                         event_trigger: bytes, action_definition: bytes, instance: int = 1) -> dict:
    """The subscription manager's SubscriptionParams: one REPORT action (id 1) with our E2SM's event
    trigger and action definition (APER bytes, as lists of integers)."""
    return {"ClientEndpoint": {"Host": client_host, "HTTPPort": http_port, "RMRPort": rmr_port},
            "Meid": meid, "RANFunctionID": ran_function_id,
            "SubscriptionDetails": [{"XappEventInstanceId": instance, "EventTriggers": list(event_trigger),
                                     "ActionToBeSetupList": [{"ActionID": 1, "ActionType": "report",
                                                              "ActionDefinition": list(action_definition),
                                                              "SubsequentAction": {"SubsequentActionType": "continue",
                                                                                   "TimeToWait": "zero"}}]}]}


def subscribe(submgr: str, params: dict) -> str:
    _, doc = call("POST", f"{submgr}/subscriptions", params, what=f"subscribe at {params['Meid']}")
    if not isinstance(doc, dict) or not doc.get("SubscriptionId"):
        raise RicError(f"subscribe at {params['Meid']}", 201, f"no SubscriptionId in {str(doc)[:100]}")
    return str(doc["SubscriptionId"])


def unsubscribe(submgr: str, subscription_id: str) -> None:
    call("DELETE", f"{submgr}/subscriptions/{subscription_id}", what=f"delete subscription {subscription_id}")


def nodes(e2mgr: str) -> list[str]:
    """The connected E2 nodes' inventory names."""
    _, doc = call("GET", f"{e2mgr}/nodeb/states", what="list E2 nodes")
    return [n["inventoryName"] for n in doc or () if isinstance(n, dict) and n.get("connectionStatus") == "CONNECTED"
            and n.get("inventoryName")]


def ran_function_id(e2mgr: str, node: str, oid: str) -> int | None:
    """The id of the RAN function with `oid` at `node`, or None."""
    _, doc = call("GET", f"{e2mgr}/nodeb/{node}", what=f"E2 node {node}")
    for kind in ("gnb", "enb"):
        for f in ((doc or {}).get(kind) or {}).get("ranFunctions") or ():
            if isinstance(f, dict) and f.get("ranFunctionOid") == oid:
                return int(f.get("ranFunctionId", 0))
    return None


def register(appmgr: str, name: str, version: str, instance: str, http_endpoint: str, rmr_endpoint: str,
             config: dict) -> None:
    """appmgr: the xApp instance and its descriptor (the config as a JSON string, as appmgr takes it)."""
    call("POST", f"{appmgr}/register", {"appName": name, "appVersion": version, "configPath": "",
                                        "appInstanceName": instance, "httpEndpoint": http_endpoint,
                                        "rmrEndpoint": rmr_endpoint, "config": json.dumps(config)}, what="register")


def deregister(appmgr: str, name: str, instance: str) -> None:
    call("POST", f"{appmgr}/deregister", {"appName": name, "appInstanceName": instance}, what="deregister")
