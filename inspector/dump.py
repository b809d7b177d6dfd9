"""Memory-dump sources: QEMU `dump-guest-memory` ELF cores (ELF64 and ELF32) and raw `pmemsave`
files, behind the one Memory protocol (decoders/memory.py), plus the CPU state the dump carries.

QEMU writes (target/i386/arch_dump.c, dump/dump.c) ELF64/EM_X86_64 when the first CPU has EFER.LMA,
else ELF32/EM_386 (ELF64/EM_386 when RAM ends above 4 GiB); one PT_LOAD per guest RAM block, at its
guest-physical address; and a PT_NOTE whose CPU notes decoders/elfcore.py decodes.

The file is memory-mapped and never read whole: segment reads slice the mapping, so opening a
1 GiB dump costs the ELF headers and the notes. ELF and program headers come from pyelftools;
the notes' bytes are bounded here before decoders.elfcore walks them, because pyelftools'
iter_notes trusts n_descsz (a lying note would make it read to the end of the file).
"""
from __future__ import annotations

import bisect
import mmap
import os
from dataclasses import dataclass, field
from pathlib import Path

from elftools.common.exceptions import ELFError
from elftools.elf.elffile import ELFFile

from decoders.elfcore import CpuState, cpu_node, decode_notes
from decoders.memory import Unreadable, check_read
from decoders.model import Node, Problem, Severity, Space
from decoders.paging import Mappings, PagingConfig, WalkResult, scan, walk

# QEMU writes one PT_LOAD per RAM block (5 for a 256 MiB q35 guest); more than this is not a dump.
MAX_SEGMENTS = 4096
MAX_NOTE_SEGMENT_BYTES = 16 << 20
MAX_PROBLEMS = 200
OVERLAP_LOOKBACK = 8
# Page-table walks made for a dump's node: one per distinct CR3 (~0.2 s for OVMF's 1 TiB identity map,
# measured on a real dump here). OVMF's CPUs share one CR3 (MpInitLib hands the APs the BSP's:
# UefiCpuPkg/Library/MpInitLib/MpLib.c FillExchangeInfoData, ExchangeInfo->Cr3); more is not firmware.
MAX_CR3_WALKS = 8
# Pages of the mapped file that a read touches count in the process RSS until unmapped; a scan of a
# 1 GiB dump through slices would leave RSS at 1 GiB. Large reads use pread (the page cache is not
# our RSS), small ones slice the mapping (no syscall).
PREAD_MIN = 256 << 10

ELF_MAGIC = b"\x7fELF"
EM_386, EM_X86_64 = 3, 62

# Control-register bits (Intel SDM vol. 3A 2.5)
CR0_PG = 1 << 31
CR4_PAE, CR4_LA57, CR4_PKE = 1 << 5, 1 << 12, 1 << 22


@dataclass
class Segment:
    index: int
    paddr: int
    memsz: int
    offset: int
    filesz: int        # bytes actually present in the file (clipped at EOF)


