"""decoders.layout records as the FD and PE decoders declare them, checked against records packed
by hand with `struct.pack` from the specifications' layouts (not with Layout.build, which shares the
declarations): PI 1.8 vol 3 and edk2 MdePkg/Include/Pi/PiFirmwareVolume.h, PiFirmwareFile.h; the
PE/COFF specification ("PE Format") and edk2 MdePkg/Include/IndustryStandard/PeImage.h.

Every member gets a value no other member has, with every byte of it naming the member, so a member
read at the wrong offset, with the wrong width or under another member's name shows up as a wrong value.
"""
from __future__ import annotations

import struct
import uuid

import pytest

from decoders import guids
from decoders.errors import DecodeError
from decoders.fd import structs as F
from decoders.layout import Layout
from decoders.model import Node
from decoders.pe import structs as P

# The specifications' layouts as (member, struct code), in order; "G" is an EFI_GUID (16 bytes,
# UEFI 2.10 Appendix A), "U24" a UINT8 Size[3] read as a little-endian integer.
SPEC = {
    # PiFirmwareVolume.h EFI_FIRMWARE_VOLUME_HEADER, without BlockMap[] (0x38 bytes).
    F.EFI_FIRMWARE_VOLUME_HEADER: [
        ("ZeroVector", "16s"), ("FileSystemGuid", "G"), ("FvLength", "Q"), ("Signature", "4s"),
        ("Attributes", "I"), ("HeaderLength", "H"), ("Checksum", "H"), ("ExtHeaderOffset", "H"),
        ("Reserved", "B"), ("Revision", "B")],
    F.EFI_FV_BLOCK_MAP_ENTRY: [("NumBlocks", "I"), ("Length", "I")],
    F.EFI_FIRMWARE_VOLUME_EXT_HEADER: [("FvName", "G"), ("ExtHeaderSize", "I")],
    F.EFI_FIRMWARE_VOLUME_EXT_ENTRY: [("ExtEntrySize", "H"), ("ExtEntryType", "H")],
    # PiFirmwareFile.h EFI_FFS_FILE_HEADER: IntegrityCheck is a union whose Checksum struct holds
    # the Header and File checksum bytes; Size is UINT8[3].
    F.EFI_FFS_FILE_HEADER: [
        ("Name", "G"), ("IntegrityCheck.Header", "B"), ("IntegrityCheck.File", "B"), ("Type", "B"),
        ("Attributes", "B"), ("Size", "U24"), ("State", "B")],
    F.EFI_FFS_FILE_HEADER2: [
        ("Name", "G"), ("IntegrityCheck.Header", "B"), ("IntegrityCheck.File", "B"), ("Type", "B"),
        ("Attributes", "B"), ("Size", "U24"), ("State", "B"), ("ExtendedSize", "Q")],
    F.EFI_COMMON_SECTION_HEADER: [("Size", "U24"), ("Type", "B")],
    F.EFI_COMMON_SECTION_HEADER2: [("Size", "U24"), ("Type", "B"), ("ExtendedSize", "I")],
    # EFI_COMPRESSION_SECTION, EFI_GUID_DEFINED_SECTION, EFI_VERSION_SECTION and
    # EFI_FREEFORM_SUBTYPE_GUID_SECTION after their EFI_COMMON_SECTION_HEADER.
    F.EFI_COMPRESSION_SECTION_TAIL: [("UncompressedLength", "I"), ("CompressionType", "B")],
    F.EFI_GUID_DEFINED_SECTION_TAIL: [("SectionDefinitionGuid", "G"), ("DataOffset", "H"), ("Attributes", "H")],
    F.EFI_VERSION_SECTION_TAIL: [("BuildNumber", "H")],
    F.EFI_FREEFORM_SUBTYPE_GUID_SECTION_TAIL: [("SubTypeGuid", "G")],
    # MdePkg/Include/Guid/WinCertificate.h WIN_CERTIFICATE.
    F.WIN_CERTIFICATE: [("dwLength", "I"), ("wRevision", "H"), ("wCertificateType", "H")],
    # The EXT_ENTRY tails after EFI_FIRMWARE_VOLUME_EXT_ENTRY (PiFirmwareVolume.h
    # EFI_FIRMWARE_VOLUME_EXT_ENTRY_OEM_TYPE, _GUID_TYPE, _USED_SIZE_TYPE).
    F.EXT_ENTRY_OEM_TYPE_TAIL: [("TypeMask", "I")],
    F.EXT_ENTRY_GUID_TYPE_TAIL: [("FormatType", "G")],
    F.EXT_ENTRY_USED_SIZE_TYPE_TAIL: [("UsedSize", "I")],
    # CRC32_SECTION_HEADER after its EFI_GUID_DEFINED_SECTION; WIN_CERTIFICATE_UEFI_GUID after
    # its WIN_CERTIFICATE.
    F.CRC32_SECTION_TAIL: [("CRC32Checksum", "I")],
    F.WIN_CERTIFICATE_UEFI_GUID_TAIL: [("CertType", "G")],
    # LzmaDecompress.c: 5 property bytes, then the UINT64 decoded size.
    F.LZMA_HEADER: [("Properties", "5s"), ("DecodedSize", "Q")],
    # BrotliDecompressLibInternal.h: the UINT64 decoded size, then the UINT64 scratch size.
    F.BROTLI_HEADER: [("DecodedSize", "Q"), ("ScratchSize", "Q")],
    # BaseUefiDecompressLib UefiDecompressGetInfo: UINT32 compressed size, UINT32 original size.
    F.EFI_COMPRESSED_HEADER: [("CompSize", "I"), ("OrigSize", "I")],
    # PE/COFF "Optional Header Data Directories": VirtualAddress, Size.
    P.EFI_IMAGE_DATA_DIRECTORY: [("VirtualAddress", "I"), ("Size", "I")],
    # PE/COFF "COFF File Header" (20 bytes).
    P.EFI_IMAGE_FILE_HEADER: [
        ("Machine", "H"), ("NumberOfSections", "H"), ("TimeDateStamp", "I"), ("PointerToSymbolTable", "I"),
        ("NumberOfSymbols", "I"), ("SizeOfOptionalHeader", "H"), ("Characteristics", "H")],
    # PE/COFF "Optional Header": standard fields, then Windows-specific fields to
    # NumberOfRvaAndSizes (PE32: 96 bytes, with BaseOfData; PE32+: 112 bytes, 8-byte ImageBase and
    # stack and heap sizes).
    P.EFI_IMAGE_OPTIONAL_HEADER32: [
        ("Magic", "H"), ("MajorLinkerVersion", "B"), ("MinorLinkerVersion", "B"), ("SizeOfCode", "I"),
        ("SizeOfInitializedData", "I"), ("SizeOfUninitializedData", "I"), ("AddressOfEntryPoint", "I"),
        ("BaseOfCode", "I"), ("BaseOfData", "I"), ("ImageBase", "I"), ("SectionAlignment", "I"),
        ("FileAlignment", "I"), ("MajorOperatingSystemVersion", "H"), ("MinorOperatingSystemVersion", "H"),
        ("MajorImageVersion", "H"), ("MinorImageVersion", "H"), ("MajorSubsystemVersion", "H"),
        ("MinorSubsystemVersion", "H"), ("Win32VersionValue", "I"), ("SizeOfImage", "I"),
        ("SizeOfHeaders", "I"), ("CheckSum", "I"), ("Subsystem", "H"), ("DllCharacteristics", "H"),
        ("SizeOfStackReserve", "I"), ("SizeOfStackCommit", "I"), ("SizeOfHeapReserve", "I"),
        ("SizeOfHeapCommit", "I"), ("LoaderFlags", "I"), ("NumberOfRvaAndSizes", "I")],
    P.EFI_IMAGE_OPTIONAL_HEADER64: [
        ("Magic", "H"), ("MajorLinkerVersion", "B"), ("MinorLinkerVersion", "B"), ("SizeOfCode", "I"),
        ("SizeOfInitializedData", "I"), ("SizeOfUninitializedData", "I"), ("AddressOfEntryPoint", "I"),
        ("BaseOfCode", "I"), ("ImageBase", "Q"), ("SectionAlignment", "I"), ("FileAlignment", "I"),
        ("MajorOperatingSystemVersion", "H"), ("MinorOperatingSystemVersion", "H"), ("MajorImageVersion", "H"),
        ("MinorImageVersion", "H"), ("MajorSubsystemVersion", "H"), ("MinorSubsystemVersion", "H"),
        ("Win32VersionValue", "I"), ("SizeOfImage", "I"), ("SizeOfHeaders", "I"), ("CheckSum", "I"),
        ("Subsystem", "H"), ("DllCharacteristics", "H"), ("SizeOfStackReserve", "Q"), ("SizeOfStackCommit", "Q"),
        ("SizeOfHeapReserve", "Q"), ("SizeOfHeapCommit", "Q"), ("LoaderFlags", "I"), ("NumberOfRvaAndSizes", "I")],
    # PE/COFF "Section Table" (40 bytes); PeImage.h names Misc.VirtualSize VirtualSize.
    P.EFI_IMAGE_SECTION_HEADER: [
        ("Name", "8s"), ("VirtualSize", "I"), ("VirtualAddress", "I"), ("SizeOfRawData", "I"),
        ("PointerToRawData", "I"), ("PointerToRelocations", "I"), ("PointerToLinenumbers", "I"),
        ("NumberOfRelocations", "H"), ("NumberOfLinenumbers", "H"), ("Characteristics", "I")],
    # PE/COFF "Debug Directory" (28 bytes); PeImage.h names AddressOfRawData RVA and
    # PointerToRawData FileOffset.
    P.EFI_IMAGE_DEBUG_DIRECTORY_ENTRY: [
        ("Characteristics", "I"), ("TimeDateStamp", "I"), ("MajorVersion", "H"), ("MinorVersion", "H"),
        ("Type", "I"), ("SizeOfData", "I"), ("RVA", "I"), ("FileOffset", "I")],
}

