"""SHA-384 objects that hash on their own thread, for the engine's commands that hash the same
records in several orders (the two MRTD page orders): hashlib releases the GIL while it hashes
2 KiB or more, so each order gets a core. decoders/mrtd.py takes them through `new_hash`; the
decoders themselves start no threads.
"""
from __future__ import annotations

import hashlib
import threading
from _queue import SimpleQueue      # queue.SimpleQueue itself, without the queue module's heapq import


class ThreadedHash:
    """A hashlib object fed on its own thread. At most `depth` buffers wait (each at most
    decoders.mrtd.BATCH_BYTES and a page's records); the caller never changes a buffer after
    passing it. `digest()` waits for the thread; `close()` ends it (idempotent)."""

    def __init__(self, hasher, depth: int = 4):
        self._hasher, self._queue, self._slots = hasher, SimpleQueue(), threading.Semaphore(depth)
        self._thread = threading.Thread(target=self._run, name="sha384", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (buf := self._queue.get()) is not None:
            self._hasher.update(buf)
            self._slots.release()

    def update(self, buf) -> None:
        self._slots.acquire()
        self._queue.put(buf)

    def close(self) -> None:
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()

    def digest(self) -> bytes:
        self.close()
        return self._hasher.digest()


def side_by_side(orders) -> "callable":
    """`new_hash` for decoders.mrtd.compute_mrtds: the first of `orders` hashes on the caller's
    thread, every other on its own."""
    first = tuple(orders)[:1]

    def new_hash(order: str):
        return hashlib.sha384() if order in first else ThreadedHash(hashlib.sha384())

    return new_hash