class DumpMemory:
    """Physical memory of a dump: sorted regions over the mapped file (and the flash image).
    A read may span adjacent regions; holes raise Unreadable."""

    def __init__(self):
        self._starts: list[int] = []
        self._regions: list[tuple[int, int, object, int, str]] = []  # start, size, buffer, offset, label
        self.fallback: DumpMemory | None = None   # the flash image: read where the dump has nothing
        self.fd: int | None = None                  # the dump file, for large reads (see PREAD_MIN)
        self.closed = False

    def add(self, start: int, size: int, buffer, offset: int, label: str) -> None:
        if size <= 0:
            return
        i = bisect.bisect_right(self._starts, start)
        self._starts.insert(i, start)
        self._regions.insert(i, (start, size, buffer, offset, label))

    def regions(self) -> list[tuple[int, int, str]]:
        out = [(s, n, label) for s, n, _b, _o, label in self._regions]
        return out + (self.fallback.regions() if self.fallback is not None else [])

    def _find(self, address: int):
        i = bisect.bisect_right(self._starts, address) - 1
        # Overlapping PT_LOADs are reported when the dump is opened; look a few regions back for them.
        for j in range(i, max(-1, i - OVERLAP_LOOKBACK), -1):
            start, size = self._regions[j][0], self._regions[j][1]
            if start <= address < start + size:
                return self._regions[j]
        return None

    def read(self, address: int, size: int) -> bytes:
        try:
            return self._read(address, size)
        except Unreadable:
            if self.fallback is None:
                raise
            return self.fallback.read(address, size)

    def _read(self, address: int, size: int) -> bytes:
        if self.closed:
            raise Unreadable(address, size, "the dump is closed")
        check_read(address, size)
        if size == 0:
            return b""
        out = []
        addr, left = address, size
        for _ in range(MAX_SEGMENTS + 2):
            r = self._find(addr)
            if r is None:
                raise Unreadable(address, size, f"0x{addr:x} is not in the dump")
            start, rsize, buf, off, _label = r
            n = min(left, start + rsize - addr)
            pos = off + addr - start
            if n >= PREAD_MIN and self.fd is not None and isinstance(buf, mmap.mmap):
                out.append(os.pread(self.fd, n, pos))
            else:
                out.append(buf[pos:pos + n])
            addr += n
            left -= n
            if not left:
                return out[0] if len(out) == 1 else b"".join(out)
        raise Unreadable(address, size, "read spans too many regions")


@dataclass
class Dump:
    path: Path
    kind: str                       # "elf64", "elf32", "raw"
    memory: DumpMemory
    cpus: list[CpuState] = field(default_factory=list)
    segments: list[Segment] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    machine: int | None = None
    file_size: int = 0
    image_path: Path | None = None
    image_base: int | None = None
    _mmap: mmap.mmap | None = None
    _file: object = None

    def problem(self, offset: int | None, message: str, severity: Severity = Severity.ERROR) -> None:
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(Problem(offset, severity, message))

    @property
    def space(self) -> Space:
        """The file as a node space (data=None: node offsets are file offsets)."""
        return Space(str(self.path.name), None, None)

    def close(self) -> None:
        # Buffers handed out by read() are copies (bytes slices), so closing is always safe.
        self.memory.fd = None
        self.memory.closed = True
        if self._mmap is not None:
            self._mmap.close()
            self._mmap = None
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self) -> "Dump":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def node(self) -> Node:
        return dump_node(self)


def open_dump(path: str | Path, *, base: int | None = None, image: str | Path | None = None) -> Dump:
    """Open a QEMU ELF core, or a raw physical-memory file at `base` (also used when the file is
    not ELF), optionally with the firmware image mapped so its last byte is at 4 GiB - 1."""
    p = Path(path)
    f = p.open("rb")
    size = os.fstat(f.fileno()).st_size
    mem = DumpMemory()
    dump = Dump(p, "raw", mem, file_size=size, _file=f)
    if size == 0:
        dump.problem(0, "the dump file is empty")
    else:
        dump._mmap = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        mem.fd = f.fileno()
        m = dump._mmap
        if base is None and m[:4] == ELF_MAGIC:
            _open_elf(dump, m)
        else:
            if base is None:
                base = 0
                if m[:4] != ELF_MAGIC:
                    dump.problem(0, "not an ELF core (no \\x7fELF magic): read as raw physical memory at 0 "
                                    "(give the pmemsave base)", Severity.WARNING)
            dump.segments.append(Segment(0, base, size, 0, size))
            mem.add(base, size, m, 0, "raw")
    if image is not None:
        _add_image(dump, Path(image))
    return dump


def _add_image(dump: Dump, image: Path) -> None:
    from inspector.imagefile import ImageError, read_image

    try:
        data = read_image(image)
    except ImageError as e:
        dump.problem(None, f"firmware image not mapped: {e}")
        return
    dump.image_path = image
    dump.image_base = (1 << 32) - len(data)
    overlap = any(s < 1 << 32 and dump.image_base < s + n for s, n, _l in dump.memory.regions())
    # Dumps hold RAM (dump/dump.c writes the guest's RAM blocks), but with -bios QEMU's ROM copy of the
    # flash is in the dump too:
    # the dump's bytes (the live state) are read first and the image only fills holes.
    dump.memory.fallback = DumpMemory()
    dump.memory.fallback.add(dump.image_base, len(data), data, 0, f"image {image.name}")
    if overlap:
        dump.problem(None, f"the dump already holds memory in the flash range at 0x{dump.image_base:x}: "
                           "the dump's bytes are read there, the image fills the rest", Severity.INFO)


