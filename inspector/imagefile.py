"""Reading a flash image file, and starting its one large decompression while the decoders load.

A whole-process `fwinspect fd OVMF.fd` spends its first ~70 ms importing the decoders, and most of
its decode in liblzma inflating FVMAIN_COMPACT (on Debian's OVMF.fd, 1.5 MB to 13.5 MB). liblzma
releases the GIL, so with a second core the two overlap: `EarlyLzma` finds the image's outermost
LZMA GUID-defined sections by their headers alone and inflates them on a thread while the caller
imports the decoders. The FD decoder asks it for a section's bytes before inflating them itself
(`decode_image(..., predecoded=...)`) and is given them only when the stream inflated to exactly
the size its header declares; anything else (a hostile header, a truncated stream) it decodes,
bounds and reports as always.

This module imports only the standard library: importing it must cost next to nothing.
"""
from __future__ import annotations

import lzma
import struct
import threading
from pathlib import Path

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


def read_image(path: str | Path) -> bytes:
    p = Path(path)
    try:
        size = p.stat().st_size
    except OSError as e:
        raise ImageError(f"{p}: {e.strerror}") from None
    if not p.is_file():
        raise ImageError(f"{p}: not a regular file")
    if size == 0:
        raise ImageError(f"{p}: empty file")
    if size > MAX_IMAGE_SIZE:
        raise ImageError(f"{p}: {size} bytes is larger than any flash image ({MAX_IMAGE_SIZE} max)")
    # read(), not a copy out of an mmap: the mapped pages would count in the process's RSS too.
    with p.open("rb") as f:
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


def _inflate(data: bytes, payload: int, end: int, declared: int) -> bytes | None:
    """The section's LZMA stream inflated, or None unless it gives exactly `declared` bytes."""
    d = lzma.LZMADecompressor(format=lzma.FORMAT_ALONE)
    try:
        out = d.decompress(memoryview(data)[payload:end], max_length=declared + 1)
    except (lzma.LZMAError, EOFError):
        return None
    return out if len(out) == declared else None


class EarlyLzma:
    """Inflates an image's LZMA sections on a thread; `get(buffer, offset)` hands one over once."""

    def __init__(self, data: bytes):
        self.data = data
        self._results: dict[int, bytes | None] = {}
        self._thread = threading.Thread(target=self._run, name="early-lzma", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        for payload, end, declared in lzma_sections(self.data):
            self._results[payload] = _inflate(self.data, payload, end, declared)

    def get(self, buffer, offset: int) -> bytes | None:
        """The LZMA-stage bytes of the section whose payload is at `offset` of this image, or None
        (another buffer, a section not inflated early, or a stream that did not check out)."""
        if buffer is not self.data:
            return None
        self._thread.join()
        return self._results.pop(offset, None)