# Offsets the PE/COFF specification's tables give, for the transcription above.
PE_OFFSETS = {
    P.EFI_IMAGE_OPTIONAL_HEADER32: {"BaseOfData": 24, "ImageBase": 28, "SectionAlignment": 32, "FileAlignment": 36,
                                    "SizeOfImage": 56, "Subsystem": 68, "SizeOfStackReserve": 72,
                                    "NumberOfRvaAndSizes": 92},
    P.EFI_IMAGE_OPTIONAL_HEADER64: {"ImageBase": 24, "SectionAlignment": 32, "FileAlignment": 36,
                                    "SizeOfImage": 56, "Subsystem": 68, "SizeOfStackReserve": 72,
                                    "LoaderFlags": 104, "NumberOfRvaAndSizes": 108},
    P.EFI_IMAGE_SECTION_HEADER: {"VirtualSize": 8, "PointerToRawData": 20, "NumberOfRelocations": 32,
                                 "Characteristics": 36},
}
SIZES = {
    F.EFI_FIRMWARE_VOLUME_HEADER: F.FV_HEADER_SIZE, F.EFI_FV_BLOCK_MAP_ENTRY: F.BLOCK_MAP_ENTRY_SIZE,
    F.EFI_FIRMWARE_VOLUME_EXT_HEADER: F.FV_EXT_HEADER_SIZE, F.EFI_FIRMWARE_VOLUME_EXT_ENTRY: F.FV_EXT_ENTRY_SIZE,
    F.EFI_FFS_FILE_HEADER: F.FFS_HEADER_SIZE, F.EFI_FFS_FILE_HEADER2: F.FFS_HEADER2_SIZE,
    F.EFI_COMMON_SECTION_HEADER: F.SECTION_HEADER_SIZE, F.EFI_COMMON_SECTION_HEADER2: F.SECTION_HEADER2_SIZE,
    F.EFI_COMPRESSION_SECTION_TAIL: F.COMPRESSION_TAIL_SIZE, F.EFI_GUID_DEFINED_SECTION_TAIL: F.GUID_DEFINED_TAIL_SIZE,
    F.WIN_CERTIFICATE: F.WIN_CERTIFICATE_SIZE, F.LZMA_HEADER: F.LZMA_HEADER_SIZE,
    F.BROTLI_HEADER: F.BROTLI_HEADER_SIZE, F.EFI_COMPRESSED_HEADER: F.EFI_COMPRESSED_HEADER_SIZE,
    P.EFI_IMAGE_DOS_HEADER: 64, P.EFI_IMAGE_FILE_HEADER: 20, P.EFI_IMAGE_OPTIONAL_HEADER32: 96,
    P.EFI_IMAGE_OPTIONAL_HEADER64: 112, P.EFI_IMAGE_SECTION_HEADER: P.EFI_IMAGE_SIZEOF_SECTION_HEADER,
    P.EFI_TE_IMAGE_HEADER: 40, P.EFI_IMAGE_DEBUG_DIRECTORY_ENTRY: 28,
}


