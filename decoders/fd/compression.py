"""Decompressors for edk2's compressed sections (PI spec vol 3 2.2.5; edk2 MdeModulePkg/Library/
*CustomDecompressLib), each bounded in output.

LZMA: the standard library (`.lzma alone` format, MdeModulePkg/Library/LzmaCustomDecompressLib).
LZMA + x86 BCJ: LZMA, then liblzma's x86 BCJ filter (the LZMA SDK's Bra86.c x86_Convert, which
edk2's MdeModulePkg/Library/LzmaCustomDecompressLib/F86GuidedSectionExtraction.c runs with ip = 0).
Brotli: PyPI `brotli` (MdeModulePkg/Library/BrotliCustomDecompressLib).
EFI standard / Tiano: `uefi_firmware.efi_compressor` (C module of PyPI `uefi-firmware`).

Every function takes `limit`, the most bytes it may produce, and raises CompressionError
when the stream is bad or would produce more; nothing here allocates more than `limit`.
"""
from __future__ import annotations

import lzma
import struct

from decoders.fd.structs import BROTLI_HEADER_SIZE, EFI_COMPRESSED_HEADER_SIZE, LZMA_HEADER_SIZE


class CompressionError(Exception):
    """The compressed stream could not be decoded within its limit."""


class OverLimit(CompressionError):
    """The stream declares or holds more than the caller's limit (a bomb, or the budget is spent)."""


# -- declared sizes -------------------------------------------------------------------------

def declared_size(label: str, payload: bytes | memoryview) -> int | None:
    """The decompressed size a payload's header declares (None: short header, or LZMA's "unknown"):
    LZMA UINT64 at 5, Brotli UINT64 at 0, EFI/Tiano OrigSize UINT32 at 4 (the layouts below)."""
    at, fmt = {"lzma": (5, "<Q"), "lzmaf86": (5, "<Q"), "brotli": (0, "<Q"),
               "efi": (4, "<I"), "tiano": (4, "<I")}.get(label, (None, None))
    if at is None or len(payload) < at + struct.calcsize(fmt):
        return None
    (size,) = struct.unpack_from(fmt, payload, at)
    return None if size == 0xFFFFFFFFFFFFFFFF else size


# -- LZMA -----------------------------------------------------------------------------------

_UNKNOWN_SIZE = b"\xff" * 8
# Output is taken from the decompressors this many bytes at a time.
PIECE = 1 << 20


def lzma_decompress(payload: bytes | memoryview, limit: int) -> bytearray:
    """Decode an edk2 LZMA payload (13-byte header: 5 property bytes, UINT64 decoded size)."""
    if len(payload) < LZMA_HEADER_SIZE:
        raise CompressionError(f"LZMA header needs {LZMA_HEADER_SIZE} bytes, {len(payload)} present")
    (declared,) = struct.unpack_from("<Q", payload, 5)
    if declared != 0xFFFFFFFFFFFFFFFF and declared > limit:
        raise OverLimit(f"LZMA header declares 0x{declared:x} bytes, over the 0x{limit:x}-byte limit")
    want = limit if declared == 0xFFFFFFFFFFFFFFFF else declared
    try:
        out = _lzma_alone(payload, want)
    except (lzma.LZMAError, EOFError) as first:
        # liblzma's .lzma-alone decoder rejects some streams whose header carries the real size
        # but whose encoder also wrote an end marker (cpython#92018); chipsec retries with the
        # size marked unknown, and so do we.
        try:
            out = _lzma_alone(bytes(payload[:5]) + _UNKNOWN_SIZE + bytes(payload[LZMA_HEADER_SIZE:]), want)
        except (lzma.LZMAError, EOFError):
            raise CompressionError(f"LZMA stream: {first}") from None
    if declared != 0xFFFFFFFFFFFFFFFF and len(out) != declared:
        raise CompressionError(f"LZMA stream gave 0x{len(out):x} bytes, header declares 0x{declared:x}")
    return out


def _drain(step, finished, data, most: int) -> bytearray:
    """Run a streaming decompressor over `data`: `step(data, n)` gives at most n more bytes and
    `finished()` says the stream ended. At most `most + 1` bytes in all, so a stream that holds more
    than it declares (a bomb) is caught after one extra byte instead of being inflated whole; a
    piece at a time, so the blob is never held twice (one call that produced everything would join
    its output blocks into a copy). The caller checks the length against `most`."""
    out = bytearray()
    while not finished():
        piece = step(data, min(PIECE, most + 1 - len(out)))
        data = b""
        out += piece
        if len(out) > most or not piece:
            break
    return out


def _lzma_alone(payload: bytes | memoryview, want: int) -> bytearray:
    d = lzma.LZMADecompressor(format=lzma.FORMAT_ALONE)
    out = _drain(lambda data, n: d.decompress(data, max_length=n), lambda: d.eof, payload, want)
    if len(out) > want:
        raise OverLimit(f"LZMA stream holds more than the 0x{want:x} bytes allowed")
    if not d.eof and len(out) < want:
        raise EOFError("LZMA stream ended early")
    return out


# -- x86 BCJ --------------------------------------------------------------------------------

# LZMA2 chunk sizes (xz file format 1.1.0, and liblzma's lzma2_decoder.c): an uncompressed chunk is
# a control byte (1: first chunk, resets the dictionary; 2: later chunks), the data size - 1 as a
# 16-bit big-endian number, then at most 64 KiB of data; a 0 byte ends the stream.
_LZMA2_STORED_MAX = 1 << 16
_X86_CHAIN = [{"id": lzma.FILTER_X86}, {"id": lzma.FILTER_LZMA2, "dict_size": 1 << 20}]


