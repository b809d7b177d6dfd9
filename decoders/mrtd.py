"""MRTD of a TDVF image: what the TDX module's MRTD holds after the VMM has built the TD from the
image's TDVF metadata (edk2 OvmfPkg/ResetVector/X64/IntelTdxMetadata.asm, IntelTdxMetadata.nasm.inc in
edk2 after 2025.02, describes the sections).

MRTD is one running SHA-384 (not a PCR-style extend) over 128-byte records, finalized by
TDH.MR.FINALIZE (Intel TDX Module ABI, TDH.MEM.PAGE.ADD and TDH.MR.EXTEND; the layouts as quoted in
td-shim `doc/tdshim_spec.md` and implemented by td-shim `td-shim-tools/src/tee_info_hash.rs`):

    TDH.MEM.PAGE.ADD(gpa): "MEM.PAGE.ADD" in bytes 0-11, gpa (u64 LE) in 16-23, zeros to 127
    TDH.MR.EXTEND(gpa):    "MR.EXTEND" in bytes 0-8, gpa (u64 LE) in 16-23, zeros to 127,
                           then the 256 bytes of the chunk (two more 128-byte buffers)

For each section in descriptor order and each 4 KiB page of MemoryDataSize: PAGE.ADD unless the
section has PAGE.AUG (those pages are added later, unmeasured); 16 MR.EXTENDs of 256 bytes when it
has MR.EXTEND. The section's data is RawDataSize bytes from the image, zero-padded to
MemoryDataSize (td-shim tee_info_hash.rs: `section_data.resize_with(memory_data_size, ...)`).

Two orders exist in VMMs (td-shim doc/tdshim_spec.md; QEMU hw/i386/tdx.c): "per-page" (PAGE.ADD then that page's EXTENDs: td-shim,
upstream KVM/QEMU) and "two-pass" (all PAGE.ADDs of a section, then all its EXTENDs: QEMU 8.x of the
Intel TDX trees). Both are computed here; which one a given host used is a property of its VMM.
"""
from __future__ import annotations

import hashlib
import struct
from array import array

from decoders import budget
from decoders.model import Node, Problem, Severity, Space
from decoders.ovmf.metadata import TdxSection
from decoders.ovmf.resetvector import decode_reset_vector_table, find_metadata

PAGE_SIZE = 0x1000
EXTEND_CHUNK = 0x100          # TDH.MR.EXTEND measures 256 bytes
RECORD = 0x80                 # every record is a 128-byte buffer
CHUNKS = PAGE_SIZE // EXTEND_CHUNK
EXTEND_BYTES = CHUNKS * (RECORD + EXTEND_CHUNK)   # what one MR.EXTENDed page feeds SHA-384: 6 KiB
# The work budget: bytes fed to SHA-384. OVMF.fd hashes 2.9 MiB (480 extended pages, 538 added),
# a 4 MiB TDVF about 6 MiB; 256 MiB still covers 40,000 extended pages (160 MiB of measured memory)
# and takes about half a second, while a descriptor asking to measure tens of GiB is refused before
# anything is hashed.
MAX_HASHED_BYTES = 256 << 20
# Records are built this many bytes at a time (a page's records are the same but for the GPA).
BATCH_BYTES = 1 << 20
ORDERS = ("per-page", "two-pass")

_ADD_TAG = b"MEM.PAGE.ADD".ljust(16, b"\0")
_EXTEND_TAG = b"MR.EXTEND".ljust(16, b"\0")
_ADD_RECORD = _ADD_TAG + bytes(RECORD - 16)
_EXTEND_RECORD = _EXTEND_TAG + bytes(RECORD - 16)
_GPA_AT = 16                  # the GPA's offset in a record


# Plain classes (no dataclasses import): `mrtd` is a whole process of well under 100 ms.
class MrtdStep:
    """What one section contributed."""

    def __init__(self, index: int, type_name: str, memory_address: int, pages_added: int, pages_extended: int):
        self.index = index
        self.type_name = type_name
        self.memory_address = memory_address
        self.pages_added = pages_added
        self.pages_extended = pages_extended

    def __repr__(self) -> str:
        return (f"MrtdStep({self.index}, {self.type_name}, 0x{self.memory_address:x}, added={self.pages_added}, "
                f"extended={self.pages_extended})")