def distinct(layout_spec: list[tuple[str, str]]) -> tuple[bytes, dict[str, object], dict[str, int]]:
    """The record packed by hand with member i's bytes all 0x10 + i: (bytes, {name: the value it
    must read as}, {name: offset})."""
    raw, values, offsets = b"", {}, {}
    for i, (name, code) in enumerate(layout_spec):
        offsets[name] = len(raw)
        byte = 0x10 + i
        if code == "G":
            piece = bytes([byte]) * 16
            values[name] = uuid.UUID(bytes_le=piece)
        elif code == "U24":
            piece = bytes([byte]) * 3
            values[name] = byte * 0x010101
        elif code.endswith("s"):
            piece = bytes([byte]) * int(code[:-1])
            values[name] = piece
        else:
            width = struct.calcsize("<" + code)
            values[name] = int.from_bytes(bytes([byte]) * width, "little")
            piece = struct.pack("<" + code, values[name])
        raw += piece
    return raw, values, offsets


def fields(node: Node) -> list[tuple]:
    return [(f.name, f.value, f.offset, f.size, f.display) for f in node.fields]


@pytest.mark.parametrize("layout", list(SPEC), ids=lambda layout: layout.name)
def test_read_gives_each_member_at_its_spec_offset(layout):
    raw, values, offsets = distinct(SPEC[layout])
    assert layout.size == len(raw)
    data = b"\xee" * 5 + raw + b"\xee" * 3
    assert layout.read(data, 5) == values
    assert list(layout.read(data, 5)) == [name for name, _ in SPEC[layout]]
    assert vars(layout.parse(data, 5)) == values
    node = Node("x", "x")
    assert layout.add_fields(node, values, 0x1000) == 0x1000 + len(raw)
    assert [(f.name, f.offset - 0x1000) for f in node.fields] == list(offsets.items())


