"""inspector.imagefile: the bounded read of an image file, and the LZMA sections inflated on a
thread while the decoders load. The early bytes may only ever replace the decoder's own inflation
of the same section: the decoded tree is the same with and without them, on real and hostile input.

Sections are packed with struct from PI 1.8 vol 3, 3.2.5.9 (EFI_GUID_DEFINED_SECTION: Size UINT24,
Type UINT8 = 0x02, SectionDefinitionGuid, DataOffset UINT16, Attributes UINT16) with an LZMA payload
as edk2's LzmaCompress writes it (5 property bytes, UINT64 uncompressed size, the stream).
"""
from __future__ import annotations

import json
import lzma
import struct
import uuid

from decoders.fd import decode_image
from inspector.imagefile import MAX_EARLY_BYTES, EarlyLzma, lzma_sections
from tests.realdata import bookworm

LZMA_GUID = uuid.UUID("ee4e5898-3914-4259-9d6e-dc7bd79403cf")
EFI_GUIDED_SECTION_PROCESSING_REQUIRED = 0x01


def lzma_payload(plain: bytes, declared: int | None = None) -> bytes:
    stream = lzma.compress(plain, format=lzma.FORMAT_ALONE, filters=[{"id": lzma.FILTER_LZMA1}])
    # Python writes the size as unknown (all ones); edk2's header carries the real one.
    size = len(plain) if declared is None else declared
    return stream[:5] + struct.pack("<Q", size) + stream[13:]


def guided_section(payload: bytes) -> bytes:
    header = 4 + 16 + 2 + 2
    size = header + len(payload)
    return (struct.pack("<I", size | 0x02 << 24)[:4] + LZMA_GUID.bytes_le
            + struct.pack("<HH", header, EFI_GUIDED_SECTION_PROCESSING_REQUIRED) + payload)


def test_sections_found_by_header_with_their_payload_and_declared_size():
    plain = bytes(range(256)) * 64
    blob = b"\xff" * 100 + guided_section(lzma_payload(plain)) + b"\xff" * 12
    assert lzma_sections(blob) == [(100 + 24, len(blob) - 12, len(plain))]


def test_a_guid_that_is_not_a_guided_section_header_is_passed_over():
    blob = b"\0" * 4 + LZMA_GUID.bytes_le + b"\0" * 64       # type byte 0, DataOffset 0
    assert lzma_sections(blob) == []


def test_declared_sizes_past_the_early_budget_are_left_to_the_decoder():
    blob = guided_section(lzma_payload(b"x" * 100, declared=MAX_EARLY_BYTES + 1))
    assert lzma_sections(blob) == []


def test_early_bytes_are_handed_over_once_and_only_for_the_same_buffer():
    plain = b"fwinspect" * 1000
    blob = guided_section(lzma_payload(plain))
    early = EarlyLzma(blob)
    assert early.get(bytes(bytearray(blob)), 24) is None       # an equal but other buffer
    assert early.get(blob, 24) == plain
    assert early.get(blob, 24) is None              # handed over once


def test_a_header_that_declares_more_than_the_stream_holds_gives_nothing_early():
    blob = guided_section(lzma_payload(b"short", declared=4096))
    assert EarlyLzma(blob).get(blob, 24) is None


def _tree(data: bytes, early: EarlyLzma | None) -> str:
    return json.dumps(decode_image(data, name="x", predecoded=early.get if early else None).to_json())


def test_debian_ovmf_decodes_to_the_same_tree_with_its_lzma_inflated_early():
    data = bookworm("OVMF.fd").read_bytes()
    early = EarlyLzma(data)
    assert [s[2] for s in lzma_sections(data)] == [13500560]   # FVMAIN_COMPACT's one LZMA section
    assert _tree(data, early) == _tree(data, None)


def test_a_lying_header_is_decoded_and_reported_as_without_early_bytes():
    # Declares 4 KiB, holds 5 bytes: the decoder reports it; nothing early stands in for it.
    data = b"\xff" * 64 + guided_section(lzma_payload(b"short", declared=4096))
    assert _tree(data, EarlyLzma(data)) == _tree(data, None)
