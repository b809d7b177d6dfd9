"""TDX metadata (the TDVF descriptor), SEV metadata ("ASEV") and IGVM metadata ("IGVM") of an
OVMF/TDVF image, decoded into Nodes.

Sources: edk2 `OvmfPkg/ResetVector/X64/IntelTdxMetadata.asm`, `OvmfSevMetadata.asm` (2025.02; named
`*.nasm.inc` in later edk2), `IgvmMetadata.nasm.inc`; the checks follow QEMU `hw/i386/tdvf.c` (tdvf_get_metadata,
tdvf_parse_and_check_section_entry) and td-shim `td-shim-interface/src/metadata.rs`
(TdxMetadataDescriptor::is_valid, validate_sections).

Offsets in a TDVF_SECTION (DataOffset) are offsets in the *unified* image (VARS + CODE): a split
OVMF_CODE.fd carries the same table, so its file offsets are rebased here (the split is
OvmfPkg/OvmfPkgDefines.fdf.inc's VARS and CODE regions; `ImageLayout` below).
"""
from __future__ import annotations


from decoders import guids
from decoders.display import flag_names
from decoders.errors import DecodeError
from decoders.model import Node, Space
from decoders.ovmf import structs as S


PAGE_SIZE = 0x1000
# edk2 emits 6-7 TDVF sections, td-shim at most ~10; anything above this is hostile or garbage and
# only the first entries are decoded (NumberOfSectionEntry can be 0xFFFFFFFF).
MAX_TDX_SECTIONS = 64
# SEV/IGVM descriptors hold 5-7 sections in edk2; same reasoning.
MAX_CC_SECTIONS = 64

TDX_TYPE_NAMES = S.TDVF_SECTION_TYPES
SEV_TYPE_NAMES = S.SEV_SECTION_TYPES
IGVM_TYPE_NAMES = S.IGVM_SECTION_TYPES

BFV, CFV, TD_HOB, TEMP_MEM, PERM_MEM, PAYLOAD, PAYLOAD_PARAM, TD_INFO, TD_PARAMS = range(9)
# QEMU upstream (hw/i386/tdvf.c) knows only these four types; the rest are td-shim's.
QEMU_TYPES = {BFV, CFV, TD_HOB, TEMP_MEM}
# td-shim validate_sections: at most one of each of these.
AT_MOST_ONE = {TD_HOB, PAYLOAD, PAYLOAD_PARAM, TD_INFO, TD_PARAMS}
# A descriptor's 4-byte signature shown as text (b'TDVF' -> 'TDVF').
_SIGNATURE_SHOWN = {"Signature": lambda sig: repr(bytes(sig))[1:]}


class TdxSection:
    """One TDVF_SECTION with the numbers the MRTD needs and where its data is in *this* file.
    Immutable and compared by value (a plain class: the metadata-only commands skip dataclasses)."""

    __slots__ = ("index", "data_offset", "raw_data_size", "memory_address", "memory_data_size", "type",
                 "attributes", "file_offset", "at")

    def __init__(self, index: int, data_offset: int, raw_data_size: int, memory_address: int,
                 memory_data_size: int, type: int, attributes: int, file_offset: int | None, at: int | None = None):
        set_ = object.__setattr__
        set_(self, "index", index)
        set_(self, "data_offset", data_offset)          # DataOffset as written (unified-image offset)
        set_(self, "raw_data_size", raw_data_size)
        set_(self, "memory_address", memory_address)
        set_(self, "memory_data_size", memory_data_size)
        set_(self, "type", type)
        set_(self, "attributes", attributes)
        set_(self, "file_offset", file_offset)          # DataOffset rebased to this file; None when not in it
        set_(self, "at", at)                            # where the TDVF_SECTION entry is, for located problems

    def __setattr__(self, name, value):
        raise AttributeError("TdxSection is immutable")

    def _key(self) -> tuple:
        return tuple(getattr(self, n) for n in self.__slots__)

    def __eq__(self, other: object) -> bool:
        return self._key() == other._key() if other.__class__ is self.__class__ else NotImplemented

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        return "TdxSection(" + ", ".join(f"{n}={getattr(self, n)!r}" for n in self.__slots__) + ")"

    @property
    def type_name(self) -> str:
        return TDX_TYPE_NAMES.get(self.type, f"type {self.type}")

    @property
    def mr_extend(self) -> bool:
        return bool(self.attributes & S.TDX_ATTR_MR_EXTEND)

    @property
    def page_aug(self) -> bool:
        return bool(self.attributes & S.TDX_ATTR_PAGE_AUG)

    @property
    def pages(self) -> int:
        return self.memory_data_size // PAGE_SIZE