@pytest.mark.parametrize("layout", list(PE_OFFSETS), ids=lambda layout: layout.name)
def test_pe_members_sit_where_the_pe_coff_spec_puts_them(layout):
    _, _, offsets = distinct(SPEC[layout])
    for name, want in PE_OFFSETS[layout].items():
        assert offsets[name] == want, name
    node = Node("x", "x")
    layout.add_fields(node, layout.read(bytes(layout.size)), 0)
    at = {f.name: f.offset for f in node.fields}
    for name, want in PE_OFFSETS[layout].items():
        assert at[name] == want, name


@pytest.mark.parametrize("layout", list(SIZES), ids=lambda layout: layout.name)
def test_sizes_are_the_headers_sizes(layout):
    assert layout.size == layout.sizeof() == SIZES[layout]


def test_ffs_file_header_by_hand():
    """PI vol 3 3.2.3 EFI_FFS_FILE_HEADER: Name, IntegrityCheck.Checksum {Header, File}, Type,
    Attributes, Size[3], State."""
    name = uuid.UUID("7cb8bdc9-f8eb-4f34-aaea-3ee4af6516a1")
    raw = name.bytes_le + struct.pack("<BBBB", 0xA1, 0xB2, 0x07, 0x40) + (0x123456).to_bytes(3, "little") + b"\x07"
    h = F.EFI_FFS_FILE_HEADER.read(raw)
    assert h == {"Name": name, "IntegrityCheck.Header": 0xA1, "IntegrityCheck.File": 0xB2, "Type": 0x07,
                 "Attributes": 0x40, "Size": 0x123456, "State": 0x07}
    h2 = F.EFI_FFS_FILE_HEADER2.read(raw[:0x14] + b"\xff\xff\xff" + raw[0x17:] + struct.pack("<Q", 0x1_0000_0020))
    assert h2["Size"] == 0xFFFFFF and h2["ExtendedSize"] == 0x1_0000_0020