def _open_elf(dump: Dump, m: mmap.mmap) -> None:
    try:
        elf = ELFFile(m)
        header = elf.header
    except (ELFError, ValueError) as e:
        cls = m[4] if len(m) > 4 else 0
        dump.kind = {1: "elf32", 2: "elf64"}.get(cls, "elf")
        dump.problem(0, f"ELF header not readable: {e}")
        return
    dump.kind = "elf64" if elf.elfclass == 64 else "elf32"
    machine = header["e_machine"]
    # pyelftools names known machines ("EM_X86_64") and leaves unknown ones as numbers
    dump.machine = {"EM_386": EM_386, "EM_X86_64": EM_X86_64}.get(machine,
                                                                  machine if isinstance(machine, int) else None)
    if header["e_type"] != "ET_CORE":
        dump.problem(16, f"e_type is {header['e_type']}, not ET_CORE: not a dump-guest-memory core",
                     Severity.WARNING)
    if dump.machine not in (EM_386, EM_X86_64):
        dump.problem(18, f"e_machine {machine} is not EM_386 or EM_X86_64", Severity.WARNING)
    try:
        count = elf.num_segments()
    except ELFError as e:
        dump.problem(header["e_phoff"], f"program header count not readable: {e}")
        return
    if count > MAX_SEGMENTS:
        dump.problem(header["e_phoff"], f"{count} program headers: more than the {MAX_SEGMENTS} any dump has; "
                                        f"reading the first {MAX_SEGMENTS}")
        count = MAX_SEGMENTS
    notes = []
    phent = header["e_phentsize"]
    for i in range(count):
        where = header["e_phoff"] + i * phent
        if where + phent > dump.file_size:
            dump.problem(where, f"program header {i} at 0x{where:x} runs past the end of the file "
                                f"(0x{dump.file_size:x} bytes): the dump is truncated; {i} of {count} read")
            break
        try:
            ph = elf.get_segment(i).header
        except ELFError as e:
            dump.problem(where, f"program header {i}: {e}")
            continue
        if ph["p_type"] == "PT_NOTE":
            notes.append((i, ph["p_offset"], ph["p_filesz"]))
        elif ph["p_type"] == "PT_LOAD":
            _add_load(dump, m, i, where, ph)
    for i, off, size in notes:
        _read_notes(dump, m, i, off, size)


def _add_load(dump: Dump, m: mmap.mmap, i: int, where: int, ph) -> None:
    paddr, off, filesz, memsz = ph["p_paddr"], ph["p_offset"], ph["p_filesz"], ph["p_memsz"]
    avail = max(0, min(filesz, dump.file_size - off))
    if avail < filesz:
        dump.problem(where, f"PT_LOAD {i} (0x{paddr:x}, 0x{filesz:x} bytes at file offset 0x{off:x}) runs past the "
                            f"end of the file (0x{dump.file_size:x}): 0x{filesz - avail:x} bytes missing, "
                            "the dump is truncated")
    if memsz > filesz:
        dump.problem(where, f"PT_LOAD {i}: p_memsz 0x{memsz:x} > p_filesz 0x{filesz:x}; the rest is not in the "
                            "file and reads as a hole", Severity.WARNING)
    for s, n, label in dump.memory.regions():
        if avail and s < paddr + avail and paddr < s + n:
            dump.problem(where, f"PT_LOAD {i} at 0x{paddr:x} overlaps {label} at 0x{s:x}", Severity.WARNING)
            break
    dump.segments.append(Segment(i, paddr, memsz, off, avail))
    dump.memory.add(paddr, avail, m, off, f"PT_LOAD {i}")


