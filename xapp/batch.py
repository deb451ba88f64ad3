"""The micro-batch queue: paired CSI reports waiting for inference.

    pending = Batcher(cfg.batch, metrics)
    pending.add(pairing, now_ns)            # False (counted as dropped "queue_full") when full
    pending.due_ms(now_ns)                  # ms until the oldest has waited max_wait_us (None: empty)
    for batch in pending.take():            # full batches, and a partial one once it is due
        ...
    pending.room()                          # indications the loop may read this turn (back-pressure)

A batch runs as soon as `max_batch` reports wait, or when the oldest has waited `max_wait_us`
(0: as soon as the sockets are drained; what arrives during a batch forms the next one).
Counts `wmfm_dropped_total{reason="queue_full"}`, the `queue` stage (time waited),
`wmfm_batch_size` and `wmfm_queue_depth`.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterator

from .controls import BatchConfig
from .records import Pairing

DRAIN_PER_POLL = 256           # indications read per loop turn at most, before looking at the rest


class Batcher:
    def __init__(self, cfg: BatchConfig, metrics):
        self.max_batch, self.max_wait_ns, self.capacity = cfg.max_batch, cfg.max_wait_us * 1000, cfg.queue
        self.metrics = metrics
        self.pending: deque[Pairing] = deque()

    def __len__(self) -> int:
        return len(self.pending)

    def add(self, p: Pairing, now_ns: int, cap: bool = True) -> bool:
        """Queue a pairing; when the queue is full it is dropped and counted (`cap=False`: the drain
        at shutdown, which takes everything already decoded)."""
        if cap and len(self.pending) >= self.capacity:
            self.metrics.dropped.labels("queue_full").inc()
            return False
        p.ready_ns = now_ns
        self.pending.append(p)
        return True

    def due_ms(self, now_ns: int) -> float | None:
        """Milliseconds until a partial batch is due (<= 0: now); None when nothing waits."""
        if not self.pending:
            return None
        return (self.pending[0].ready_ns + self.max_wait_ns - now_ns) / 1e6

    def take(self, force: bool = False) -> Iterator[list[Pairing]]:
        """The batches due now (every pending one with `force`), oldest first; the clock is read
        again before each batch (the previous one took time)."""
        while self.pending:
            now_ns = time.time_ns()
            if not (force or len(self.pending) >= self.max_batch
                    or now_ns - self.pending[0].ready_ns >= self.max_wait_ns):
                break
            batch = [self.pending.popleft() for _ in range(min(self.max_batch, len(self.pending)))]
            for p in batch:
                self.metrics.stage.labels("queue").observe(max(0, now_ns - p.ready_ns) / 1e9)
            self.metrics.batch.observe(len(batch))
            self.metrics.queue.set(len(self.pending))
            yield batch
        self.metrics.queue.set(len(self.pending))

    def drop_all(self) -> int:
        """Forget everything pending (after a failed batch); returns how many."""
        n = len(self.pending)
        self.pending.clear()
        self.metrics.queue.set(0)
        return n

    def room(self) -> int:
        """Indications to read this loop turn: fewer while many reports wait, so a burst stays in
        the ZeroMQ queue (past RCVHWM it blocks the PUSH senders) instead of being dropped here."""
        return max(1, min(DRAIN_PER_POLL, (self.capacity - len(self.pending)) // max(1, self.max_batch)))