def attributes_text(value: int) -> str:
    """`MR.EXTEND | PAGE.AUG`; reserved bits as a hex mask."""
    return " | ".join(flag_names(value, S.TDX_ATTR_NAMES)) or "0"


def _range_text(start: int, size: int) -> str:
    return f"0x{start:x}..0x{start + size:x}" if size else f"0x{start:x} (empty)"


# -- TDX -------------------------------------------------------------------------------------------
def decode_tdx_metadata(space: Space, offset: int) -> Node:
    """Decode the TDVF descriptor whose "TDVF" signature is at `offset` in `space` (a whole image
    file), with one "tdx-section" child per TDVF_SECTION."""
    data = space.data or b""
    size = len(data)
    node = Node("tdx-metadata", "TDX metadata (TDVF descriptor)", space, offset, S.TDVF_DESCRIPTOR_SIZE)
    if offset < 0 or offset + S.TDVF_DESCRIPTOR_SIZE > size:
        node.size = 0
        node.problem(offset, f"TDVF descriptor at 0x{offset:x} needs 16 bytes, the image is 0x{size:x}")
        return node
    guid_at = offset - 16
    if guid_at >= 0:
        g = guids.from_bytes(data[guid_at:offset])
        node.add("Guid", g, guid_at, 16, guids.describe(g))
        if g != guids.TdxMetadataGuid:
            # td-shim's tools refuse such an image; QEMU does not look at the GUID.
            node.warn(guid_at, f"expected {guids.describe(guids.TdxMetadataGuid)} before the descriptor")
    else:
        node.warn(offset, "no room for the TdxMetadataGuid before the descriptor")
    try:
        d = S.TDVF_DESCRIPTOR.parse(data, offset, "TDVF_DESCRIPTOR")
    except DecodeError as e:
        node.problem(e.offset, e.message)
        return node
    S.TDVF_DESCRIPTOR.add_fields(node, d, offset, displays=_SIGNATURE_SHOWN)
    if d.Signature != S.TDVF_SIGNATURE:
        node.problem(offset, f"signature {bytes(d.Signature)!r}, expected b'TDVF'")
        return node
    n = d.NumberOfSectionEntry
    if d.Version != 1:
        node.problem(offset + 8, f"Version {d.Version}, only 1 is defined (QEMU tdvf.c rejects it)")
    if d.Length != S.TDVF_DESCRIPTOR_SIZE + S.TDVF_SECTION_SIZE * n:
        node.problem(offset + 4, f"Length 0x{d.Length:x} != 16 + 32 * NumberOfSectionEntry "
                                 f"(0x{S.TDVF_DESCRIPTOR_SIZE + S.TDVF_SECTION_SIZE * n:x})")
    if offset + d.Length > size:
        node.problem(offset + 4, f"Length 0x{d.Length:x} runs past the end of the image (0x{size:x})")
    if n == 0:
        node.problem(offset + 12, "no sections (td-shim requires at least one)")
    elif n < 2:
        node.warn(offset + 12, f"{n} section; QEMU tdvf.c requires at least 2")
    fit = max(0, (size - offset - S.TDVF_DESCRIPTOR_SIZE) // S.TDVF_SECTION_SIZE)
    count = min(n, MAX_TDX_SECTIONS, fit)
    if n > MAX_TDX_SECTIONS:
        node.problem(offset + 12, f"NumberOfSectionEntry {n} exceeds the limit {MAX_TDX_SECTIONS}; "
                                  f"decoding the first {count}")
    elif count < n:
        node.problem(offset + 12, f"only {count} of {n} sections fit in the image")
    node.size = S.TDVF_DESCRIPTOR_SIZE + S.TDVF_SECTION_SIZE * count

    raw = []
    for i in range(count):
        at = offset + S.TDVF_DESCRIPTOR_SIZE + S.TDVF_SECTION_SIZE * i
        raw.append((at, S.TDVF_SECTION.parse(data, at, "TDVF_SECTION")))
    rebase = _code_only_rebase([s for _, s in raw], size)
    if rebase:
        node.add("ImageLayout", "code-only", display=f"code-only (offsets rebased by -0x{rebase:x})")
        node.note(offset, f"CODE-only image (the CODE part of a split build): DataOffset is relative "
                          f"to the unified VARS+CODE image, file offsets here are DataOffset - 0x{rebase:x}")
    else:
        node.add("ImageLayout", "unified", display="unified")

    for i, (at, s) in enumerate(raw):
        node.append(_tdx_section_node(space, at, i, s, rebase, size))
    _check_tdx_sections(node)
    node.title = f"TDX metadata (TDVF descriptor, {count} sections)"
    return node


def _code_only_rebase(sections, file_size: int) -> int:
    """The -CFV size rebase when this file is the CODE part of a split build, else 0.

    OVMF_CODE.fd carries the unified image's table: the BFV says DataOffset = VARS size
    (PcdBfvRawDataOffset = $(VARS_SIZE), OvmfPkgDefines.fdf.inc) while the file *is* the BFV.
    """
    bfv = next((s for s in sections if int(s.Type) == BFV), None)
    if bfv is None or bfv.DataOffset + bfv.RawDataSize <= file_size:
        return 0
    if file_size != bfv.RawDataSize:
        return 0
    for s in sections:
        if int(s.Type) == CFV and s.DataOffset == 0 and s.RawDataSize == bfv.DataOffset:
            return s.RawDataSize
    return 0


def _tdx_section_node(space: Space, at: int, index: int, s, rebase: int, file_size: int) -> Node:
    typ = int(s.Type)
    tname = TDX_TYPE_NAMES.get(typ)
    node = Node("tdx-section", f"{tname or f'type {typ}'} GPA {_range_text(s.MemoryAddress, s.MemoryDataSize)}",
                space, at, S.TDVF_SECTION_SIZE)
    node.add("DataOffset", s.DataOffset, at, 4)
    node.add("RawDataSize", s.RawDataSize, at + 4, 4)
    node.add("MemoryAddress", s.MemoryAddress, at + 8, 8)
    node.add("MemoryDataSize", s.MemoryDataSize, at + 16, 8)
    node.add("Type", typ, at + 24, 4, tname or f"unknown ({typ})")
    node.add("Attributes", s.Attributes, at + 28, 4, attributes_text(s.Attributes))

    # Where the section's data is in this file.
    file_range = None
    if s.RawDataSize:
        start = s.DataOffset - rebase
        if rebase and typ == CFV and s.DataOffset < rebase:
            node.note(at, "the CFV (VARS) is not part of a CODE-only file; it lives in OVMF_VARS.fd")
            node.add("FileRange", None, display="not in this file (VARS part)")
        elif start < 0 or start + s.RawDataSize > file_size:
            node.problem(at, f"data {_range_text(start, s.RawDataSize)} is outside the image (0x{file_size:x} bytes)")
            node.add("FileRange", None, display=f"{_range_text(start, s.RawDataSize)} (outside the image)")
        else:
            file_range = (start, start + s.RawDataSize)
            node.add("FileRange", file_range, display=_range_text(start, s.RawDataSize)
                     + (f" (DataOffset - 0x{rebase:x})" if rebase else ""))
    else:
        if s.DataOffset:
            node.problem(at, f"RawDataSize is 0 but DataOffset is 0x{s.DataOffset:x} (td-shim requires 0)")
        node.add("FileRange", None, display="none (no data in the image)")
    node.add("GpaRange", (s.MemoryAddress, s.MemoryAddress + s.MemoryDataSize),
             display=_range_text(s.MemoryAddress, s.MemoryDataSize))

    # Per-section checks of QEMU tdvf_parse_and_check_section_entry and td-shim validate_sections.
    if s.MemoryAddress % PAGE_SIZE:
        node.problem(at + 8, f"MemoryAddress 0x{s.MemoryAddress:x} is not 4 KiB aligned")
    if s.MemoryDataSize % PAGE_SIZE:
        node.problem(at + 16, f"MemoryDataSize 0x{s.MemoryDataSize:x} is not 4 KiB aligned")
    if s.MemoryAddress + s.MemoryDataSize > 1 << 64:
        node.problem(at + 16, "MemoryAddress + MemoryDataSize passes 2^64: no guest-physical range")
    if typ not in (TD_INFO, TD_PARAMS) and s.MemoryDataSize < s.RawDataSize:
        node.problem(at + 16, f"MemoryDataSize 0x{s.MemoryDataSize:x} < RawDataSize 0x{s.RawDataSize:x}")
    if s.Attributes & S.TDX_ATTR_RESERVED:
        node.problem(at + 28, f"reserved Attributes bits set (0x{s.Attributes & S.TDX_ATTR_RESERVED:x})")
    if (s.Attributes & S.TDX_ATTR_MR_EXTEND) and (s.Attributes & S.TDX_ATTR_PAGE_AUG):
        node.warn(at + 28, "MR.EXTEND with PAGE.AUG: pages that are not PAGE.ADDed cannot be measured")
    if tname is None:
        node.problem(at + 24, f"unknown section Type {typ}")
    elif typ not in QEMU_TYPES:
        node.note(at + 24, f"{tname} is a td-shim type; QEMU upstream (tdvf.c) accepts only BFV/CFV/TD_HOB/TempMem")
    if typ in (BFV, CFV) and s.RawDataSize == 0:
        node.problem(at + 4, f"{tname} with RawDataSize 0 (QEMU tdvf.c rejects it)")
    if typ in (TD_HOB, TEMP_MEM, PERM_MEM) and s.RawDataSize:
        node.problem(at + 4, f"{tname} with RawDataSize 0x{s.RawDataSize:x} != 0")
    if typ == BFV and s.Attributes != S.TDX_ATTR_MR_EXTEND:
        node.warn(at + 28, "BFV without exactly MR.EXTEND: the firmware code would not be in MRTD")
    if typ in (CFV, TD_HOB, TEMP_MEM, PAYLOAD_PARAM, TD_INFO, TD_PARAMS) and s.Attributes:
        node.warn(at + 28, f"{tname} Attributes should be 0")
    if typ == PERM_MEM and s.Attributes != S.TDX_ATTR_PAGE_AUG:
        node.warn(at + 28, "PermMem Attributes should be PAGE.AUG")
    if typ in (TD_INFO, TD_PARAMS) and (s.MemoryAddress or s.MemoryDataSize):
        node.problem(at + 8, f"{tname} must have MemoryAddress and MemoryDataSize 0")
    return node


def _check_tdx_sections(meta: Node) -> None:
    """Checks across sections: counts per type (td-shim validate_sections), overlapping GPAs."""
    secs = [c for c in meta.children if c.kind == "tdx-section"]
    if not secs:
        return
    types = [c.get("Type") for c in secs]
    if BFV not in types:
        meta.problem(meta.offset, "no BFV section (the firmware code)")
    for t in AT_MOST_ONE:
        if types.count(t) > 1:
            meta.problem(meta.offset, f"{types.count(t)} {TDX_TYPE_NAMES[t]} sections, at most one allowed")
    if TD_HOB not in types and PERM_MEM not in types:
        meta.warn(meta.offset, "neither TD_HOB nor PermMem: the VMM has nowhere to describe memory")
    if PAYLOAD_PARAM in types and PAYLOAD not in types:
        meta.problem(meta.offset, "PayloadParam without a Payload section")
    # Overlapping guest-physical ranges: sort by start, compare neighbours and the running end.
    ranges = sorted((c.get("GpaRange")[0], c.get("GpaRange")[1], i) for i, c in enumerate(secs)
                    if c.get("GpaRange")[1] > c.get("GpaRange")[0])
    end, owner = -1, None
    for start, stop, i in ranges:
        if owner is not None and start < end:
            secs[i].problem(secs[i].offset + 8, f"GPA range 0x{start:x}..0x{stop:x} overlaps section {owner} "
                                                f"(ends at 0x{end:x})")
        if stop > end:
            end, owner = stop, i


def tdx_sections(meta: Node) -> list[TdxSection]:
    """The decoded sections of a "tdx-metadata" node, with their effective file offsets."""
    out = []
    for i, c in enumerate(x for x in meta.children if x.kind == "tdx-section"):
        fr = c.get("FileRange")
        out.append(TdxSection(
            index=i, data_offset=c.get("DataOffset"), raw_data_size=c.get("RawDataSize"),
            memory_address=c.get("MemoryAddress"), memory_data_size=c.get("MemoryDataSize"),
            type=c.get("Type"), attributes=c.get("Attributes"),
            file_offset=fr[0] if fr else None, at=c.offset))
    return out


# -- SEV and IGVM ----------------------------------------------------------------------------------
def decode_sev_metadata(space: Space, offset: int) -> Node:
    """The "ASEV" descriptor at `offset` with one "sev-section" child per section."""
    return _decode_cc(space, offset, S.SEV_SIGNATURE, "sev-metadata", "SEV metadata", "sev-section",
                      S.SEV_SECTION, SEV_TYPE_NAMES)


def decode_igvm_metadata(space: Space, offset: int) -> Node:
    """The "IGVM" descriptor at `offset` with one "igvm-section" child per section."""
    return _decode_cc(space, offset, S.IGVM_SIGNATURE, "igvm-metadata", "IGVM metadata", "igvm-section",
                      S.IGVM_SECTION, IGVM_TYPE_NAMES)


def _decode_cc(space: Space, offset: int, signature: bytes, kind: str, what: str, section_kind: str,
               section_struct, names: dict[int, str]) -> Node:
    data = space.data or b""
    size = len(data)
    node = Node(kind, what, space, offset, S.CC_DESCRIPTOR_SIZE)
    try:
        d = S.CC_DESCRIPTOR.parse(data, offset, f"{what} descriptor")
    except DecodeError as e:
        node.size = 0
        node.problem(offset, e.message)
        return node
    S.CC_DESCRIPTOR.add_fields(node, d, offset, displays=_SIGNATURE_SHOWN)
    if d.Signature != signature:
        node.problem(offset, f"signature {bytes(d.Signature)!r}, expected {signature!r}")
        return node
    n = d.NumSections
    if d.Version != 1:
        node.problem(offset + 8, f"Version {d.Version}, only 1 is defined")
    if d.Length != S.CC_DESCRIPTOR_SIZE + S.CC_SECTION_SIZE * n:
        node.problem(offset + 4, f"Length 0x{d.Length:x} != 16 + 12 * NumSections "
                                 f"(0x{S.CC_DESCRIPTOR_SIZE + S.CC_SECTION_SIZE * n:x})")
    fit = max(0, (size - offset - S.CC_DESCRIPTOR_SIZE) // S.CC_SECTION_SIZE)
    count = min(n, MAX_CC_SECTIONS, fit)
    if n > MAX_CC_SECTIONS:
        node.problem(offset + 12, f"NumSections {n} exceeds the limit {MAX_CC_SECTIONS}; decoding the first {count}")
    elif count < n:
        node.problem(offset + 12, f"only {count} of {n} sections fit in the image")
    node.size = S.CC_DESCRIPTOR_SIZE + S.CC_SECTION_SIZE * count
    spans = []
    for i in range(count):
        at = offset + S.CC_DESCRIPTOR_SIZE + S.CC_SECTION_SIZE * i
        s = section_struct.parse(data, at, f"{what} section")
        typ = int(s.Type)
        tname = names.get(typ)
        child = Node(section_kind, f"{tname or f'type 0x{typ:x}'} {_range_text(s.Base, s.Size)}",
                     space, at, S.CC_SECTION_SIZE)
        child.add("Base", s.Base, at, 4)
        child.add("Size", s.Size, at + 4, 4)
        child.add("Type", typ, at + 8, 4, tname or f"unknown (0x{typ:x})")
        if tname is None:
            child.warn(at + 8, f"unknown section Type 0x{typ:x}")
        if kind == "sev-metadata":
            # SNP pre-validation and the special pages work on whole 4 KiB pages (QEMU sev.c).
            if s.Base % PAGE_SIZE or s.Size % PAGE_SIZE:
                child.warn(at, "Base/Size not 4 KiB aligned")
            if s.Size:
                spans.append((s.Base, s.Base + s.Size, child))
        node.append(child)
    spans.sort(key=lambda t: t[0])
    for (a0, a1, _), (b0, b1, child) in zip(spans, spans[1:]):
        if b0 < a1:
            child.warn(child.offset, f"range 0x{b0:x}..0x{b1:x} overlaps the previous section (ends 0x{a1:x})")
    node.title = f"{what} ({count} sections)"
    return node