def test_section_header_size_is_24_bits():
    """EFI_COMMON_SECTION_HEADER: UINT8 Size[3] (little-endian), UINT8 Type."""
    assert F.EFI_COMMON_SECTION_HEADER.read(b"\x01\x02\x03\x19") == {"Size": 0x030201, "Type": 0x19}
    assert F.EFI_COMMON_SECTION_HEADER2.read(b"\xff\xff\xff\x10" + struct.pack("<I", 0x01000008)) == {
        "Size": 0xFFFFFF, "Type": 0x10, "ExtendedSize": 0x01000008}


def test_dos_header_reserved_words_are_counted_lists():
    """PeImage.h EFI_IMAGE_DOS_HEADER: 14 UINT16s, e_res[4], e_oemid, e_oeminfo, e_res2[10],
    e_lfanew (UINT32 at 0x3C)."""
    words = list(range(0x100, 0x100 + 14))
    raw = struct.pack("<14H4HHH10HI", *words, 0x201, 0x202, 0x203, 0x204, 0x301, 0x302,
                      *range(0x401, 0x40B), 0x80)
    dos = P.EFI_IMAGE_DOS_HEADER.read(raw)
    assert dos["e_magic"] == 0x100 and dos["e_ovno"] == 0x10D
    assert dos["e_res"] == [0x201, 0x202, 0x203, 0x204]
    assert (dos["e_oemid"], dos["e_oeminfo"]) == (0x301, 0x302)
    assert dos["e_res2"] == list(range(0x401, 0x40B))
    assert dos["e_lfanew"] == 0x80
    node = Node("x", "x")
    P.EFI_IMAGE_DOS_HEADER.add_fields(node, dos, 0, only=("e_res", "e_lfanew"))
    assert fields(node) == [("e_res", [0x201, 0x202, 0x203, 0x204], 0x1C, 8, None), ("e_lfanew", 0x80, 0x3C, 4, None)]


def test_te_header_data_directory_is_a_list_of_records():
    """PI vol 1 / PeImage.h EFI_TE_IMAGE_HEADER: Signature, Machine, NumberOfSections (UINT8),
    Subsystem (UINT8), StrippedSize, AddressOfEntryPoint, BaseOfCode, ImageBase (UINT64),
    DataDirectory[2] of {VirtualAddress, Size}: [0] BASERELOC, [1] DEBUG."""
    raw = struct.pack("<HHBBHIIQIIII", 0x5A56, 0x8664, 5, 11, 0x1E8, 0x1234, 0x260, 0xFFF00000,
                      0x5000, 0x40, 0x3000, 0x1C)
    te = P.EFI_TE_IMAGE_HEADER.read(raw)
    assert te == {"Signature": 0x5A56, "Machine": 0x8664, "NumberOfSections": 5, "Subsystem": 11,
                  "StrippedSize": 0x1E8, "AddressOfEntryPoint": 0x1234, "BaseOfCode": 0x260, "ImageBase": 0xFFF00000,
                  "DataDirectory": [{"VirtualAddress": 0x5000, "Size": 0x40}, {"VirtualAddress": 0x3000, "Size": 0x1C}]}
    assert P.EFI_IMAGE_DATA_DIRECTORY.format == "<II"


