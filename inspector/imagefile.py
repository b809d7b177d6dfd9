"""Reading a flash image file, and starting its one large decompression while the decoders load.

A whole-process `fwinspect fd OVMF.fd` spends its first ~70 ms importing the decoders, and most of
its decode in liblzma inflating FVMAIN_COMPACT (on Debian's OVMF.fd, 1.5 MB to 13.5 MB). liblzma
releases the GIL, so with a second core the work overlaps: `EarlyLzma` finds the image's outermost
LZMA GUID-defined sections by their headers alone and inflates them on a thread, in pieces, while
the caller imports the decoders and then decodes. The FD decoder asks for a section's stream before
inflating it itself (`decode_image(..., predecoded=early.get)`, `get.stream`) and reads each file
of the volumes inside as soon as its bytes have landed (decoders.fd.blobs.BlobSpace.need); it keeps
what it decoded only when the stream inflated to exactly the size its header declares. Anything
else (a hostile header, a truncated or corrupt stream) it undoes and decodes, bounds and reports
as always, so the tree is the same with and without the thread.

This module imports only the standard library: importing it must cost next to nothing.
"""
from __future__ import annotations

import os
import stat
import struct
import sys
import threading

# Larger files are not flash images; refusing them keeps a mistaken argument from mapping gigabytes
# into a decoder that expects a few MiB (the largest edk2 FDs are 64 MiB).
MAX_IMAGE_SIZE = 256 << 20

# EFI_GUID_DEFINED_SECTION (PI 1.8 vol 3, 3.2.5.9): EFI_COMMON_SECTION_HEADER (Size UINT24, Type
# UINT8 = 0x02), SectionDefinitionGuid, DataOffset UINT16, Attributes UINT16. The GUIDs are
# gLzmaCustomDecompressGuid and gLzmaF86CustomDecompressGuid (MdeModulePkg/MdeModulePkg.dec), whose
# payload starts with the LZMA header (5 property bytes, UINT64 size; LzmaDecompress.c).
EFI_SECTION_GUID_DEFINED = 0x02
_LZMA_GUIDS_LE = (
    bytes.fromhex("98584eee143959429d6edc7bd79403cf"),  # EE4E5898-3914-4259-9D6E-DC7BD79403CF
    bytes.fromhex("bde62ad45213fb4b909aca72a6eae889"),  # D42AE6BD-1352-4BFB-909A-CA72A6EAE889
)
_LZMA_HEADER = 13
# Inflated ahead of time at most: OVMF images hold one such section (13.5 MiB in Debian's 2 MiB
# image); more, or larger, is left to the decoder and its budget.
MAX_EARLY_SECTIONS = 2
MAX_EARLY_BYTES = 32 << 20


class ImageError(Exception):
    pass


def read_image(path: str | os.PathLike) -> bytes:
    # os, not pathlib: pathlib (with fnmatch and urllib.parse) is ~5 ms of `mrtd`'s start-up.
    p = os.fspath(path)
    try:
        st = os.stat(p)
    except OSError as e:
        raise ImageError(f"{p}: {e.strerror}") from None
    size = st.st_size
    if not stat.S_ISREG(st.st_mode):
        raise ImageError(f"{p}: not a regular file")
    if size == 0:
        raise ImageError(f"{p}: empty file")
    if size > MAX_IMAGE_SIZE:
        raise ImageError(f"{p}: {size} bytes is larger than any flash image ({MAX_IMAGE_SIZE} max)")
    # read(), not a copy out of an mmap: the mapped pages would count in the process's RSS too.
    with open(p, "rb") as f:
        return f.read(MAX_IMAGE_SIZE + 1)


def lzma_sections(data: bytes) -> list[tuple[int, int, int]]:
    """(payload offset, section end, declared size) of LZMA GUID-defined sections found by their headers, at most
    MAX_EARLY_SECTIONS and MAX_EARLY_BYTES in all."""
    found: list[tuple[int, int, int]] = []
    total = 0
    for guid in _LZMA_GUIDS_LE:
        at = data.find(guid, 4)
        while at >= 0 and len(found) < MAX_EARLY_SECTIONS:
            section = at - 4
            size = int.from_bytes(data[section:section + 3], "little")
            if data[section + 3] == EFI_SECTION_GUID_DEFINED and at + 20 <= len(data):
                (data_offset,) = struct.unpack_from("<H", data, at + 16)
                payload, end = section + data_offset, section + size
                if data_offset >= 24 and payload + _LZMA_HEADER <= end <= len(data):
                    (declared,) = struct.unpack_from("<Q", data, payload + 5)
                    if total + declared <= MAX_EARLY_BYTES:
                        found.append((payload, end, declared))
                        total += declared
            at = data.find(guid, at + 1)
    return found


# Output is taken from liblzma this many bytes at a time, each piece published to the decoder as it
# lands; the thread asks for the GIL between pieces, and gets it within SWITCH_INTERVAL.
PIECE = 512 << 10
# While a stream is inflating, a thread that waits for the GIL asks the running one to let go after
# this long (CPython's default is 5 ms: a piece every 5 ms would hold liblzma back).
SWITCH_INTERVAL = 0.0005

