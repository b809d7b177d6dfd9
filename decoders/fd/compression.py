"""Decompressors for edk2's compressed sections (FACTS A.3, A.11), each bounded in output.

LZMA: the standard library (`.lzma alone` format, MdeModulePkg/Library/LzmaCustomDecompressLib).
LZMA + x86 BCJ: LZMA, then the BCJ x86 decoder below, written from the LZMA SDK's Bra86.c
(x86_Convert), which edk2's LzmaArchDecompressLib runs with ip = 0 and a fresh state.
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


# -- LZMA -----------------------------------------------------------------------------------

_UNKNOWN_SIZE = b"\xff" * 8


def lzma_decompress(payload: bytes | memoryview, limit: int) -> bytes:
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


def _lzma_alone(payload: bytes | memoryview, want: int) -> bytes:
    d = lzma.LZMADecompressor(format=lzma.FORMAT_ALONE)
    # max_length = want + 1 so a stream that holds more than it declares (a bomb) is caught
    # after one extra byte instead of being inflated whole.
    out = d.decompress(payload, max_length=want + 1)
    if len(out) > want:
        raise OverLimit(f"LZMA stream holds more than the 0x{want:x} bytes allowed")
    if not d.eof and len(out) < want:
        raise EOFError("LZMA stream ended early")
    return out


# -- x86 BCJ --------------------------------------------------------------------------------

def _test_ms_byte(b: int) -> bool:
    # Bra86.c: Test86MSByte(b) ((((b) + 1) & 0xFE) == 0), i.e. b is 0x00 or 0xFF.
    return ((b + 1) & 0xFE) == 0


def bcj_x86_decode(data: bytes | bytearray, ip: int = 0) -> bytearray:
    """Undo the x86 branch converter (LZMA SDK Bra86.c x86_Convert with encoding = 0).

    The encoder turned the rel32 of E8 (CALL) / E9 (JMP) into absolute addresses; this turns
    them back. Only the opcode positions are visited (found with bytearray.find), so a few
    MiB of code take well under a second.
    """
    buf = bytearray(data)
    size = len(buf)
    if size < 5:
        return buf
    limit = size - 4          # Bra86.c: size -= 4; an opcode needs 4 bytes after it
    ip += 5                   # Bra86.c: ip += 5 (addresses are relative to the next instruction)
    pos = 0
    mask = 0                  # x86_Convert_Init: state = 0
    find = buf.find
    next_e8 = next_e9 = -1    # cached next positions, refreshed only once pos passes them
    while True:
        # The next E8 or E9 at or after pos, below limit: Bra86.c's `(*p & 0xFE) == 0xE8` scan.
        if next_e8 < pos:
            next_e8 = find(b"\xe8", pos, limit)
            if next_e8 < 0:
                next_e8 = size
        if next_e9 < pos:
            next_e9 = find(b"\xe9", pos, limit)
            if next_e9 < 0:
                next_e9 = size
        p = next_e8 if next_e8 < next_e9 else next_e9
        if p >= limit:
            return buf
        d = p - pos
        pos = p
        if d > 2:
            mask = 0
        else:
            mask >>= d
            if mask != 0 and (mask > 4 or mask == 3 or _test_ms_byte(buf[p + (mask >> 1) + 1])):
                mask = (mask >> 1) | 4
                pos += 1
                continue
        if _test_ms_byte(buf[p + 4]):
            v = buf[p + 1] | (buf[p + 2] << 8) | (buf[p + 3] << 16) | (buf[p + 4] << 24)
            cur = (ip + pos) & 0xFFFFFFFF
            pos += 5
            v = (v - cur) & 0xFFFFFFFF
            if mask != 0:
                sh = (mask & 6) << 2
                if _test_ms_byte((v >> sh) & 0xFF):
                    v ^= ((0x100 << sh) - 1)
                    v = (v - cur) & 0xFFFFFFFF
                mask = 0
            buf[p + 1] = v & 0xFF
            buf[p + 2] = (v >> 8) & 0xFF
            buf[p + 3] = (v >> 16) & 0xFF
            buf[p + 4] = (0 - ((v >> 24) & 1)) & 0xFF
        else:
            mask = (mask >> 1) | 4
            pos += 1


def lzma_x86_decompress(payload: bytes | memoryview, limit: int) -> bytes:
    """gLzmaF86CustomDecompressGuid: LZMA, then the x86 BCJ decoder over the whole output."""
    return bytes(bcj_x86_decode(lzma_decompress(payload, limit)))


# -- Brotli ---------------------------------------------------------------------------------

def brotli_decompress(payload: bytes | memoryview, limit: int) -> bytes:
    """edk2 Brotli payload: UINT64 decoded size, UINT64 scratch size, then the stream at 0x10."""
    import brotli  # imported here: only images with Brotli sections pay for it

    if len(payload) < BROTLI_HEADER_SIZE:
        raise CompressionError(f"Brotli header needs {BROTLI_HEADER_SIZE} bytes, {len(payload)} present")
    (declared,) = struct.unpack_from("<Q", payload, 0)
    if declared > limit:
        raise OverLimit(f"Brotli header declares 0x{declared:x} bytes, over the 0x{limit:x}-byte limit")
    dec = brotli.Decompressor()
    try:
        # output_buffer_limit stops the buffer growing past declared + 1: a stream holding
        # more than it says is caught without inflating it.
        out = dec.process(bytes(payload[BROTLI_HEADER_SIZE:]), output_buffer_limit=declared + 1)
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