class MrtdResult:
    def __init__(self, digest: bytes | None, order: str):
        self.digest = digest            # 48 bytes; None when the metadata was refused
        self.order = order
        self.pages_added = 0
        self.pages_extended = 0
        self.bytes_extended = 0
        self.log: list[MrtdStep] = []
        self.problems: list[Problem] = []

    def __repr__(self) -> str:
        return f"MrtdResult({self.order}, {self.hex}, {self.pages_added} added, {self.pages_extended} extended)"

    @property
    def hex(self) -> str | None:
        return None if self.digest is None else self.digest.hex()


def image_tdx_metadata(data: bytes, name: str) -> Node | None:
    """The "tdx-metadata" node of the image file `data`, or None when it has none; only what the
    MRTD needs is decoded: the GUIDed table walked back from the footer GUID at E-0x30 (QEMU
    hw/i386/pc_sysfw_ovmf.c, pc_system_parse_ovmf_flash) and the TDVF descriptor its TDX entry
    points to. The firmware volumes (and their LZMA sections) are never read: the VMM copies
    section bytes straight from the image file (TDVF design guide, "TDVF metadata")."""
    # The image's end sits at 4 GiB, as decoders.fd.decode_image places it.
    space = Space(name, data, (1 << 32) - len(data))
    with budget.scope():
        return find_metadata(decode_reset_vector_table(space), "tdx-metadata")


def page_add_record(gpa: int) -> bytes:
    return _ADD_TAG + struct.pack("<Q", gpa) + bytes(RECORD - 24)


def extend_record(gpa: int) -> bytes:
    return _EXTEND_TAG + struct.pack("<Q", gpa) + bytes(RECORD - 24)


def _counts(s: TdxSection) -> tuple[int, int]:
    """(pages PAGE.ADDed, pages MR.EXTENDed): a PAGE.AUG page is added later, unmeasured."""
    return (0 if s.page_aug else s.pages), (s.pages if s.mr_extend else 0)


def _check(image, sections: list[TdxSection], out: MrtdResult) -> bool:
    hashed, biggest = 0, None
    for s in sections:
        what = f"section {s.index} ({s.type_name})"
        if s.memory_address % PAGE_SIZE or s.memory_data_size % PAGE_SIZE:
            out.problems.append(Problem(s.at, Severity.ERROR,
                                        f"{what}: MemoryAddress/MemoryDataSize not 4 KiB aligned"))
        if s.memory_address + s.memory_data_size > 1 << 64:
            # The GPA is a UINT64 in every record (TDX module ABI): such a range has no address.
            out.problems.append(Problem(s.at, Severity.ERROR,
                                        f"{what}: MemoryAddress 0x{s.memory_address:x} + MemoryDataSize "
                                        f"0x{s.memory_data_size:x} passes 2^64"))
        if s.mr_extend and s.raw_data_size:
            if s.file_offset is None or s.file_offset < 0 or s.file_offset + s.raw_data_size > len(image):
                out.problems.append(Problem(s.at, Severity.ERROR,
                                            f"{what}: its 0x{s.raw_data_size:x} data bytes are not in this image"))
        added, extended = _counts(s)
        work = added * RECORD + extended * EXTEND_BYTES
        hashed += work
        if biggest is None or work > biggest[0]:
            biggest = (work, s)
    if hashed > MAX_HASHED_BYTES:
        s = biggest[1]
        out.problems.append(Problem(s.at, Severity.ERROR,
                                    f"measuring these sections hashes {hashed:,} bytes (section {s.index}, "
                                    f"{s.type_name}, alone {biggest[0]:,}); the budget is {MAX_HASHED_BYTES:,} "
                                    f"bytes hashed; not computed"))
    return not out.problems


def compute_mrtd(image: bytes | bytearray | memoryview, sections: list[TdxSection],
                 order: str = "per-page") -> MrtdResult:
    """MRTD for `image` (the file the sections' `file_offset`s point into) built in `order`."""
    if order not in ORDERS:
        raise ValueError(f"order must be one of {ORDERS}, not {order!r}")
    out = MrtdResult(None, order)
    if not _check(image, sections, out):
        return out
    h = hashlib.sha384()
    for s in sections:
        added, extended = _counts(s)
        if order == "per-page":
            _hash_pages(h, image, s, bool(added), bool(extended))
        else:
            if added:
                _hash_pages(h, image, s, True, False)
            if extended:
                _hash_pages(h, image, s, False, True)
        out.pages_added += added
        out.pages_extended += extended
        out.bytes_extended += extended * PAGE_SIZE
        out.log.append(MrtdStep(s.index, s.type_name, s.memory_address, added, extended))
    out.digest = h.digest()
    return out