def _read_notes(dump: Dump, m: mmap.mmap, seg: int, off: int, size: int) -> None:
    end = min(off + size, dump.file_size)
    if off + size > dump.file_size:
        dump.problem(off, f"PT_NOTE {seg} (0x{size:x} bytes at 0x{off:x}) runs past the end of the file")
    if size > MAX_NOTE_SEGMENT_BYTES:
        dump.problem(off, f"PT_NOTE {seg} of 0x{size:x} bytes is larger than any dump's notes; "
                          f"reading 0x{MAX_NOTE_SEGMENT_BYTES:x}")
        end = min(end, off + MAX_NOTE_SEGMENT_BYTES)
    data = m[off:end] if off < end else b""
    cpus, problems = decode_notes(data, off, len(dump.cpus))
    dump.cpus += cpus
    for p in problems:
        dump.problem(p.offset, p.message, p.severity)


# -- page tables of the dump ----------------------------------------------------------------------
def dump_pages(dump: Dump, cr3: int | None = None, la57: bool | None = None, *,
               config: PagingConfig | None = None, stream: bool = False, cpu: int | None = None) -> WalkResult:
    """Walk the page tables of `cr3` (default: the CR3 of CPU `cpu`, else of the first CPU, from its QEMU
    note); LA57 and PKE from that CPU's CR4 unless given. EFER is not in the dump, so NXE is assumed set
    (OVMF sets it before it maps NX pages: MdeModulePkg/Core/DxeIplPeim/X64/VirtualMemory.c
    EnableExecuteDisableBit). `stream`: keep no leaf (scan()); the result's leaves() then streams them
    while the dump is open."""
    cfg = config or PagingConfig()
    by_index = {c.index: c for c in dump.cpus}
    if cpu is not None and cpu not in by_index:
        result = WalkResult(0, cfg)
        result.problem(None, f"no CPU {cpu} in the dump (CPUs {', '.join(str(i) for i in by_index) or 'none'})")
        result.mappings = Mappings.empty(cfg)
        return result
    state = by_index[cpu] if cpu is not None else (dump.cpus[0] if dump.cpus else None)
    if cr3 is None:
        if state is None or state.cr3 is None:
            result = WalkResult(0, cfg)
            result.problem(None, "no CR3: the dump has no QEMU CPU note; give cr3")
            result.mappings = Mappings.empty(cfg)
            return result
        cr3 = state.cr3
    if state is not None and state.cr4 is not None:
        if la57 is None:
            la57 = bool(state.cr4 & CR4_LA57)
        if config is None:
            cfg.pke = bool(state.cr4 & CR4_PKE)
    if la57 is not None:
        cfg.la57 = la57
    result = (scan if stream else walk)(dump.memory, cr3, cfg)
    if state is not None and state.cr0 is not None and not state.cr0 & CR0_PG:
        result.problem(None, f"CR0 0x{state.cr0:x} has PG clear: paging was off when the dump was taken",
                       Severity.WARNING)
    return result


def distinct_cr3s(dump: Dump) -> list[tuple[int, list[CpuState]]]:
    """(CR3, the CPUs using it) for every CPU with paging on (CR0.PG), in CPU order: the address spaces
    to walk once each. With a different CR4.LA57 the same CR3 is a different walk, so the key is both."""
    groups: dict[tuple[int, bool], list[CpuState]] = {}
    for c in dump.cpus:
        if c.cr3 is None or c.cr0 is None or not c.cr0 & CR0_PG:
            continue
        groups.setdefault((c.cr3, bool((c.cr4 or 0) & CR4_LA57)), []).append(c)
    return [(cr3, cpus) for (cr3, _la57), cpus in groups.items()]


def _cpus_text(cpus: list[CpuState]) -> str:
    return ", ".join(str(c.index) for c in cpus)


