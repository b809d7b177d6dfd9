"""x86 BCJ *encoder*: the LZMA SDK's `Bra86.c` `x86_Convert(..., encoding=1)`, as edk2's
`LzmaF86Compress` runs it (ip 0, state 0) before LZMA-compressing a D42AE6BD section
(`BaseTools/Source/C/LzmaCompress/LzmaCompress.c`: `x86_Convert_Init(x86State);
x86_Convert(Buffer, InputSize, 0, &x86State, 1)`).

The filter turns relative CALL/JMP (E8/E9) targets into absolute ones so that LZMA finds
more repeats; the decoder turns them back.
"""
from __future__ import annotations

_MASK_TO_ALLOWED = (1, 1, 1, 0, 1, 0, 0, 0)
_MASK_TO_BIT_NUMBER = (0, 1, 2, 2, 3, 3, 3, 3)


def _test_ms_byte(b: int) -> bool:
    return b == 0 or b == 0xFF


def x86_convert(buf: bytes, encoding: bool = True, ip: int = 0) -> bytes:
    """Return `buf` converted (the tail shorter than 5 bytes is left as is, as Bra86.c does)."""
    data = bytearray(buf)
    size = len(data)
    if size < 5:
        return bytes(data)
    ip = (ip + 5) & 0xFFFFFFFF
    prev_mask = 0
    prev_pos = -1  # (SizeT)0 - 1
    pos = 0
    limit = size - 4
    while True:
        # find the next E8/E9 opcode byte
        while pos < limit and (data[pos] & 0xFE) != 0xE8:
            pos += 1
        if pos >= limit:
            break
        d = pos - prev_pos
        if d > 3:
            prev_mask = 0
        else:
            prev_mask = (prev_mask << (d - 1)) & 7
            if prev_mask:
                b = data[pos + 4 - _MASK_TO_BIT_NUMBER[prev_mask]]
                if not _MASK_TO_ALLOWED[prev_mask] or _test_ms_byte(b):
                    prev_pos = pos
                    prev_mask = ((prev_mask << 1) & 7) | 1
                    pos += 1
                    continue
        prev_pos = pos
        if _test_ms_byte(data[pos + 4]):
            src = int.from_bytes(data[pos + 1:pos + 5], "little")
            while True:
                if encoding:
                    dest = (ip + pos + src) & 0xFFFFFFFF
                else:
                    dest = (src - (ip + pos)) & 0xFFFFFFFF
                if prev_mask == 0:
                    break
                index = _MASK_TO_BIT_NUMBER[prev_mask] * 8
                b = (dest >> (24 - index)) & 0xFF
                if not _test_ms_byte(b):
                    break
                src = dest ^ ((1 << (32 - index)) - 1)
            data[pos + 4] = 0xFF if (dest >> 24) & 1 else 0x00  # ~(((dest >> 24) & 1) - 1)
            data[pos + 1:pos + 4] = (dest & 0xFFFFFF).to_bytes(3, "little")
            pos += 5
        else:
            prev_mask = ((prev_mask << 1) & 7) | 1
            pos += 1
    return bytes(data)


def encode(buf: bytes) -> bytes:
    return x86_convert(buf, encoding=True)


def decode(buf: bytes) -> bytes:
    return x86_convert(buf, encoding=False)