def _hash_pages(h, image, s: TdxSection, add: bool, extend: bool) -> None:
    """Feed SHA-384 every page of `s`: per page its PAGE.ADD record when `add`, then its 16
    MR.EXTEND records each followed by 256 data bytes when `extend`.

    The records of a run of pages differ only in their GPAs, so a batch of pages is one buffer
    built from a template, the GPAs written in with strided assignments, the data copied in for
    pages that have image bytes (the rest stay zero: td-shim tee_info_hash.rs zero-pads the data
    to MemoryDataSize).
    """
    if not (add or extend) or not s.pages:
        return
    unit = (RECORD if add else 0) + (EXTEND_BYTES if extend else 0)
    template = ((_ADD_RECORD if add else b"")
                + ((_EXTEND_RECORD + bytes(EXTEND_CHUNK)) * CHUNKS if extend else b""))
    first_extend = RECORD if add else 0
    per_batch = max(1, BATCH_BYTES // unit)
    step = unit // 8
    data_pages = 0
    if extend and s.raw_data_size and s.file_offset is not None:
        data_pages = -(-min(s.raw_data_size, s.memory_data_size) // PAGE_SIZE)
    for first in range(0, s.pages, per_batch):
        n = min(per_batch, s.pages - first)
        buf = bytearray(template * n)
        q = memoryview(buf).cast("Q")
        gpa0 = s.memory_address + first * PAGE_SIZE
        if add:
            q[_GPA_AT // 8::step] = array("Q", range(gpa0, gpa0 + n * PAGE_SIZE, PAGE_SIZE))
        if extend:
            for c in range(CHUNKS):
                at = (first_extend + c * (RECORD + EXTEND_CHUNK) + _GPA_AT) // 8
                g = gpa0 + c * EXTEND_CHUNK
                q[at::step] = array("Q", range(g, g + n * PAGE_SIZE, PAGE_SIZE))
            for p in range(first, min(first + n, data_pages)):
                _copy_page_data(buf, (p - first) * unit + first_extend, image, s, p)
        q.release()
        h.update(buf)


def _copy_page_data(buf: bytearray, at: int, image, s: TdxSection, page: int) -> None:
    """Page `page` of the section's image bytes (up to RawDataSize) into the data slots at `at`."""
    start = page * PAGE_SIZE
    n = min(PAGE_SIZE, s.raw_data_size - start)
    src = memoryview(image)[s.file_offset + start:s.file_offset + start + n]
    for c in range(0, n, EXTEND_CHUNK):
        d = at + (c // EXTEND_CHUNK) * (RECORD + EXTEND_CHUNK) + RECORD
        piece = src[c:c + EXTEND_CHUNK]
        buf[d:d + len(piece)] = piece


def mrtd_node(result: MrtdResult) -> Node:
    """The result as a Node (kind "mrtd") for the tree view and JSON export."""
    text = result.hex or "not computed"
    node = Node("mrtd", f"MRTD ({result.order}): {text[:16]}…" if result.digest else f"MRTD ({result.order}): {text}")
    node.add("MRTD", result.digest, display=text)
    node.add("Order", result.order, display=("PAGE.ADD then its MR.EXTENDs, page by page"
                                             if result.order == "per-page"
                                             else "all PAGE.ADDs of a section, then its MR.EXTENDs"))
    node.add("PagesAdded", result.pages_added)
    node.add("PagesExtended", result.pages_extended)
    node.add("BytesExtended", result.bytes_extended)
    node.problems.extend(result.problems)
    for step in result.log:
        child = Node("mrtd-section", f"section {step.index} {step.type_name}: "
                                     f"{step.pages_added} added, {step.pages_extended} extended")
        child.add("Section", step.index)
        child.add("Type", step.type_name)
        child.add("MemoryAddress", step.memory_address)
        child.add("PagesAdded", step.pages_added)
        child.add("PagesExtended", step.pages_extended)
        node.append(child)
    return node