def test_codeview_records_and_their_signatures():
    """PeImage.h CodeView records: "RSDS", the PDB GUID, its age; "NB10" and three UINT32s; "MTOC"
    and a Mach-O UUID."""
    pdb = uuid.UUID("12345678-9abc-def0-0123-456789abcdef")
    raw = b"RSDS" + pdb.bytes_le + struct.pack("<I", 3)
    assert P.EFI_IMAGE_DEBUG_CODEVIEW_RSDS_ENTRY.read(raw) == {"Signature": b"RSDS", "Guid": pdb, "Age": 3}
    assert P.EFI_IMAGE_DEBUG_CODEVIEW_NB10_ENTRY.read(b"NB10" + struct.pack("<III", 1, 2, 3)) == {
        "Signature": b"NB10", "Unknown": 1, "Unknown2": 2, "Unknown3": 3}
    assert P.EFI_IMAGE_DEBUG_CODEVIEW_MTOC_ENTRY.read(b"MTOC" + bytes(range(16))) == {
        "Signature": b"MTOC", "MachOUuid": bytes(range(16))}


def test_wrong_signature_is_a_located_const_error():
    raw = b"\0" * 6 + b"RSDX" + bytes(20)
    with pytest.raises(DecodeError) as e:
        P.EFI_IMAGE_DEBUG_CODEVIEW_RSDS_ENTRY.read(raw, 6)
    assert e.value.offset == 6
    assert e.value.message == "EFI_IMAGE_DEBUG_CODEVIEW_RSDS_ENTRY: ConstError"
    assert e.value.path == "(parsing) -> Signature"
    with pytest.raises(DecodeError) as e:
        P.EFI_IMAGE_DEBUG_CODEVIEW_NB10_ENTRY.read(b"RSDS" + bytes(12), 0, "CodeView")
    assert (e.value.offset, e.value.message) == (0, "CodeView: ConstError")


@pytest.mark.parametrize("layout", [F.EFI_FFS_FILE_HEADER, P.EFI_IMAGE_OPTIONAL_HEADER64, P.EFI_TE_IMAGE_HEADER],
                         ids=lambda layout: layout.name)
def test_short_input_and_offset_past_the_end_are_located_errors(layout):
    data = bytes(layout.size + 3)
    for offset in (4, layout.size + 3):
        with pytest.raises(DecodeError) as e:
            layout.read(data, offset)
        assert e.value.offset == offset
        assert str(e.value) == f"{layout.name}: needs {layout.size} bytes, {len(data) - offset} left at 0x{offset:x}"
    with pytest.raises(DecodeError) as e:
        layout.read(data, 5, "the header")
    assert e.value.message == f"the header: needs {layout.size} bytes, {layout.size - 2} left"
    for offset in (layout.size + 4, -1):
        with pytest.raises(DecodeError) as e:
            layout.read(data, offset)
        assert e.value.offset == offset
        assert e.value.message == f"{layout.name}: offset past the end of a {len(data)}-byte buffer"


@pytest.mark.parametrize("layout", [F.EFI_FFS_FILE_HEADER, P.EFI_IMAGE_OPTIONAL_HEADER64], ids=lambda layout: layout.name)
def test_parse_raises_the_same_located_errors_as_read(layout):
    data = bytes(layout.size + 3)
    for offset, what in ((4, None), (5, "the header"), (layout.size + 4, None), (-1, None)):
        with pytest.raises(DecodeError) as want:
            layout.read(data, offset, what)
        with pytest.raises(DecodeError) as got:
            layout.parse(data, offset, what)
        assert (got.value.offset, str(got.value)) == (want.value.offset, str(want.value))


