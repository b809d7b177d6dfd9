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
    return compute_mrtds(image, sections, (order,))[0]


def compute_mrtds(image: bytes | bytearray | memoryview, sections: list[TdxSection],
                  orders=ORDERS, new_hash=None) -> list[MrtdResult]:
    """MRTD in each of `orders`, one result per order. The records are built once and fed to one
    SHA-384 per order: the orders differ only in where each page's PAGE.ADD record goes.
    `new_hash(order)` makes the object an order's records are fed to (`update`, `digest`, and
    `close` if it has one; default hashlib.sha384()): the engine passes one that hashes on another
    thread (inspector.hashing), which a decoder does not start itself."""
    for order in orders:
        if order not in ORDERS:
            raise ValueError(f"order must be one of {ORDERS}, not {order!r}")
    outs = [MrtdResult(None, order) for order in orders]
    if not outs:
        return outs
    if not _check(image, sections, outs[0]):
        for out in outs[1:]:
            out.problems = list(outs[0].problems)
        return outs
    hashers = {order: hashlib.sha384() if new_hash is None else new_hash(order) for order in orders}
    try:
        for s in sections:
            added, extended = _counts(s)
            _hash_section(hashers, image, s, bool(added), bool(extended))
            for out in outs:
                out.pages_added += added
                out.pages_extended += extended
                out.bytes_extended += extended * PAGE_SIZE
                out.log.append(MrtdStep(s.index, s.type_name, s.memory_address, added, extended))
        for out in outs:
            out.digest = hashers[out.order].digest()
    finally:
        for h in hashers.values():
            close = getattr(h, "close", None)
            if close is not None:
                close()
    return outs


def _hash_section(hashers: dict, image, s: TdxSection, add: bool, extend: bool) -> None:
    """Feed each order's SHA-384 the pages of `s`: "per-page" gets, page by page, its PAGE.ADD
    record then its 16 MR.EXTEND records each followed by 256 data bytes; "two-pass" gets all the
    section's PAGE.ADD records, then all its MR.EXTENDs."""
    if not (add or extend) or not s.pages:
        return
    per_page, two_pass = hashers.get("per-page"), hashers.get("two-pass")
    if add and not extend:          # both orders hash the same stream of PAGE.ADD records
        for first, n in _batches(s.pages, RECORD):
            adds = _add_records(s.memory_address + first * PAGE_SIZE, n)
            for h in hashers.values():
                h.update(adds)
        return
    if add and two_pass is not None:
        for first, n in _batches(s.pages, RECORD):
            two_pass.update(_add_records(s.memory_address + first * PAGE_SIZE, n))
    data_pages = 0
    if s.raw_data_size and s.file_offset is not None:
        data_pages = -(-min(s.raw_data_size, s.memory_data_size) // PAGE_SIZE)
    for first, n in _batches(s.pages, EXTEND_BYTES):
        ext = _extend_records(image, s, first, n, data_pages)
        if two_pass is not None:
            two_pass.update(ext)
        if per_page is None:
            continue
        if not add:
            per_page.update(ext)
            continue
        adds = memoryview(_add_records(s.memory_address + first * PAGE_SIZE, n))
        view = memoryview(ext)
        for i in range(n):
            per_page.update(adds[i * RECORD:(i + 1) * RECORD])
            per_page.update(view[i * EXTEND_BYTES:(i + 1) * EXTEND_BYTES])


def _batches(pages: int, unit: int):
    """(first page, count) runs of at most BATCH_BYTES of `unit`-byte records."""
    per_batch = max(1, BATCH_BYTES // unit)
    for first in range(0, pages, per_batch):
        yield first, min(per_batch, pages - first)


def _add_records(gpa0: int, n: int) -> bytearray:
    """The PAGE.ADD records of `n` pages from `gpa0`: one template, the GPAs written in strided."""
    buf = bytearray(_ADD_RECORD * n)
    q = memoryview(buf).cast("Q")
    q[_GPA_AT // 8::RECORD // 8] = array("Q", range(gpa0, gpa0 + n * PAGE_SIZE, PAGE_SIZE))
    q.release()
    return buf


def _extend_records(image, s: TdxSection, first: int, n: int, data_pages: int) -> bytearray:
    """The MR.EXTEND records of pages first..first+n of `s`, each 256-byte chunk after its record.

    Built as 8-byte words: a record is 16 words and its chunk 32, so the GPAs are one strided
    assignment and the data 32 (one per word of a chunk), however many pages there are. Pages past
    RawDataSize stay zero (td-shim tee_info_hash.rs zero-pads the data to MemoryDataSize)."""
    chunks = n * CHUNKS
    unit = (RECORD + EXTEND_CHUNK) // 8
    buf = bytearray((_EXTEND_RECORD + bytes(EXTEND_CHUNK)) * chunks)
    q = memoryview(buf).cast("Q")
    g0 = s.memory_address + first * PAGE_SIZE
    q[_GPA_AT // 8::unit] = array("Q", range(g0, g0 + chunks * EXTEND_CHUNK, EXTEND_CHUNK))
    with_data = min(first + n, data_pages) - first
    if with_data > 0:
        start = s.file_offset + first * PAGE_SIZE
        end = s.file_offset + min(s.raw_data_size, s.memory_data_size, (first + with_data) * PAGE_SIZE)
        src = bytes(image[start:end]).ljust(with_data * PAGE_SIZE, b"\0")
        words = memoryview(src).cast("Q")
        filled = with_data * CHUNKS * unit
        for j in range(EXTEND_CHUNK // 8):
            q[RECORD // 8 + j:filled:unit] = words[j::EXTEND_CHUNK // 8]
        words.release()
    q.release()
    return buf


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
