"""PE32/PE32+ and TE images as Nodes (PE/COFF spec; edk2 MdePkg/Include/IndustryStandard/PeImage.h,
MdePkg/Library/BasePeCoffLib/BasePeCoff.c for how edk2 maps RVAs and finds the CodeView record).

`decode_pe` / `decode_te` read the image at space.data[offset:offset+size]. Malformed input becomes
located problems on the returned node; nothing here raises for bad bytes.
"""
from __future__ import annotations

import struct
from functools import lru_cache

import uuid

from decoders.display import enum_name, enum_text, flags_text
from decoders.errors import DecodeError
from decoders.layout import Layout
from decoders.model import Node, Space
from decoders.pe import structs as S

# PE/COFF spec, "COFF File Header": "the Windows loader limits the number of sections to 96".
# edk2 images have 3 to 6; more is treated as hostile and only the first MAX_SECTIONS are read.
MAX_SECTIONS = 96
# A debug directory is an array of 28-byte entries; linkers write one to four.
MAX_DEBUG_ENTRIES = 16
# CodeView PDB/DLL paths written by GenFw are build-tree paths (well under 1 KiB); bounded so a
# missing NUL cannot make us scan a whole image.
MAX_PDB_PATH = 1024
# The headers are decoders.layout records (structs.py), each read with one struct.unpack_from: an
# OVMF image holds about 130 images and 550 section headers.
CODEVIEW = {
    S.CODEVIEW_SIGNATURE_NB10: S.EFI_IMAGE_DEBUG_CODEVIEW_NB10_ENTRY,
    S.CODEVIEW_SIGNATURE_RSDS: S.EFI_IMAGE_DEBUG_CODEVIEW_RSDS_ENTRY,
    S.CODEVIEW_SIGNATURE_MTOC: S.EFI_IMAGE_DEBUG_CODEVIEW_MTOC_ENTRY,
}
TE_HEADER_SIZE = S.EFI_TE_IMAGE_HEADER.size  # 40
DOS_HEADER_SIZE = S.EFI_IMAGE_DOS_HEADER.size  # 64
FILE_HEADER_SIZE = S.EFI_IMAGE_FILE_HEADER.size  # 20
DEBUG_ENTRY_SIZE = S.EFI_IMAGE_DEBUG_DIRECTORY_ENTRY.size  # 28
_DIRECTORY = struct.Struct(S.EFI_IMAGE_DATA_DIRECTORY.format)

# Short words for the title, by Subsystem (PeImage.h EFI_IMAGE_SUBSYSTEM_*).
_ROLE = {
    10: "UEFI application",
    11: "boot-service driver",
    12: "runtime driver",
    13: "EFI ROM image",
}


# -- display helpers -----------------------------------------------------------------------------
# The flag texts are worked out once per value: an image repeats the same few in every section.
@lru_cache(maxsize=1024)
def section_characteristics_text(value: int) -> str:
    extra = []
    align = (value & S.SCN_ALIGN_MASK) >> S.SCN_ALIGN_SHIFT
    if align:
        extra.append(f"ALIGN_{1 << (align - 1)}BYTES")
    return flags_text(value, S.SECTION_CHARACTERISTICS, extra=extra, handled=S.SCN_ALIGN_MASK)


@lru_cache(maxsize=1024)
def _file_characteristics_text(value: int) -> str:
    return flags_text(value, S.FILE_CHARACTERISTICS)


@lru_cache(maxsize=1024)
def _dll_characteristics_text(value: int) -> str:
    return flags_text(value, S.DLL_CHARACTERISTICS)


# -- shared image model --------------------------------------------------------------------------
class _Image:
    """The bytes of one image and how its RVAs map to offsets in them.

    `adjust` is 0 for PE and StrippedSize - sizeof(EFI_TE_IMAGE_HEADER) for TE: TE keeps the
    original PE's RVAs and PointerToRawData, and the file is that many bytes shorter at the front
    (BasePeCoff.c PeCoffLoaderAdjustOffsetForTeImage).
    """

    def __init__(self, node: Node, data: memoryview, base: int):
        self.node = node
        self.data = data
        self.base = base  # offset of data[0] in node.space
        self.adjust = 0
        self.headers_size = 0  # bytes of headers mapped 1:1 at RVA 0 (PE only)
        # (VirtualAddress, VirtualSize, SizeOfRawData, PointerToRawData) of each section
        self.sections: list[tuple[int, int, int, int]] = []

    def read(self, header: Layout, rel: int) -> dict[str, object]:
        """Read `header` at image-relative `rel`; a DecodeError carries the absolute offset."""
        try:
            return header.read(self.data, rel)
        except DecodeError as e:
            raise DecodeError(self.base + rel, e.message, e.path) from None

    def rva_to_rel(self, rva: int) -> int | None:
        """Image-relative offset of `rva`, or None when no section (or header) holds its bytes."""
        for va, vsize, rawsize, rawptr in self.sections:
            if va <= rva < va + max(vsize, rawsize) and rva - va < rawsize:
                rel = rawptr + (rva - va) - self.adjust
                return rel if 0 <= rel < len(self.data) else None
        if self.adjust == 0 and rva < min(self.headers_size, len(self.data)):
            return rva
        return None


