"""Decompressed blobs that are not all held at once.

A compressed section's payload can expand a thousandfold, and an image can declare any number of
them; holding every blob for the life of the tree would make memory grow with what the image
declares. So a decompressed section's children live in a `BlobSpace` that knows how to make its
bytes again (the compressed slice of its source space and the decompressor), and a `BlobCache`
per decoded image keeps the blobs in memory up to the budget's `held_bytes`
(decoders.budget.Limits), dropping the least recently used ones first. Blobs being decoded are
pinned: they are in use on the stack, so they count against the budget and are never dropped.
`Space.data` of a dropped blob decompresses it again on demand (the hex view, `extract`).
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable

from decoders.model import Node, Space

Recreate = Callable[[memoryview, int], "bytes | bytearray"]


class Filling:
    """What a blob a caller is inflating while it is decoded offers (inspector.imagefile.LzmaStream
    has it; nothing subclasses this: a plain class, because the typing module's Protocol costs every
    process ~5 ms to import): `data` has the size the stream's header declares and fills front to
    back; `need(end)` blocks until data[:end] is final and is False once the stream turned out bad.
    Only `need(len(data))` says the whole stream was good."""

    data: bytearray

    def need(self, end: int) -> bool:
        raise NotImplementedError


class StreamBroken(Exception):
    """A blob being decoded while it inflated turned out bad: what was decoded from it is dropped
    (decoders.fd.sections undoes it and decodes the section as if nothing had been inflated early)."""


class BlobCache:
    """Blobs of one decoded image, at most `limit` bytes in memory at once (pinned ones included)."""

    def __init__(self, limit: int):
        self.limit = limit
        self._lock = threading.RLock()       # the app reads spaces from worker threads
        self._held: OrderedDict[BlobSpace, bytes | bytearray] = OrderedDict()
        self._pins: dict[BlobSpace, int] = {}
        self.total = 0

    def pinned(self) -> int:
        with self._lock:
            return sum(s.size for s in self._pins)

    def room(self) -> int:
        """The most bytes one more blob may take: the limit less what is pinned."""
        return max(0, self.limit - self.pinned())

    def make_room(self, nbytes: int) -> None:
        """Drop least recently used unpinned blobs until `nbytes` more fit."""
        with self._lock:
            for space in list(self._held):
                if self.total + nbytes <= self.limit:
                    return
                if not self._pins.get(space):
                    self.total -= len(self._held.pop(space))

    def put(self, space: "BlobSpace", blob: bytes | bytearray, pin: bool = False) -> None:
        with self._lock:
            self.make_room(len(blob))
            old = self._held.pop(space, None)
            if old is not None:
                self.total -= len(old)
            self._held[space] = blob
            self.total += len(blob)
            if pin:
                self._pins[space] = self._pins.get(space, 0) + 1

    def get(self, space: "BlobSpace") -> bytes | bytearray | None:
        with self._lock:
            blob = self._held.get(space)
            if blob is not None:
                self._held.move_to_end(space)
            return blob

    def held(self) -> set["BlobSpace"]:
        with self._lock:
            return set(self._held)

    def forget(self, keep: set["BlobSpace"]) -> None:
        """Drop every blob but those in `keep`, pinned or not (a decode that is being undone)."""
        with self._lock:
            for space in list(self._held):
                if space not in keep:
                    self.total -= len(self._held.pop(space))
                    self._pins.pop(space, None)

    def unpin(self, space: "BlobSpace") -> None:
        """Done decoding `space`: it stays while there is room, and goes first when there is not."""
        with self._lock:
            n = self._pins.get(space, 0) - 1
            if n > 0:
                self._pins[space] = n
            else:
                self._pins.pop(space, None)
            self.make_room(0)


class BlobSpace(Space):
    """A decompressed blob: `data` is the bytes, from the cache or decompressed again."""

    def __init__(self, name: str, parent: Node, source: Space, start: int, end: int, recreate: Recreate,
                 size: int, cache: BlobCache):
        # Space is a dataclass whose `data` field this class replaces with a property.
        self.name, self.base, self.parent = name, None, parent
        self._source, self._start, self._end = source, start, end
        self._recreate, self._size, self._cache = recreate, size, cache
        self.filling: Filling | None = None   # set while the blob is decoded as it inflates

    def need(self, end: int) -> None:
        filling = self.filling
        if filling is not None and not filling.need(min(end, self._size)):
            raise StreamBroken(self.name)

    @property
    def data(self) -> bytes | bytearray:
        blob = self._cache.get(self)
        if blob is None:
            payload = memoryview(self._source.data)[self._start:self._end]
            self._cache.make_room(self._size)    # before, so the old and the new are not held together
            # The stream decompressed to this size before, within the limit it was given then.
            blob = self._recreate(payload, self._size)
            self._cache.put(self, blob)
        return blob

    @property
    def size(self) -> int:
        return self._size

    def __repr__(self) -> str:
        return f"BlobSpace({self.name!r}, 0x{self._size:x} bytes)"

    __hash__ = object.__hash__
