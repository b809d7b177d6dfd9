"""`fwinspect mrtd` reads only the OVMF GUIDed table and the TDVF descriptor: the VMM measures
section bytes straight from the image file (QEMU hw/i386/tdx.c; TDVF design guide, "TDVF
metadata"), so the compressed firmware volume never needs inflating."""
from __future__ import annotations

import lzma
import struct
import subprocess
import sys
import uuid
from pathlib import Path

from decoders.mrtd import compute_mrtd, image_tdx_metadata
from decoders.ovmf.metadata import tdx_sections
from inspector.cli import main
from tests.realdata import bookworm

# edk2 MdePkg/Include/Guid/LzmaDecompress.h: LZMA_CUSTOM_DECOMPRESS_GUID
LZMA_GUID = uuid.UUID("ee4e5898-3914-4259-9d6e-dc7bd79403cf").bytes_le
EFI_SECTION_GUID_DEFINED = 0x02
# PI vol 3, EFI_GUID_DEFINED_SECTION: EFI_COMMON_SECTION_HEADER (UINT8 Size[3], UINT8 Type),
# EFI_GUID SectionDefinitionGuid, UINT16 DataOffset, UINT16 Attributes.
GUID_DEFINED_SECTION = struct.Struct("<3sB16sHH")


def lzma_payload(image: bytes) -> tuple[int, int]:
    """(start, end) of the first LZMA GUID-defined section's payload, from its section header."""
    at = image.index(LZMA_GUID) - 4
    size3, kind, guid, data_offset, _attributes = GUID_DEFINED_SECTION.unpack_from(image, at)
    assert kind == EFI_SECTION_GUID_DEFINED and guid == LZMA_GUID
    return at + data_offset, at + int.from_bytes(size3, "little")


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "inspector.cli", *args], capture_output=True, text=True,
                          timeout=120, cwd=Path(__file__).resolve().parents[2])


def test_mrtd_of_image_with_corrupt_lzma_section_hashes_its_bytes_without_problems(tmp_path):
    intact = bookworm("OVMF.fd")
    image = bytearray(intact.read_bytes())
    start, end = lzma_payload(image)
    # Past the 13-byte LZMA header (properties, dictionary size, uncompressed size): the stream
    # itself, so the header still reads as LZMA and only the inflate fails.
    middle = start + (end - start) // 2
    image[middle:middle + 64] = bytes(b ^ 0xFF for b in image[middle:middle + 64])
    try:
        lzma.decompress(bytes(image[start:end]), format=lzma.FORMAT_ALONE)
        inflated = True
    except (lzma.LZMAError, EOFError):
        inflated = False
    assert not inflated, "the flipped bytes should break the LZMA stream"
    corrupt = tmp_path / "OVMF.fd"
    corrupt.write_bytes(image)

    # The LZMA section sits inside the boot firmware volume, which the TDVF descriptor has
    # MR.EXTENDed (edk2 OvmfPkg/ResetVector/X64/IntelTdxMetadata.asm, the BFV section), so its
    # bytes are hashed as they are: the digest changes, but nothing else does, and nothing is
    # refused or reported for the broken stream.
    sections = tdx_sections(image_tdx_metadata(intact.read_bytes(), intact.name))
    for args in ((), ("--order", "both", "--json")):
        want = run_cli("mrtd", str(intact), *args)
        got = run_cli("mrtd", str(corrupt), *args)
        assert (got.returncode, got.stderr) == (want.returncode, want.stderr) == (0, "")
        want_stdout = want.stdout
        for order in ("per-page", "two-pass") if args else ("per-page",):
            old, new = (compute_mrtd(b, sections, order=order).hex for b in (intact.read_bytes(), bytes(image)))
            assert old in want.stdout and new in got.stdout and old != new
            want_stdout = want_stdout.replace(old, new).replace(old[:16], new[:16])
        assert got.stdout == want_stdout


def test_mrtd_command_inflates_nothing(monkeypatch, capsys):
    made = []
    real = lzma.LZMADecompressor

    def spy(*a, **kw):
        made.append(kw)
        return real(*a, **kw)

    monkeypatch.setattr(lzma, "LZMADecompressor", spy)
    monkeypatch.setattr(lzma, "decompress", lambda *a, **kw: made.append(kw) or real(**kw).decompress(a[0]))
    assert main(["mrtd", str(bookworm("OVMF.fd"))]) == 0
    assert "per-page" in capsys.readouterr().out
    assert made == []