def _space_bytes(node: Node, space: Space, offset: int, size: int) -> memoryview | None:
    if space.data is None:
        node.problem(offset, "no bytes to decode: this space is read through a Memory; pass the image's bytes")
        return None
    total = len(space.data)
    if offset < 0 or offset > total:
        node.problem(offset, f"image offset 0x{offset:x} is past the end of {space.name} (0x{total:x} bytes)")
        return None
    if size < 0 or offset + size > total:
        node.problem(offset, f"image of 0x{size:x} bytes at 0x{offset:x} runs past the end of {space.name} "
                             f"(0x{total:x} bytes); decoding what is there")
        size = total - offset
        node.size = size
    return memoryview(space.data)[offset:offset + size]


# -- sections ------------------------------------------------------------------------------------
def _decode_sections(img: _Image, table_rel: int, count: int, what: str) -> None:
    node = img.node
    if count > MAX_SECTIONS:
        node.problem(img.base + table_rel, f"NumberOfSections {count} is absurd (the PE/COFF loader limit is "
                                           f"{MAX_SECTIONS}); reading the first {MAX_SECTIONS}")
        count = MAX_SECTIONS
    fits = max(0, (len(img.data) - table_rel) // S.EFI_IMAGE_SIZEOF_SECTION_HEADER)
    if count > fits:
        node.problem(img.base + table_rel, f"section table of {count} entries at 0x{img.base + table_rel:x} runs past "
                                           f"the end of the {what} image (room for {fits})")
        count = fits
    for i in range(count):
        rel = table_rel + i * S.EFI_IMAGE_SIZEOF_SECTION_HEADER
        h = img.read(S.EFI_IMAGE_SECTION_HEADER, rel)
        name = h["Name"].split(b"\0", 1)[0].decode("ascii", "replace")
        va, vsize, raw_size, raw_ptr = h["VirtualAddress"], h["VirtualSize"], h["SizeOfRawData"], h["PointerToRawData"]
        img.sections.append((va, vsize, raw_size, raw_ptr))
        raw_rel = raw_ptr - img.adjust
        sec = Node("pe-section", f"{name or '(no name)'}  VA 0x{va:x}  size 0x{vsize:x}",
                   node.space, img.base + max(0, min(raw_rel, len(img.data))), 0)
        S.EFI_IMAGE_SECTION_HEADER.add_fields(
            sec, h, img.base + rel, displays={"Characteristics": section_characteristics_text(h["Characteristics"])})
        sec.fields[0].value = name
        sec.fields[0].display = name
        if raw_size:
            if raw_rel < 0 or raw_rel >= len(img.data):
                sec.problem(img.base + rel + 20, f"PointerToRawData 0x{raw_ptr:x} is outside the {what} "
                                                 f"image (0x{len(img.data):x} bytes)")
            else:
                end = raw_rel + raw_size
                if end > len(img.data):
                    sec.problem(img.base + rel + 16, f"raw data 0x{raw_size:x} bytes at 0x{raw_rel:x} runs past the "
                                                     f"end of the image (0x{len(img.data):x} bytes)")
                    end = len(img.data)
                sec.size = end - raw_rel
        node.append(sec)


# -- debug directory -----------------------------------------------------------------------------
def _c_string(img: _Image, rel: int, limit: int) -> tuple[str | None, str | None]:
    """A NUL-terminated string at `rel`, at most `limit` bytes: (text, problem)."""
    limit = min(limit, MAX_PDB_PATH, len(img.data) - rel)
    if limit <= 0:
        return None, "path is past the end of the image"
    raw = bytes(img.data[rel:rel + limit])
    nul = raw.find(b"\0")
    if nul < 0:
        return raw.decode("utf-8", "replace"), f"path not NUL-terminated within {limit} bytes"
    return raw[:nul].decode("utf-8", "replace"), None


def _decode_codeview(img: _Image, entry: Node, rel: int, size: int) -> str | None:
    sig = bytes(img.data[rel:rel + 4])
    at = img.base + rel
    header = CODEVIEW.get(sig)
    if header is None:
        entry.problem(at, f"CodeView signature {sig!r} is none of NB10, RSDS, MTOC")
        return None
    what = header.name
    cv = Node("pe-codeview", f"CodeView {sig.decode()}", img.node.space, at, size)
    entry.append(cv)
    try:
        parsed = img.read(header, rel)
    except DecodeError as e:
        cv.problem(e.offset, str(e))
        return None
    header.add_fields(cv, parsed, at, displays={"Signature": sig.decode()})
    mach = cv.field("MachOUuid")
    if mach is not None:  # a Mach-O LC_UUID is 16 bytes in order (RFC 4122), not an EFI_GUID
        mach.value = uuid.UUID(bytes=bytes(mach.value))
        mach.display = str(mach.value).upper()
    fixed = header.size
    if size and size <= fixed:
        cv.problem(at, f"SizeOfData 0x{size:x} leaves no room for a path after the {fixed}-byte {what}")
        return None
    path, trouble = _c_string(img, rel + fixed, size - fixed if size else MAX_PDB_PATH)
    if trouble:
        cv.problem(at + fixed, trouble)
    if path is not None:
        cv.add("PdbPath", path, at + fixed, len(path.encode()) + (0 if trouble else 1))
        cv.title = f"CodeView {sig.decode()} {path}"
    return path


def _decode_debug_directory(img: _Image, rva: int, size: int, dir_field_offset: int) -> None:
    node = img.node
    rel = img.rva_to_rel(rva)
    if rel is None:
        node.problem(dir_field_offset, f"debug directory RVA 0x{rva:x} is not mapped by any section of the image")
        return
    count = size // DEBUG_ENTRY_SIZE
    if size % DEBUG_ENTRY_SIZE:
        node.warn(dir_field_offset, f"debug directory size 0x{size:x} is not a multiple of {DEBUG_ENTRY_SIZE}")
    if count > MAX_DEBUG_ENTRIES:
        node.problem(dir_field_offset, f"debug directory claims {count} entries; reading the first {MAX_DEBUG_ENTRIES}")
        count = MAX_DEBUG_ENTRIES
    ddir = node.append(Node("pe-debug-directory", f"Debug directory ({count} entries)", node.space,
                            img.base + rel, min(count * DEBUG_ENTRY_SIZE, len(img.data) - rel)))
    for i in range(count):
        erel = rel + i * DEBUG_ENTRY_SIZE
        try:
            d = img.read(S.EFI_IMAGE_DEBUG_DIRECTORY_ENTRY, erel)
        except DecodeError as e:
            ddir.problem(e.offset, str(e))
            break
        dtype = d["Type"]
        entry = ddir.append(Node("pe-debug-entry", f"{enum_name(S.DEBUG_TYPE, dtype) or dtype} debug data",
                                 node.space, img.base + erel, DEBUG_ENTRY_SIZE))
        S.EFI_IMAGE_DEBUG_DIRECTORY_ENTRY.add_fields(entry, d, img.base + erel,
                                                     displays={"Type": enum_text(S.DEBUG_TYPE, dtype)})
        if dtype != S.EFI_IMAGE_DEBUG_TYPE_CODEVIEW:
            continue
        # BasePeCoff.c: the record is found by its RVA, or by FileOffset when RVA is 0.
        if d["RVA"]:
            data_rel = img.rva_to_rel(d["RVA"])
            if data_rel is None:
                entry.problem(img.base + erel + 20, f"CodeView RVA 0x{d['RVA']:x} is not mapped by any section")
                continue
        else:
            data_rel = d["FileOffset"] - img.adjust
            if not 0 <= data_rel < len(img.data):
                entry.problem(img.base + erel + 24, f"CodeView FileOffset 0x{d['FileOffset']:x} is outside the image")
                continue
        path = _decode_codeview(img, entry, data_rel, d["SizeOfData"])
        if path is not None and node.field("PdbPath") is None:
            node.add("PdbPath", path, img.base + data_rel, None)


# -- entry points ----------------------------------------------------------------------------------
def _entry_fields(img: _Image, image_base: int, entry_rva: int, linked_at: int, load_address: int | None,
                  field_offset: int) -> int:
    """Add EntryPointAddress and XipEntryPoint; return the address to show in the title."""
    node = img.node
    node.add("EntryPointAddress", image_base + entry_rva, field_offset, 4,
             f"0x{image_base + entry_rva:x} (ImageBase + AddressOfEntryPoint)")
    if load_address is None:
        return image_base + entry_rva
    # `load_address` is where byte 0 of these bytes sits; for TE that is the header, which edk2
    # places StrippedSize - 40 past the original image base (BasePeCoff.c PeCoffLoaderGetImageInfo).
    xip = load_address + entry_rva - img.adjust
    node.add("XipEntryPoint", xip, field_offset, 4, f"0x{xip:x} (load address + AddressOfEntryPoint)")
    if linked_at != load_address:
        node.note(img.base, f"image linked for 0x{linked_at:x} but sits at 0x{load_address:x}: not relocated for "
                            f"where it is, so it must be loaded (relocated) before it runs")
    return xip


# -- PE and TE ------------------------------------------------------------------------------------
def _decode_image(kind: str, title: str, decode, space: Space, offset: int, size: int,
                  load_address: int | None) -> Node:
    """The node of one image at space[offset:offset+size]: `decode(img, load_address)` fills it,
    and a header that cannot be read becomes its located problem."""
    node = Node(kind, title, space, offset, size)
    data = _space_bytes(node, space, offset, size)
    if data is None:
        return node
    img = _Image(node, data, offset)
    try:
        decode(img, load_address)
    except DecodeError as e:
        node.problem(e.offset, str(e))
    return node


def decode_pe(space: Space, offset: int, size: int, load_address: int | None = None) -> Node:
    """Decode the PE32/PE32+ image at space[offset:offset+size]. `load_address` is where an
    execute-in-place image runs (its bytes' absolute address), when known."""
    return _decode_image("pe", "PE32 image", _decode_pe, space, offset, size, load_address)


def decode_te(space: Space, offset: int, size: int, load_address: int | None = None) -> Node:
    """Decode the TE image (PI spec vol 1, "TE image") at space[offset:offset+size];
    `load_address` is the absolute address of its TE header when it runs in place."""
    return _decode_image("te", "TE image", _decode_te, space, offset, size, load_address)


def _decode_pe(img: _Image, load_address: int | None) -> None:
    node, base, data = img.node, img.base, img.data
    if len(data) < DOS_HEADER_SIZE:
        node.problem(base, f"truncated: EFI_IMAGE_DOS_HEADER needs {DOS_HEADER_SIZE} bytes, image has {len(data)}")
        return
    dos = img.read(S.EFI_IMAGE_DOS_HEADER, 0)
    e_magic = dos["e_magic"]
    magic = "MZ" if e_magic == S.EFI_IMAGE_DOS_SIGNATURE else f"0x{e_magic:04x}"
    S.EFI_IMAGE_DOS_HEADER.add_fields(node, dos, base, displays={"e_magic": magic}, only=("e_magic", "e_lfanew"))
    if e_magic != S.EFI_IMAGE_DOS_SIGNATURE:
        node.problem(base, f"e_magic is 0x{e_magic:04x}, expected 0x5a4d ('MZ')")
        return
    lfanew = dos["e_lfanew"]
    if lfanew + 4 + FILE_HEADER_SIZE > len(data):
        node.problem(base + 0x3C, f"e_lfanew 0x{lfanew:x} points past the end of the image (0x{len(data):x} bytes) "
                                  f"for the PE signature and file header")
        return
    sig = int.from_bytes(data[lfanew:lfanew + 4], "little")
    node.add("Signature", sig, base + lfanew, 4, "PE\\0\\0" if sig == S.EFI_IMAGE_NT_SIGNATURE else f"0x{sig:08x}")
    if sig != S.EFI_IMAGE_NT_SIGNATURE:
        node.problem(base + lfanew, f"PE signature is 0x{sig:08x}, expected 0x00004550 ('PE\\0\\0')")
        return
    fh_rel = lfanew + 4
    fh = img.read(S.EFI_IMAGE_FILE_HEADER, fh_rel)
    fmachine, opt_size = fh["Machine"], fh["SizeOfOptionalHeader"]
    S.EFI_IMAGE_FILE_HEADER.add_fields(node, fh, base + fh_rel, displays={
        "Machine": enum_text(S.MACHINE, fmachine),
        "Characteristics": _file_characteristics_text(fh["Characteristics"]),
    })
    machine = enum_name(S.MACHINE, fmachine) or f"machine 0x{fmachine:x}"
    if enum_name(S.MACHINE, fmachine) is None:
        node.warn(base + fh_rel, f"unknown Machine 0x{fmachine:04x}")

    oh_rel = fh_rel + FILE_HEADER_SIZE
    if oh_rel + 2 > len(data):
        node.problem(base + oh_rel, "optional header is past the end of the image")
        return
    magic = int.from_bytes(data[oh_rel:oh_rel + 2], "little")
    if magic == S.EFI_IMAGE_NT_OPTIONAL_HDR32_MAGIC:
        ohs, kind = S.EFI_IMAGE_OPTIONAL_HEADER32, "PE32"
    elif magic == S.EFI_IMAGE_NT_OPTIONAL_HDR64_MAGIC:
        ohs, kind = S.EFI_IMAGE_OPTIONAL_HEADER64, "PE32+"
    else:
        node.problem(base + oh_rel, f"optional header Magic 0x{magic:x}, expected 0x10b (PE32) or 0x20b (PE32+)")
        return
    fixed = ohs.size
    if opt_size < fixed:
        node.problem(base + fh_rel + 16, f"SizeOfOptionalHeader 0x{opt_size:x} is smaller than the "
                                         f"{fixed}-byte {kind} optional header")
    oh = img.read(ohs, oh_rel)
    image_base, entry_rva, subsystem = oh["ImageBase"], oh["AddressOfEntryPoint"], oh["Subsystem"]
    headers_size, image_size = oh["SizeOfHeaders"], oh["SizeOfImage"]
    ohs.add_fields(node, oh, base + oh_rel, displays={
        "Magic": f"0x{magic:x} ({kind})",
        "Subsystem": enum_text(S.SUBSYSTEM, subsystem),
        "DllCharacteristics": _dll_characteristics_text(oh["DllCharacteristics"]),
        "ImageBase": f"0x{image_base:x}",
        "AddressOfEntryPoint": f"0x{entry_rva:x}",
    })
    img.headers_size = headers_size
    if headers_size > len(data):
        node.warn(base + oh_rel + 60, f"SizeOfHeaders 0x{headers_size:x} is larger than the image "
                                      f"(0x{len(data):x} bytes)")

    # Data directories: NumberOfRvaAndSizes entries, never more than 16 nor than fit in the header.
    dd_rel = oh_rel + fixed
    count = oh["NumberOfRvaAndSizes"]
    if count > S.EFI_IMAGE_NUMBER_OF_DIRECTORY_ENTRIES:
        node.warn(base + dd_rel - 4, f"NumberOfRvaAndSizes {count} is more than "
                                     f"{S.EFI_IMAGE_NUMBER_OF_DIRECTORY_ENTRIES}; reading 16")
        count = S.EFI_IMAGE_NUMBER_OF_DIRECTORY_ENTRIES
    room = max(0, (opt_size - fixed) // 8)
    if count > room:
        node.problem(base + dd_rel - 4, f"NumberOfRvaAndSizes {count} does not fit in SizeOfOptionalHeader "
                                        f"0x{opt_size:x}; reading {room}")
        count = room
    directories: dict[int, tuple[int, int, int]] = {}
    fit = max(0, min(count, (len(data) - dd_rel) // 8))
    if fit < count:
        node.problem(base + dd_rel + 8 * fit, f"EFI_IMAGE_DATA_DIRECTORY[{fit}]: past the end of the image")
    # The directories are an array of EFI_IMAGE_DATA_DIRECTORY {u32 VirtualAddress, u32 Size}; one
    # unpack of the checked span instead of a parse each (16 per image, ~2,000 per OVMF).
    for i, (va, size) in enumerate(_DIRECTORY.iter_unpack(bytes(data[dd_rel:dd_rel + 8 * fit]))):
        rel = dd_rel + 8 * i
        directories[i] = (va, size, base + rel)
        node.add(f"DataDirectory.{S.DIRECTORY_NAMES[i]}", {"VirtualAddress": va, "Size": size},
                 base + rel, 8, f"RVA 0x{va:x}, size 0x{size:x}" if size or va else "none")

    _decode_sections(img, oh_rel + opt_size, fh["NumberOfSections"], kind)

    if entry_rva >= image_size:
        node.warn(base + oh_rel + 16, f"AddressOfEntryPoint 0x{entry_rva:x} is outside SizeOfImage "
                                      f"0x{image_size:x}")
    shown = _entry_fields(img, image_base, entry_rva, image_base, load_address, base + oh_rel + 16)

    dbg = directories.get(S.EFI_IMAGE_DIRECTORY_ENTRY_DEBUG)
    if dbg and dbg[0] and dbg[1]:
        _decode_debug_directory(img, dbg[0], dbg[1], dbg[2])

    role = _ROLE.get(subsystem, enum_name(S.SUBSYSTEM, subsystem) or f"subsystem {subsystem}")
    node.title = f"{kind} {machine} {role}, entry 0x{shown:x}"


def _decode_te(img: _Image, load_address: int | None) -> None:
    node, base, data = img.node, img.base, img.data
    if len(data) < TE_HEADER_SIZE:
        node.problem(base, f"truncated: EFI_TE_IMAGE_HEADER needs {TE_HEADER_SIZE} bytes, image has {len(data)}")
        return
    te = img.read(S.EFI_TE_IMAGE_HEADER, 0)
    signature, tmachine, subsystem = te["Signature"], te["Machine"], te["Subsystem"]
    image_base, entry_rva, stripped = te["ImageBase"], te["AddressOfEntryPoint"], te["StrippedSize"]
    S.EFI_TE_IMAGE_HEADER.add_fields(node, te, base, displays={
        "Signature": "VZ" if signature == S.EFI_TE_IMAGE_HEADER_SIGNATURE else f"0x{signature:04x}",
        "Machine": enum_text(S.MACHINE, tmachine),
        "Subsystem": enum_text(S.SUBSYSTEM, subsystem),
        "ImageBase": f"0x{image_base:x}",
        "AddressOfEntryPoint": f"0x{entry_rva:x}",
    }, only=("Signature", "Machine", "NumberOfSections", "Subsystem", "StrippedSize", "AddressOfEntryPoint",
             "BaseOfCode", "ImageBase"))
    if signature != S.EFI_TE_IMAGE_HEADER_SIGNATURE:
        node.problem(base, f"TE Signature is 0x{signature:04x}, expected 0x5a56 ('VZ')")
        return
    directory = te["DataDirectory"]
    for i, name in enumerate(("DataDirectory.BASERELOC", "DataDirectory.DEBUG")):
        va, size = directory[i]["VirtualAddress"], directory[i]["Size"]
        node.add(name, {"VirtualAddress": va, "Size": size}, base + 0x18 + 8 * i, 8,
                 f"RVA 0x{va:x}, size 0x{size:x}" if size or va else "none")
    # BasePeCoff.c PeCoffLoaderGetPeHeader: StrippedSize must exceed the TE header it was replaced by.
    if stripped <= TE_HEADER_SIZE:
        node.problem(base + 6, f"StrippedSize 0x{stripped:x} is not larger than the {TE_HEADER_SIZE}-byte "
                               f"TE header")
    img.adjust = stripped - TE_HEADER_SIZE
    node.add("RvaAdjust", img.adjust, base + 6, 2, f"0x{img.adjust:x} (StrippedSize - {TE_HEADER_SIZE}: "
                                                   f"file offset = RVA - this)")
    machine = enum_name(S.MACHINE, tmachine) or f"machine 0x{tmachine:x}"
    if enum_name(S.MACHINE, tmachine) is None:
        node.warn(base + 2, f"unknown Machine 0x{tmachine:04x}")

    _decode_sections(img, TE_HEADER_SIZE, te["NumberOfSections"], "TE")
    linked_at = image_base + img.adjust  # where the TE header sits when the image is at ImageBase
    shown = _entry_fields(img, image_base, entry_rva, linked_at, load_address, base + 8)

    dbg = directory[S.EFI_TE_IMAGE_DIRECTORY_ENTRY_DEBUG]
    if dbg["VirtualAddress"] and dbg["Size"]:
        _decode_debug_directory(img, dbg["VirtualAddress"], dbg["Size"], base + 0x20)

    role = _ROLE.get(subsystem, enum_name(S.SUBSYSTEM, subsystem) or f"subsystem {subsystem}")
    node.title = f"TE {machine} {role}, entry 0x{shown:x}"
