"""The receive sockets: queues bounded in bytes (what a socket holds per sender is capped by
queue_bytes, whatever rcvhwm says)."""

import zmq
from wmfm.xapp.controls import SocketConfig
from wmfm.xapp.transport import open_socket


def fill(ctx: zmq.Context, endpoint: str, size: int, cap: int = 20_000) -> int:
    """Messages a PUSH sender (SNDHWM 1) gets in before it blocks, nobody reading."""
    tx = ctx.socket(zmq.PUSH)
    tx.setsockopt(zmq.SNDHWM, 1)
    tx.setsockopt(zmq.SNDTIMEO, 200)
    tx.connect(endpoint)
    n = 0
    try:
        while n < cap:
            tx.send(b"x" * size)
            n += 1
    except zmq.Again:
        pass
    tx.close(linger=0)
    return n


def test_a_socket_queues_at_most_queue_bytes_per_sender():
    """queue_bytes 8 MiB with messages of up to 1 MiB (ZeroMQ lets 2 MiB in): 4 messages, though
    rcvhwm says 10000. inproc: the queue is exactly the two high-water marks (no kernel buffers)."""
    ctx = zmq.Context()
    try:
        for cfg, want in ((SocketConfig("inproc://q1", rcvhwm=10_000, max_message_bytes=1 << 20,
                                        queue_bytes=8 << 20), 4),
                          (SocketConfig("inproc://q2", rcvhwm=3, max_message_bytes=1 << 20, queue_bytes=8 << 20), 3),
                          (SocketConfig("inproc://q3", rcvhwm=10_000, max_message_bytes=4 << 20), 32)):
            assert cfg.hwm == want
            sock, _ = open_socket(ctx, cfg, None, "indications")
            assert sock.getsockopt(zmq.RCVHWM) == want
            assert fill(ctx, cfg.endpoint, 1000) == want + 1             # + the sender's own SNDHWM of 1
            sock.close(linger=0)
    finally:
        ctx.term()
