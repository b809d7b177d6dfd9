"""MRTD of a TDVF image: what the TDX module's MRTD holds after the VMM has built the TD from the
image's TDVF metadata (FACTS A.9).

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

Two orders exist in VMMs (FACTS A.9): "per-page" (PAGE.ADD then that page's EXTENDs: td-shim,
upstream KVM/QEMU) and "two-pass" (all PAGE.ADDs of a section, then all its EXTENDs: QEMU 8.x of the
Intel TDX trees). Both are computed here; which one a given host used is a property of its VMM.
"""
from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass, field

from decoders.model import Node, Problem, Severity
from decoders.ovmf.metadata import TdxSection

PAGE_SIZE = 0x1000
EXTEND_CHUNK = 0x100          # TDH.MR.EXTEND measures 256 bytes
RECORD = 0x80                 # every record is a 128-byte buffer
# A TD's initial image cannot sensibly exceed 64 GiB of measured pages; a hostile descriptor can
# ask for 2^64 bytes, so anything above this is refused before hashing anything.
MAX_MRTD_PAGES = (64 << 30) // PAGE_SIZE
ORDERS = ("per-page", "two-pass")

_ZERO_PAGE = bytes(PAGE_SIZE)
_PAD = bytes(RECORD - 24)
_ADD_TAG = b"MEM.PAGE.ADD".ljust(16, b"\0")
_EXTEND_TAG = b"MR.EXTEND".ljust(16, b"\0")


@dataclass
class MrtdStep:
    """What one section contributed."""

    index: int
    type_name: str
    memory_address: int
    pages_added: int
    pages_extended: int


@dataclass
class MrtdResult:
    digest: bytes | None               # 48 bytes; None when the metadata was refused
    order: str
    pages_added: int = 0
    pages_extended: int = 0
    bytes_extended: int = 0
    log: list[MrtdStep] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)

    @property
    def hex(self) -> str | None:
        return None if self.digest is None else self.digest.hex()


def page_add_record(gpa: int) -> bytes:
    return _ADD_TAG + struct.pack("<Q", gpa) + _PAD


def extend_record(gpa: int) -> bytes:
    return _EXTEND_TAG + struct.pack("<Q", gpa) + _PAD


def _page_data(image, sec: TdxSection, page: int) -> bytes:
    """Page `page` of the section as loaded: image bytes up to RawDataSize, zeros after."""
    start = page * PAGE_SIZE
    if sec.file_offset is None or start >= sec.raw_data_size:
        return _ZERO_PAGE
    n = min(PAGE_SIZE, sec.raw_data_size - start)
    chunk = bytes(image[sec.file_offset + start:sec.file_offset + start + n])
    return chunk if n == PAGE_SIZE else chunk + bytes(PAGE_SIZE - n)


def _check(image, sections: list[TdxSection], out: MrtdResult) -> bool:
    total = 0
    for s in sections:
        if s.memory_address % PAGE_SIZE or s.memory_data_size % PAGE_SIZE:
            out.problems.append(Problem(None, Severity.ERROR,
                                        f"section {s.index} ({s.type_name}): MemoryAddress/MemoryDataSize "
                                        f"not 4 KiB aligned"))
        if not s.page_aug or s.mr_extend:
            total += s.pages
        if s.mr_extend and s.raw_data_size:
            if s.file_offset is None or s.file_offset < 0 or s.file_offset + s.raw_data_size > len(image):
                out.problems.append(Problem(None, Severity.ERROR,
                                            f"section {s.index} ({s.type_name}): its 0x{s.raw_data_size:x} data "
                                            f"bytes are not in this image"))
    if total > MAX_MRTD_PAGES:
        out.problems.append(Problem(None, Severity.ERROR,
                                    f"{total} pages to measure exceed the limit {MAX_MRTD_PAGES} (64 GiB); refused"))
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
        added = extended = 0
        # A PAGE.AUG section without MR.EXTEND contributes nothing (and may be huge): skip its pages.
        pages = s.pages if (not s.page_aug or s.mr_extend) else 0
        if order == "per-page":
            for p in range(pages):
                gpa = s.memory_address + p * PAGE_SIZE
                if not s.page_aug:
                    h.update(page_add_record(gpa))
                    added += 1
                if s.mr_extend:
                    _extend_page(h, gpa, _page_data(image, s, p))
                    extended += 1
        else:
            if not s.page_aug:
                for p in range(pages):
                    h.update(page_add_record(s.memory_address + p * PAGE_SIZE))
                    added += 1
            if s.mr_extend:
                for p in range(pages):
                    _extend_page(h, s.memory_address + p * PAGE_SIZE, _page_data(image, s, p))
                    extended += 1
        out.pages_added += added
        out.pages_extended += extended
        out.bytes_extended += extended * PAGE_SIZE
        out.log.append(MrtdStep(s.index, s.type_name, s.memory_address, added, extended))
    out.digest = h.digest()
    return out


def _extend_page(h, gpa: int, page: bytes) -> None:
    # One update per page: 16 × (128-byte MR.EXTEND record + 256 data bytes).
    parts = []
    for i in range(0, PAGE_SIZE, EXTEND_CHUNK):
        parts.append(extend_record(gpa + i))
        parts.append(page[i:i + EXTEND_CHUNK])
    h.update(b"".join(parts))


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
