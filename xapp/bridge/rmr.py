"""RMR, the RIC message router: the few calls of its C library (librmr_si.so) the bridge needs, through
ctypes. The library is built from the released source in the bridge's image (deploy/docker/
Dockerfile.bridge); it is not on PyPI or in Debian. Tests use an in-memory stand-in with the same
methods (tests/xapp/bridge_fakes.py).

    RIC_INDICATION 12050 (E2 node -> xApp, via the E2 termination)
    A1_POLICY_REQ 20010 (A1 mediator -> xApp), A1_POLICY_RESP 20011, A1_POLICY_QUERY 20012
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import time
from dataclasses import dataclass

RIC_INDICATION = 12050
A1_POLICY_REQ, A1_POLICY_RESP, A1_POLICY_QUERY = 20010, 20011, 20012
NAMES = {RIC_INDICATION: "RIC_INDICATION", A1_POLICY_REQ: "A1_POLICY_REQ", A1_POLICY_RESP: "A1_POLICY_RESP",
         A1_POLICY_QUERY: "A1_POLICY_QUERY"}
RMR_OK, RMR_ERR_TIMEOUT, RMR_ERR_RETRY = 0, 12, 10
VOID = -1                                   # RMR_VOID_MSGTYPE / RMR_VOID_SUBID
MAX_MEID = 32


@dataclass(frozen=True)
class Message:
    """A received RMR message."""
    mtype: int
    sub_id: int
    payload: bytes
    meid: str = ""


class _MBuf(ctypes.Structure):              # rmr_mbuf_t (rmr.h), the fields an application may touch first
    _fields_ = [("state", ctypes.c_int), ("mtype", ctypes.c_int), ("len", ctypes.c_int),
                ("payload", ctypes.POINTER(ctypes.c_ubyte)), ("xaction", ctypes.POINTER(ctypes.c_ubyte)),
                ("sub_id", ctypes.c_int), ("tp_state", ctypes.c_int)]


_P = ctypes.POINTER(_MBuf)


def library(path: str | None = None) -> ctypes.CDLL:
    """librmr_si: `path`, else $RMR_LIBRARY, else the loader's search (ldconfig, LD_LIBRARY_PATH)."""
    name = path or os.environ.get("RMR_LIBRARY") or ctypes.util.find_library("rmr_si") or "librmr_si.so"
    try:
        lib = ctypes.CDLL(name)
    except OSError as exc:
        raise OSError(f"RMR library {name}: {exc} (the bridge image builds it; elsewhere set RMR_LIBRARY)") from None
    for fn, res, args in (("rmr_init", ctypes.c_void_p, [ctypes.c_char_p, ctypes.c_int, ctypes.c_int]),
                          ("rmr_ready", ctypes.c_int, [ctypes.c_void_p]),
                          ("rmr_close", None, [ctypes.c_void_p]),
                          ("rmr_alloc_msg", _P, [ctypes.c_void_p, ctypes.c_int]),
                          ("rmr_realloc_payload", _P, [_P, ctypes.c_int, ctypes.c_int, ctypes.c_int]),
                          ("rmr_free_msg", None, [_P]),
                          ("rmr_send_msg", _P, [ctypes.c_void_p, _P]),
                          ("rmr_rts_msg", _P, [ctypes.c_void_p, _P]),
                          ("rmr_torcv_msg", _P, [ctypes.c_void_p, _P, ctypes.c_int]),
                          ("rmr_payload_size", ctypes.c_int, [_P]),
                          ("rmr_get_meid", ctypes.c_char_p, [_P, ctypes.c_char_p]),
                          ("rmr_str2meid", ctypes.c_int, [_P, ctypes.c_char_p])):
        f = getattr(lib, fn)
        f.restype, f.argtypes = res, args
    return lib


class Rmr:
    """One RMR endpoint: listen on `port`, receive with a timeout, send by message type (the route
    table from the RIC's routing manager, or RMR_SEED_RT), answer to a message's sender."""

    def __init__(self, port: int, max_size: int = 4 << 20, lib: ctypes.CDLL | None = None,
                 ready_timeout_s: float = 60.0):
        self.lib = lib or library()
        self.ctx = self.lib.rmr_init(str(port).encode(), max_size, 0)
        if not self.ctx:
            raise OSError(f"rmr_init on port {port} failed")
        self.last: _P | None = None             # the last message received (an answer reuses its buffer)
        t0 = time.monotonic()
        while not self.lib.rmr_ready(self.ctx):    # the first route table (routing manager or RMR_SEED_RT)
            if time.monotonic() - t0 > ready_timeout_s:
                self.close()
                raise TimeoutError(f"RMR had no route table within {ready_timeout_s} s (is the routing manager "
                                   "up, or RMR_SEED_RT set?)")
            time.sleep(0.1)

    def receive(self, timeout_ms: int) -> Message | None:
        m = self.lib.rmr_torcv_msg(self.ctx, self.last, timeout_ms)
        self.last = m
        if not m or m.contents.state != RMR_OK:
            return None
        c = m.contents
        meid = ctypes.create_string_buffer(MAX_MEID + 1)
        self.lib.rmr_get_meid(m, meid)
        return Message(c.mtype, c.sub_id, ctypes.string_at(c.payload, c.len), meid.value.decode(errors="replace"))

    def _fill(self, m: _P, mtype: int, payload: bytes, sub_id: int) -> _P | None:
        """`m` with the payload, type and sub id set (a larger buffer when needed); None if RMR gave none."""
        if not m:
            return None
        if self.lib.rmr_payload_size(m) < len(payload):
            m = self.lib.rmr_realloc_payload(m, len(payload), 0, 0)
            if not m:
                return None
        ctypes.memmove(m.contents.payload, payload, len(payload))
        m.contents.len, m.contents.mtype, m.contents.sub_id = len(payload), mtype, sub_id
        return m

    def send(self, mtype: int, payload: bytes, sub_id: int = VOID, retries: int = 5) -> bool:
        """Route by (mtype, sub_id); True if RMR took it."""
        m = self._fill(self.lib.rmr_alloc_msg(self.ctx, max(len(payload), 1)), mtype, payload, sub_id)
        if m is None:
            return False
        for _ in range(retries + 1):
            m = self.lib.rmr_send_msg(self.ctx, m)
            if m and m.contents.state != RMR_ERR_RETRY:
                break
        ok = bool(m) and m.contents.state == RMR_OK
        if m:
            self.lib.rmr_free_msg(m)
        return ok

    def reply(self, mtype: int, payload: bytes, sub_id: int = VOID, retries: int = 5) -> bool:
        """Return to the sender of the last message received."""
        if not self.last:
            return False
        m = self._fill(self.last, mtype, payload, sub_id)
        self.last = m
        if m is None:
            return False
        for _ in range(retries + 1):
            m = self.lib.rmr_rts_msg(self.ctx, m)
            self.last = m
            if not m or m.contents.state != RMR_ERR_RETRY:
                break
        return bool(m) and m.contents.state == RMR_OK

    def close(self) -> None:
        if self.last:
            self.lib.rmr_free_msg(self.last)
            self.last = None
        if self.ctx:
            self.lib.rmr_close(self.ctx)
            self.ctx = None