def bcj_x86_decode(data: bytes | bytearray | memoryview) -> bytearray:
    """Undo the x86 branch converter (LZMA SDK Bra86.c x86_Convert with ip = 0, encoding = 0,
    as edk2's LzmaArchDecompressLib runs it over the whole decompressed buffer), in liblzma.

    liblzma applies its x86 filter only in a raw decoder chain that ends in LZMA1 or LZMA2, and
    keeps the last bytes of the buffer until the chain reports the end of the stream. edk2 streams
    carry their size in the header and no end marker, which liblzma's raw LZMA1 decoder cannot be
    told (its LZMA1EXT filter is not in Python's lzma), so the LZMA output is fed to [x86, LZMA2]
    as LZMA2 uncompressed chunks: their end byte ends the stream and flushes the filter, and
    decoding a stored chunk is a copy. The x86 filter's start offset is 0, edk2's ip.
    """
    src = memoryview(data)
    out = bytearray(len(src))
    dec = lzma.LZMADecompressor(format=lzma.FORMAT_RAW, filters=_X86_CHAIN)
    pos = 0
    for at in range(0, len(src), _LZMA2_STORED_MAX):
        chunk = src[at:at + _LZMA2_STORED_MAX]
        piece = dec.decompress(bytes([1 if at == 0 else 2]) + (len(chunk) - 1).to_bytes(2, "big") + chunk)
        out[pos:pos + len(piece)] = piece
        pos += len(piece)
    piece = dec.decompress(b"\0")
    out[pos:pos + len(piece)] = piece
    pos += len(piece)
    if pos != len(src) or (src and not dec.eof):
        raise CompressionError(f"x86 BCJ pass gave 0x{pos:x} of 0x{len(src):x} bytes")
    return out


def lzma_x86_decompress(payload: bytes | memoryview, limit: int) -> bytearray:
    """gLzmaF86CustomDecompressGuid: LZMA, then the x86 BCJ decoder over the whole output.

    The BCJ pass holds a second buffer of the same size while it runs; callers that budget memory
    count an LZMA+x86 blob twice (X86_WORKING_COPIES)."""
    return bcj_x86_decode(lzma_decompress(payload, limit))


X86_WORKING_COPIES = 2


# -- Brotli ---------------------------------------------------------------------------------

def brotli_decompress(payload: bytes | memoryview, limit: int) -> bytearray:
    """edk2 Brotli payload: UINT64 decoded size, UINT64 scratch size, then the stream at 0x10."""
    import brotli  # imported here: only images with Brotli sections pay for it

    if len(payload) < BROTLI_HEADER_SIZE:
        raise CompressionError(f"Brotli header needs {BROTLI_HEADER_SIZE} bytes, {len(payload)} present")
    (declared,) = struct.unpack_from("<Q", payload, 0)
    if declared > limit:
        raise OverLimit(f"Brotli header declares 0x{declared:x} bytes, over the 0x{limit:x}-byte limit")
    dec = brotli.Decompressor()
    try:
        out = _drain(lambda data, n: dec.process(data, output_buffer_limit=n), dec.is_finished,
                     bytes(payload[BROTLI_HEADER_SIZE:]), declared)
    except brotli.error as e:
        raise CompressionError(f"Brotli stream: {e}") from None
    if len(out) > declared:
        raise CompressionError(f"Brotli stream holds more than the 0x{declared:x} bytes it declares")
    if not dec.is_finished():
        raise CompressionError(f"Brotli stream ended early after 0x{len(out):x} bytes")
    if len(out) != declared:
        raise CompressionError(f"Brotli stream gave 0x{len(out):x} bytes, header declares 0x{declared:x}")
    return out


# -- EFI standard and Tiano -----------------------------------------------------------------

def efi_decompress(payload: bytes | memoryview, limit: int, *, tiano_first: bool = False) -> tuple[bytes, str]:
    """EFI standard (EFI 1.1) or Tiano compression; returns (data, which-algorithm-worked).

    The two differ only in Huffman table sizes, and the stream does not say which it is, so
    like chipsec we try one and then the other; the decoded size must match OrigSize.
    """
    from uefi_firmware import efi_compressor  # C module; imported only when needed

    if len(payload) < EFI_COMPRESSED_HEADER_SIZE:
        raise CompressionError(f"compressed header needs {EFI_COMPRESSED_HEADER_SIZE} bytes, {len(payload)} present")
    comp_size, orig_size = struct.unpack_from("<II", payload, 0)
    if orig_size > limit:
        raise OverLimit(f"header declares 0x{orig_size:x} bytes, over the 0x{limit:x}-byte limit")
    if comp_size + EFI_COMPRESSED_HEADER_SIZE > len(payload):
        raise CompressionError(f"header declares 0x{comp_size:x} compressed bytes, "
                               f"only 0x{len(payload) - EFI_COMPRESSED_HEADER_SIZE:x} present")
    data = bytes(payload)
    order = (("Tiano", efi_compressor.TianoDecompress), ("EFI", efi_compressor.EfiDecompress))
    if not tiano_first:
        order = order[::-1]
    errors = []
    for name, fn in order:
        try:
            out = fn(data, len(data))
        except Exception as e:  # noqa: BLE001 - the C module raises bare Exception("Failed to decompress")
            errors.append(f"{name}: {e}")
            continue
        if len(out) == orig_size:
            return bytes(out), name
        errors.append(f"{name}: gave 0x{len(out):x} bytes, header says 0x{orig_size:x}")
    raise CompressionError("; ".join(errors))
