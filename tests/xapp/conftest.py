import time

import numpy as np
import pytest
import zmq
from wmfm.xapp import codec
from wmfm.xapp.app import XApp

from wmfm.cache import load as load_cache


@pytest.fixture(scope="session")
def samples(twin_cache):
    """CSI [N, 2, 32, 64] and camera images [N, 64, 64, 3] u8 of the session twin's cache (the
    `cpu` preset's input sizes; the service's tests need real channels, not trained weights)."""
    c = load_cache(twin_cache, mmap=False)
    return {"csi": c["csi"].astype(np.float32), "images": c["images"], "scene": c["scene"]}


class Sender:
    """PUSH sockets to a running xApp's indication and frame endpoints."""

    def __init__(self, app: XApp, ctx: zmq.Context | None = None, curve_keys=None, encoding: str = "protobuf"):
        from wmfm.xapp.e2ap import encode_e2ap_indication
        self.encode = encode_e2ap_indication if encoding == "e2ap" else codec.encode_indication
        self.ctx = ctx or zmq.Context.instance()
        self.ind, self.frames = self.ctx.socket(zmq.PUSH), self.ctx.socket(zmq.PUSH)
        for s, name in ((self.ind, "indications"), (self.frames, "frames")):
            s.setsockopt(zmq.LINGER, 1000)
            s.setsockopt(zmq.SNDHWM, 100000)
            s.setsockopt(zmq.SNDTIMEO, 300)             # a PUSH with no admitted peer would block forever
            if curve_keys is not None:
                s.curve_publickey, s.curve_secretkey, s.curve_serverkey = curve_keys
            s.connect(app.endpoints[name])

    @staticmethod
    def _send(sock, buf: bytes) -> bool:
        try:
            sock.send(buf)
            return True
        except zmq.Again:
            return False

    def frame(self, cam: str, seq: int, t_ns: int, image: np.ndarray, encoding: str = "png") -> bool:
        h, w = image.shape[:2]
        return self._send(self.frames, codec.encode_frame(cam, seq, t_ns, codec.encode_image(image, encoding), w, h,
                                                          encoding))

    def indication(self, sn: int, t_ns: int, reports, ran: str = "gnb1", **kw) -> bool:
        return self._send(self.ind, self.encode(ran, sn, t_ns, reports, **kw))

    def close(self) -> None:
        self.ind.close(linger=0)
        self.frames.close(linger=0)


def wait_for(cond, timeout: float = 10.0, step: float = 0.02):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        v = cond()
        if v:
            return v
        time.sleep(step)
    return cond()