def test_add_fields_tuples_guid_display_prefix_skip_only_displays():
    fv = uuid.UUID("7cb8bdc9-f8eb-4f34-aaea-3ee4af6516a1")
    raw = fv.bytes_le + struct.pack("<I", 0x48)
    values = F.EFI_FIRMWARE_VOLUME_EXT_HEADER.read(raw)
    node = Node("x", "x")
    assert F.EFI_FIRMWARE_VOLUME_EXT_HEADER.add_fields(node, values, 0x200) == 0x214
    assert fields(node) == [("FvName", fv, 0x200, 16, guids.describe(fv)), ("ExtHeaderSize", 0x48, 0x210, 4, None)]

    cert = F.WIN_CERTIFICATE.read(struct.pack("<IHH", 0x230, 0x0200, 0x0EF1))
    node = Node("x", "x")
    F.WIN_CERTIFICATE.add_fields(node, cert, 0x40, prefix="Certificate.", skip=("wRevision",),
                                 displays={"Certificate.wCertificateType": lambda v: f"type 0x{v:x}",
                                           "Certificate.dwLength": "length"})
    assert fields(node) == [("Certificate.dwLength", 0x230, 0x40, 4, "length"),
                            ("Certificate.wCertificateType", 0x0EF1, 0x46, 2, "type 0xef1")]

    node = Node("x", "x")
    F.WIN_CERTIFICATE.add_fields(node, cert, 0, prefix="C.", only=("C.wRevision",))
    assert fields(node) == [("C.wRevision", 0x0200, 4, 2, None)]


def test_add_fields_names_table_display():
    record = Layout("RECORD", ("Kind", "H", {1: "ONE", 2: "TWO"}), ("Count", "B"))
    node = Node("x", "x")
    record.add_fields(node, record.read(struct.pack("<HB", 2, 9)), 0x10)
    record.add_fields(node, record.read(struct.pack("<HB", 0x1C, 9)), 0x20, only=("Kind",))
    record.add_fields(node, record.read(struct.pack("<HB", 1, 9)), 0x30, only=("Kind",), displays={"Kind": "mine"})
    assert fields(node) == [("Kind", 2, 0x10, 2, "TWO"), ("Count", 9, 0x12, 1, None),
                            ("Kind", 0x1C, 0x20, 2, "0x1c (unknown)"), ("Kind", 1, 0x30, 2, "mine")]


def test_nested_record_and_padding():
    """A nested record member is one value, a dict of its members (an EFI_TIME in a variable header);
    unnamed "Nx" members are padding."""
    inner = Layout("INNER", ("Year", "H"), ("Month", "B"))
    outer = Layout("OUTER", ("Tag", "B"), (None, "1x"), ("When", inner), ("Tail", "I"))
    raw = struct.pack("<BxHBI", 7, 2024, 12, 0xCAFE)
    assert outer.size == len(raw) == 9
    assert outer.read(raw) == {"Tag": 7, "When": {"Year": 2024, "Month": 12}, "Tail": 0xCAFE}
    node = Node("x", "x")
    outer.add_fields(node, outer.read(raw), 0)
    assert fields(node) == [("Tag", 7, 0, 1, None), ("When", {"Year": 2024, "Month": 12}, 2, 3, None),
                            ("Tail", 0xCAFE, 5, 4, None)]


def test_flag_tables_are_bit_to_name_in_declared_order():
    assert list(F.EFI_FFS_FILE_ATTRIBUTES.items()) == [(0x01, "LARGE_FILE"), (0x02, "DATA_ALIGNMENT_2"),
                                                       (0x04, "FIXED"), (0x40, "CHECKSUM")]
    assert F.EFI_GUIDED_SECTION_ATTRIBUTES == {0x01: "PROCESSING_REQUIRED", 0x02: "AUTH_STATUS_VALID"}
    assert P.MACHINE[0x8664] == "X64" and P.SUBSYSTEM[11] == "EFI_BOOT_SERVICE_DRIVER"
    assert P.SECTION_CHARACTERISTICS[0x20000000] == "MEM_EXECUTE" and P.DEBUG_TYPE[2] == "CODEVIEW"