def cr3_walks(dump: Dump):
    """(the CPUs using one CR3, its streamed walk) for each distinct CR3, within one budget for all:
    at most MAX_CR3_WALKS of them, and about one walk's tables and leaves together (decoders/paging.py
    MAX_TABLE_VISITS, MAX_LEAVES: two distinct OVMF identity maps, 1,029 tables and 525,310 leaves
    each, are walked; tables that loop stop the walks after the first). When the budget stops it, the
    last item is (None, text): "N more distinct CR3 values (M CPUs) not {}: why", to format with
    the caller's verb."""
    from decoders import paging      # its limits as they are now (a test lowers them)

    groups = distinct_cr3s(dump)
    tables = leaves = 0
    for k, (_cr3, cpus) in enumerate(groups):
        full = tables >= paging.MAX_TABLE_VISITS or leaves >= paging.MAX_LEAVES
        if k == MAX_CR3_WALKS or full:
            rest = sum(len(c) for _cr3, c in groups[k:])
            why = (f"the walks so far read {tables:,} tables and {leaves:,} leaves, the budget of all of them"
                   if full else f"the budget is {MAX_CR3_WALKS} walks")
            yield None, f"{len(groups) - k} more distinct CR3 values ({rest} CPUs) not {{}}: {why}"
            return
        result = dump_pages(dump, cpu=cpus[0].index, stream=True)
        tables += result.tables_read
        leaves += result.leaf_count
        yield cpus, result


def cr3_nodes(dump: Dump) -> list[Node]:
    """One "cpu-page-tables" summary per distinct CR3 (the walk's counts and problems, no leaves; at most
    MAX_CR3_WALKS of them), with the CPUs that use it; CPUs with paging off are named in a note."""
    from decoders.paging_nodes import summary_node

    out: list[Node] = []
    for cpus, result in cr3_walks(dump):
        if cpus is None:
            out[-1].warn(None, result.format("walked") + " (fwinspect pages DUMP --cr3 ADDR walks any of them)")
            break
        node = summary_node(result)
        node.kind = "cpu-page-tables"
        node.title = f"CPU{'s' if len(cpus) > 1 else ''} {_cpus_text(cpus)}: {node.title}"
        node.add("Cpus", [c.index for c in cpus], display=_cpus_text(cpus))
        out.append(node)
    off = [c for c in dump.cpus if c.cr0 is not None and not c.cr0 & CR0_PG]
    if off and out:
        out[-1].note(None, f"CPU{'s' if len(off) > 1 else ''} {_cpus_text(off)}: paging off (CR0.PG clear), "
                           "no page tables to walk")
    return out


# -- presentation ---------------------------------------------------------------------------------
def dump_node(dump: Dump) -> Node:
    space = dump.space
    root = Node("dump", f"{dump.path.name}: {dump.kind}, {len(dump.segments)} segments, {len(dump.cpus)} CPUs",
                space, 0, dump.file_size)
    root.add("Kind", dump.kind)
    if dump.machine is not None:
        root.add("Machine", dump.machine, display={EM_386: "EM_386", EM_X86_64: "EM_X86_64"}.get(dump.machine))
    root.add("FileSize", dump.file_size)
    ram = sum(s.filesz for s in dump.segments)
    root.add("MemoryBytes", ram, display=f"0x{ram:x}")
    if dump.image_path is not None:
        root.add("Image", str(dump.image_path), display=f"{dump.image_path.name} at 0x{dump.image_base:x}")
    segs = root.append(Node("dump-segments", f"{len(dump.segments)} memory segments", space))
    for s in dump.segments:
        sn = Node("dump-segment", f"0x{s.paddr:x}-0x{s.paddr + max(s.filesz, 1) - 1:x} ({s.filesz:#x} bytes)",
                  space, s.offset, s.filesz)
        sn.add("PhysicalAddress", s.paddr)
        sn.add("FileOffset", s.offset)
        sn.add("FileSize", s.filesz)
        sn.add("MemSize", s.memsz)
        segs.append(sn)
    for cpu in dump.cpus:
        root.append(cpu_node(cpu, space))
    for node in cr3_nodes(dump):
        root.append(node)
    if not dump.cpus and dump.kind != "raw":
        root.note(None, "no CPU notes: the dump carries no CPU state")
    root.problems.extend(dump.problems)
    return root