_RUNNING, _DONE, _FAILED = "running", "done", "failed"


class LzmaStream:
    """One section's LZMA stream inflating into `data` (a bytearray of the size its header
    declares), front to back. `need(end)` blocks until data[:end] is final and says whether the
    stream is still good; the stream is good in the end only when it gave exactly the declared
    size (`need(len(data))` is True)."""

    def __init__(self, source: bytes, payload: int, end: int, declared: int):
        self.data = bytearray(declared)
        self._source, self._payload, self._end = source, payload, end
        self.filled = 0
        self.state = _RUNNING
        self._cond = threading.Condition()

    def run(self) -> None:
        import lzma         # here: the commands that read no LZMA section (`mrtd`, `measure`) skip it

        declared = len(self.data)
        d = lzma.LZMADecompressor(format=lzma.FORMAT_ALONE)
        src = memoryview(self._source)[self._payload:self._end]
        state = _FAILED
        try:
            while True:
                # One byte past the declared size is asked for, so a stream that holds more fails.
                piece = d.decompress(src, max_length=min(PIECE, declared + 1 - self.filled))
                src = b""
                if self.filled + len(piece) > declared:
                    break
                self.data[self.filled:self.filled + len(piece)] = piece
                with self._cond:
                    self.filled += len(piece)
                    self._cond.notify_all()
                if d.eof or not piece:
                    state = _DONE if self.filled == declared else _FAILED
                    break
        except (lzma.LZMAError, EOFError):
            pass
        finally:
            with self._cond:
                self.state = state
                self._cond.notify_all()

    def fail(self) -> None:
        with self._cond:
            if self.state is _RUNNING:
                self.state = _FAILED
                self._cond.notify_all()

    def need(self, end: int) -> bool:
        """Wait until data[:end] is inflated (True), or the stream failed (False)."""
        if self.filled >= end and (end < len(self.data) or self.state is _DONE):
            return True
        with self._cond:
            while self.state is _RUNNING and (self.filled < end or end >= len(self.data)):
                self._cond.wait()
            return self.state is not _FAILED and self.filled >= min(end, len(self.data))


class _Get:
    """`EarlyLzma.get`: the callable decoders.fd takes as `predecoded`. Called, it gives a section's
    whole inflated bytes (or None); its `stream` gives the LzmaStream itself, to decode while it
    inflates. Either hands a section over once."""

    def __init__(self, owner: "EarlyLzma"):
        self._owner = owner

    def __call__(self, buffer, offset: int) -> bytearray | None:
        stream = self.stream(buffer, offset)
        if stream is None or not stream.need(len(stream.data)):
            return None
        return stream.data

    def stream(self, buffer, offset: int) -> LzmaStream | None:
        return self._owner.take(buffer, offset)


# The interpreter's switch interval is lowered while an early-LZMA thread runs (see SWITCH_INTERVAL)
# and restored when the last one ends: two images decoded at once (`diff`) each start one, and the
# second must not take the first's lowered value for the original.
_SWITCH_LOCK = threading.Lock()
_switch_users = 0
_switch_saved: float | None = None


def _lower_switch_interval() -> None:
    global _switch_users, _switch_saved
    with _SWITCH_LOCK:
        if _switch_users == 0:
            _switch_saved = sys.getswitchinterval()
            sys.setswitchinterval(min(_switch_saved, SWITCH_INTERVAL))
        _switch_users += 1


def _restore_switch_interval() -> None:
    global _switch_users
    with _SWITCH_LOCK:
        _switch_users -= 1
        if _switch_users == 0 and _switch_saved is not None:
            sys.setswitchinterval(_switch_saved)


class EarlyLzma:
    """Inflates an image's LZMA sections on a thread, one after the other, each in pieces a decoder
    can use as they land (`get.stream`), or whole (`get`)."""

    def __init__(self, data: bytes):
        self.data = data
        self._streams: dict[int, LzmaStream] | None = None
        self._found = threading.Condition()
        self.get = _Get(self)
        self._thread = threading.Thread(target=self._run, name="early-lzma", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        streams: dict[int, LzmaStream] = {}
        try:
            streams = {payload: LzmaStream(self.data, payload, end, declared)
                       for payload, end, declared in lzma_sections(self.data)}
        finally:
            with self._found:
                self._streams = dict(streams)
                self._found.notify_all()
        if not streams:
            return
        _lower_switch_interval()
        try:
            for stream in streams.values():
                stream.run()
        finally:
            _restore_switch_interval()
            for stream in streams.values():
                stream.fail()   # whatever did not finish (only after an unexpected error): no waiter hangs

    def take(self, buffer, offset: int) -> LzmaStream | None:
        """The stream of the section whose payload is at `offset` of this image, once; None for
        another buffer or a section not inflated early."""
        if buffer is not self.data:
            return None
        with self._found:
            while self._streams is None:
                self._found.wait()
            return self._streams.pop(offset, None)
