"""IA-32e paging: 4-level and 5-level walks from CR3 (Intel SDM vol. 3A ch. 4; FACTS B.6).

`walk()` reads each table page once (one 4 KiB read per table, never per entry) and returns every
leaf mapping with the flags of its leaf entry and the effective permissions along the walk (R/W
and U/S ANDed, NX ORed). TDX's shared bit (GPA bit GPAW-1) and AMD SEV's C-bit are masked out of
addresses and shown per mapping. Loops, tables outside memory and reserved bits become problems;
the walk is bounded.
"""
from __future__ import annotations


from dataclasses import dataclass, field
from typing import Iterator

import numpy as np

from decoders.memory import Memory, Unreadable
from decoders.model import Node, Problem, Severity, Space

PAGE = 4096
ENTRIES = 512

# Entry bits (SDM tables 4-15..4-20; edk2 MdePkg/Include/Register/X86/CpuPageTable.h).
P, RW, US, PWT, PCD, A, D, PS, G = (1 << i for i in range(9))
PAT_LARGE = 1 << 12
NX = 1 << 63
PKEY_SHIFT = 59
LEVEL_NAMES = {5: "PML5E", 4: "PML4E", 3: "PDPTE", 2: "PDE", 1: "PTE"}
LEAF_SIZES = {3: 1 << 30, 2: 1 << 21, 1: 1 << 12}

# A 52-bit physical space with every table distinct holds far fewer tables than this in any real
# guest (OVMF's 1 TiB identity map uses ~1,026); hostile tables that fan out stop here.
MAX_TABLES = 1 << 16
# Leaves kept: 2 Mi leaves is 4 TiB in 2 MiB pages (or 8 GiB in 4 KiB pages) at ~40 bytes each;
# tables that map more (hostile fan-out, sharing one PD everywhere) stop with a problem.
MAX_LEAVES = 1 << 21
MAX_PROBLEMS = 1000


@dataclass
class PagingConfig:
    la57: bool = False
    maxphyaddr: int = 52          # CPUID 0x80000008 EAX[7:0]; 52 is the architectural maximum
    nxe: bool = True              # EFER.NXE: bit 63 is reserved when clear
    pke: bool = False             # CR4.PKE: bits 62:59 are a protection key
    shared_bit: int | None = None  # TDX: GPAW-1 (47 or 51); set = shared with the host
    c_bit: int | None = None       # AMD SEV: CPUID 0x8000001F EBX[5:0]; set = encrypted

    @property
    def levels(self) -> int:
        return 5 if self.la57 else 4

    @property
    def address_mask(self) -> int:
        mask = ((1 << self.maxphyaddr) - 1) & ~(PAGE - 1)
        for bit in (self.shared_bit, self.c_bit):
            if bit is not None:
                mask &= ~(1 << bit)
        return mask


@dataclass(slots=True)
class Mapping:
    va: int
    pa: int
    size: int
    level: int            # 3 = 1 GiB (PDPTE), 2 = 2 MiB (PDE), 1 = 4 KiB (PTE)
    entry: int            # the raw leaf entry
    entry_address: int    # where the leaf entry lives (physical)
    writable: bool        # effective: R/W set at every level
    user: bool            # effective: U/S set at every level
    nx: bool              # effective: XD set at any level (with EFER.NXE)
    shared: bool | None = None
    encrypted: bool | None = None

    def flags(self) -> dict[str, bool | int]:
        e = self.entry
        pat = bool(e & (PAT_LARGE if self.level > 1 else PS))
        out: dict[str, bool | int] = {
            "Present": True, "Writable": self.writable, "User": self.user, "WriteThrough": bool(e & PWT),
            "CacheDisable": bool(e & PCD), "Accessed": bool(e & A), "Dirty": bool(e & D),
            "PageSize": self.level > 1, "Global": bool(e & G), "PAT": pat, "NX": self.nx,
            "ProtectionKey": (e >> PKEY_SHIFT) & 0xF,
        }
        if self.shared is not None:
            out["Shared"] = self.shared
        if self.encrypted is not None:
            out["Encrypted"] = self.encrypted
        return out

    def qemu_tlb_flags(self) -> str:
        """The leaf entry's flags as QEMU's `info tlb` prints them (target/i386/monitor.c print_pte)."""
        e = self.entry if self.level > 1 else self.entry & ~PS
        return "".join(c if e & bit else "-" for c, bit in
                       (("X", NX), ("G", G), ("P", PS), ("D", D), ("A", A), ("C", PCD), ("T", PWT),
                        ("U", US), ("W", RW)))


class Mappings:
    """Every leaf of a walk as columns (numpy arrays): a 1 TiB identity map in 2 MiB pages is
    524,288 leaves, too many for one Python object each within the walk budget. Indexing and
    iteration give `Mapping` objects on demand."""

    def __init__(self, va, entry, level, entry_address, writable, user, nx, cfg: "PagingConfig"):
        self.va, self.entry, self.level, self.entry_address = va, entry, level, entry_address
        self.writable, self.user, self.nx = writable, user, nx
        self.cfg = cfg
        self.size = np.left_shift(np.uint64(1), (np.uint64(12) + np.uint64(9) * (level.astype(np.uint64) - np.uint64(1))))
        self.pa = entry & np.uint64(cfg.address_mask) & ~(self.size - np.uint64(1))
        self.shared = (entry >> np.uint64(cfg.shared_bit)) & np.uint64(1) if cfg.shared_bit is not None else None
        self.encrypted = (entry >> np.uint64(cfg.c_bit)) & np.uint64(1) if cfg.c_bit is not None else None

    @classmethod
    def empty(cls, cfg: "PagingConfig") -> "Mappings":
        z = np.zeros(0, dtype=np.uint64)
        b = np.zeros(0, dtype=bool)
        return cls(z, z, np.zeros(0, dtype=np.uint8), z, b, b, b, cfg)

    def __len__(self) -> int:
        return len(self.va)

    def __getitem__(self, i: int) -> Mapping:
        return Mapping(int(self.va[i]), int(self.pa[i]), int(self.size[i]), int(self.level[i]), int(self.entry[i]),
                       int(self.entry_address[i]), bool(self.writable[i]), bool(self.user[i]), bool(self.nx[i]),
                       None if self.shared is None else bool(self.shared[i]),
                       None if self.encrypted is None else bool(self.encrypted[i]))

    def __iter__(self) -> Iterator[Mapping]:
        return (self[i] for i in range(len(self)))

    def count_by_level(self) -> dict[int, int]:
        return {lvl: int(np.count_nonzero(self.level == lvl)) for lvl in (3, 2, 1)}


@dataclass
class WalkResult:
    cr3: int
    config: PagingConfig
    mappings: Mappings | None = None
    tables_read: int = 0
    problems: list[Problem] = field(default_factory=list)

    def problem(self, address: int | None, message: str, severity: Severity = Severity.ERROR) -> None:
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(Problem(address, severity, message))


def canonical(va: int, la57: bool) -> int:
    top = 56 if la57 else 47
    return va | (-(1 << (top + 1)) & ((1 << 64) - 1)) if va >> top & 1 else va


def _reserved_mask(level: int, leaf: bool, cfg: PagingConfig) -> int:
    """Bits that must be zero in an entry (SDM 4.5.4): above MAXPHYADDR (up to bit 51), XD
    without EFER.NXE, PS in a PML5E/PML4E, and the low address bits of 1 GiB / 2 MiB leaves."""
    bad = ((1 << 52) - 1) & ~((1 << cfg.maxphyaddr) - 1)
    if not cfg.nxe:
        bad |= NX
    if level >= 4:
        bad |= PS
    if leaf and level == 3:
        bad |= ((1 << 30) - 1) & ~((1 << 13) - 1)
    elif leaf and level == 2:
        bad |= ((1 << 21) - 1) & ~((1 << 13) - 1)
    return bad


def walk(mem: Memory, cr3: int, cfg: PagingConfig | None = None) -> WalkResult:
    """Every leaf reachable from CR3: one read per table page, entries decoded with numpy."""
    cfg = cfg or PagingConfig()
    result = WalkResult(cr3, cfg)
    mask = cfg.address_mask
    nx_mask = NX if cfg.nxe else 0
    cols: dict[str, list] = {k: [] for k in ("va", "entry", "level", "addr", "rw", "us", "nx")}
    root = cr3 & ((1 << cfg.maxphyaddr) - 1) & ~(PAGE - 1)
    u64 = np.uint64
    # (table address, level, va prefix, effective rw, effective us, effective nx, ancestors)
    stack = [(root, cfg.levels, 0, True, True, False, (root,))]
    cache: dict[int, np.ndarray] = {}   # tables reached more than once are read once
    visits = leaves = 0
    while stack:
        table, level, va_base, rw, us, nx, path = stack.pop()
        visits += 1
        if visits > MAX_TABLES or leaves > MAX_LEAVES:
            result.problem(table, f"walk stopped after {visits - 1} table visits and {leaves} leaves "
                                  f"(bounds {MAX_TABLES} / {MAX_LEAVES})")
            break
        arr = cache.get(table)
        if arr is None:
            try:
                raw = mem.read(table, PAGE)
            except Unreadable as e:
                result.problem(table, f"{LEVEL_NAMES[level]} table at 0x{table:x} is not readable ({e})")
                continue
            result.tables_read += 1
            arr = cache[table] = np.frombuffer(raw, dtype="<u8")
        index = np.flatnonzero(arr & u64(P))
        if not len(index):
            continue
        entries = arr[index]
        if level == 1:
            is_leaf = np.ones(len(index), dtype=bool)
        elif level in (2, 3):
            is_leaf = (entries & u64(PS)) != 0
        else:
            is_leaf = np.zeros(len(index), dtype=bool)
        reserved = np.where(is_leaf, u64(_reserved_mask(level, True, cfg)), u64(_reserved_mask(level, False, cfg)))
        bad = (entries & reserved) != 0
        if bad.any():
            for i in np.flatnonzero(bad)[:16]:
                e = int(entries[i])
                where = table + int(index[i]) * 8
                result.problem(where, f"{LEVEL_NAMES[level]}[{int(index[i])}] 0x{e:016x} at 0x{where:x} has reserved "
                                      f"bits 0x{e & int(reserved[i]):x} set (the CPU faults on it); not followed")
            keep = ~bad
            index, entries, is_leaf = index[keep], entries[keep], is_leaf[keep]
        shift = 12 + 9 * (level - 1)
        leaf_idx, leaf_ent = index[is_leaf], entries[is_leaf]
        if len(leaf_idx):
            leaves += len(leaf_idx)
            cols["va"].append(u64(va_base) | (leaf_idx.astype(np.uint64) << u64(shift)))
            cols["entry"].append(leaf_ent)
            cols["level"].append(np.full(len(leaf_idx), level, dtype=np.uint8))
            cols["addr"].append(u64(table) + leaf_idx.astype(np.uint64) * u64(8))
            cols["rw"].append(((leaf_ent & u64(RW)) != 0) & rw)
            cols["us"].append(((leaf_ent & u64(US)) != 0) & us)
            cols["nx"].append(((leaf_ent & u64(nx_mask)) != 0) | nx)
        children = []
        for i, e in zip(index[~is_leaf].tolist(), entries[~is_leaf].tolist()):
            nxt = e & mask
            if nxt in path:
                result.problem(table + i * 8, f"{LEVEL_NAMES[level]}[{i}] points back to the table at 0x{nxt:x} "
                                              f"above it: a loop, not followed")
                continue
            children.append((nxt, level - 1, va_base | i << shift, rw and bool(e & RW), us and bool(e & US),
                             nx or bool(e & nx_mask), path + (nxt,)))
        prefetch = getattr(mem, "prefetch", None)
        if prefetch is not None and len(children) > 1:
            # A live target's Memory reads the next level's tables in a few pipelined requests
            # rather than one round trip each (DESIGN.md: one read per table page, batched).
            prefetch([c[0] for c in children])
        stack.extend(reversed(children))
    if cols["va"]:
        va = np.concatenate(cols["va"])
        top = u64(56 if cfg.la57 else 47)
        sign = ((va >> top) & u64(1)) != 0
        va = np.where(sign, va | ~((u64(1) << (top + u64(1))) - u64(1)), va)
        # Leaves of a table come before those of the tables it points to: sort by address, so the
        # list reads in VA order as `info tlb` prints it and merge() sees neighbours side by side.
        order = np.argsort(va, kind="stable")
        result.mappings = Mappings(va[order], np.concatenate(cols["entry"])[order],
                                   np.concatenate(cols["level"])[order], np.concatenate(cols["addr"])[order],
                                   np.concatenate(cols["rw"])[order], np.concatenate(cols["us"])[order],
                                   np.concatenate(cols["nx"])[order], cfg)
    else:
        result.mappings = Mappings.empty(cfg)
    return result


@dataclass
class Range:
    va: int
    size: int
    pa: int
    writable: bool
    user: bool
    nx: bool
    shared: bool | None
    encrypted: bool | None
    pages: int

    @property
    def end(self) -> int:
        return self.va + self.size


def merge(m: Mappings, *, contiguous_pa: bool = False, nx: bool = True) -> list[Range]:
    """Adjacent leaves with the same effective permissions (and shared/encrypted state) as one
    range, like QEMU's `info mem` but keeping NX (`nx=False` merges exactly as `info mem` does);
    `contiguous_pa` also requires the physical addresses to continue."""
    n = len(m)
    if n == 0:
        return []
    key = m.writable.astype(np.uint8) | (m.user.astype(np.uint8) << 1)
    if nx:
        key |= m.nx.astype(np.uint8) << 2
    if m.shared is not None:
        key |= m.shared.astype(np.uint8) << 3
    if m.encrypted is not None:
        key |= m.encrypted.astype(np.uint8) << 4
    brk = np.ones(n, dtype=bool)
    brk[1:] = (m.va[1:] != m.va[:-1] + m.size[:-1]) | (key[1:] != key[:-1])
    if contiguous_pa:
        brk[1:] |= m.pa[1:] != m.pa[:-1] + m.size[:-1]
    starts = np.flatnonzero(brk)
    ends = np.append(starts[1:], n)
    out = []
    for s, e in zip(starts.tolist(), ends.tolist()):
        size = int(m.va[e - 1]) + int(m.size[e - 1]) - int(m.va[s])
        out.append(Range(int(m.va[s]), size, int(m.pa[s]), bool(m.writable[s]), bool(m.user[s]),
                         bool(m.nx[s]) if nx else False,
                         None if m.shared is None else bool(m.shared[s]),
                         None if m.encrypted is None else bool(m.encrypted[s]), e - s))
    return out


def translate(mem: Memory, cr3: int, va: int, cfg: PagingConfig | None = None) -> tuple[int | None, list[str]]:
    """(physical address or None, the walk as text, one line per level)."""
    cfg = cfg or PagingConfig()
    mask = cfg.address_mask
    table = cr3 & ((1 << cfg.maxphyaddr) - 1) & ~(PAGE - 1)
    steps = []
    for level in range(cfg.levels, 0, -1):
        shift = 12 + 9 * (level - 1)
        index = va >> shift & 0x1FF
        try:
            entry = int.from_bytes(mem.read(table + index * 8, 8), "little")
        except Unreadable:
            steps.append(f"{LEVEL_NAMES[level]}[{index}] at 0x{table + index * 8:x}: not readable")
            return None, steps
        steps.append(f"{LEVEL_NAMES[level]}[{index}] at 0x{table + index * 8:x} = 0x{entry:016x}")
        if not entry & P:
            steps.append("not present")
            return None, steps
        if level == 1 or (level in (2, 3) and entry & PS):
            size = 1 << shift
            return (entry & mask & ~(size - 1)) | (va & (size - 1)), steps
        table = entry & mask
    return None, steps


class VirtualMemory:
    """A Memory that reads virtual addresses through the page tables of `cr3`."""

    def __init__(self, phys: Memory, cr3: int, cfg: PagingConfig | None = None):
        self.phys, self.cr3, self.cfg = phys, cr3, cfg or PagingConfig()
        self._cache: dict[int, int | None] = {}

    def _page(self, va: int) -> int | None:
        page = va & ~(PAGE - 1)
        if page not in self._cache:
            if len(self._cache) > 65536:
                self._cache.clear()
            self._cache[page] = translate(self.phys, self.cr3, page, self.cfg)[0]
        return self._cache[page]

    def read(self, address: int, size: int) -> bytes:
        out = bytearray()
        va = address
        while len(out) < size:
            pa = self._page(va)
            if pa is None:
                raise Unreadable(va, size - len(out), "virtual address not mapped")
            n = min(size - len(out), PAGE - (va & (PAGE - 1)))
            out += self.phys.read(pa | (va & (PAGE - 1)), n)
            va += n
        return bytes(out)


# -- presentation ------------------------------------------------------------------------------
def _perm(writable: bool, user: bool, nx: bool) -> str:
    return ("u" if user else "-") + "r" + ("w" if writable else "-") + ("-" if nx else "x")


def mapping_node(m: Mapping) -> Node:
    unit = {3: "1 GiB", 2: "2 MiB", 1: "4 KiB"}[m.level]
    n = Node("mapping", f"0x{m.va:016x} -> 0x{m.pa:x} {unit} {_perm(m.writable, m.user, m.nx)}",
             None, m.entry_address, 8)
    n.add("VirtualAddress", m.va)
    n.add("PhysicalAddress", m.pa)
    n.add("Size", m.size, display=unit)
    n.add("Level", m.level, display=LEVEL_NAMES[m.level])
    n.add("Entry", m.entry, display=f"0x{m.entry:016x}")
    n.add("EntryAddress", m.entry_address)
    for name, value in m.flags().items():
        n.add(name, value)
    return n


def range_node(r: Range) -> Node:
    state = ""
    if r.shared is not None:
        state = " shared" if r.shared else " private"
    if r.encrypted is not None:
        state += " encrypted" if r.encrypted else " unencrypted"
    n = Node("page-range", f"0x{r.va:016x}-0x{r.end - 1:016x} {_perm(r.writable, r.user, r.nx)}{state} "
                           f"({_size(r.size)}, {r.pages} leaves)")
    n.add("VirtualAddress", r.va)
    n.add("Size", r.size, display=_size(r.size))
    n.add("PhysicalAddress", r.pa, display=f"0x{r.pa:x} (first leaf)")
    n.add("Writable", r.writable)
    n.add("User", r.user)
    n.add("NX", r.nx)
    if r.shared is not None:
        n.add("Shared", r.shared)
    if r.encrypted is not None:
        n.add("Encrypted", r.encrypted)
    n.add("Leaves", r.pages)
    return n


def _size(n: int) -> str:
    for unit, shift in (("TiB", 40), ("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if n >= 1 << shift and n % (1 << shift) == 0:
            return f"{n >> shift} {unit}"
    return f"0x{n:x} bytes"


def page_tables_node(result: WalkResult, *, leaves: bool = False) -> Node:
    cfg = result.config
    root = Node("page-tables", f"Page tables at CR3 0x{result.cr3:x} ({cfg.levels}-level, "
                               f"{len(result.mappings)} leaves, {result.tables_read} tables)")
    root.add("CR3", result.cr3)
    root.add("Levels", cfg.levels, display="5 (CR4.LA57)" if cfg.la57 else "4")
    root.add("MaxPhyAddr", cfg.maxphyaddr)
    if cfg.shared_bit is not None:
        root.add("TdxSharedBit", cfg.shared_bit)
    if cfg.c_bit is not None:
        root.add("SevCBit", cfg.c_bit)
    root.add("TablesRead", result.tables_read)
    counts = result.mappings.count_by_level()
    root.add("Leaves", len(result.mappings),
             display=f"{len(result.mappings)} ({counts[3]} x 1 GiB, {counts[2]} x 2 MiB, {counts[1]} x 4 KiB)")
    mapped = int(result.mappings.size.sum()) if len(result.mappings) else 0
    root.add("MappedBytes", mapped, display=_size(mapped) if mapped else "0")
    root.problems.extend(result.problems)
    if leaves:
        root.children = [mapping_node(m) for m in result.mappings]
    else:
        root.children = [range_node(r) for r in merge(result.mappings)]
    return root


def iter_mapping_dicts(result: WalkResult) -> Iterator[dict]:
    """JSON of every leaf without building 260k Nodes first (the `pages --json` stream)."""
    for m in result.mappings:
        yield mapping_node(m).to_json()


# -- drill-down: the tables themselves ---------------------------------------------------------------
# Entries shown as fields per table: every pointer to a table below, but only the first few of a
# table of leaves (OVMF's identity map has 1,024 PD tables of 512 leaves each); the table's bytes,
# in its own space, show all of them in the hex view.
MAX_LEAF_FIELDS = 8


def _entry_text(entry: int, level: int, leaf: bool, cfg: PagingConfig) -> str:
    perms = ("w" if entry & RW else "-") + ("u" if entry & US else "-") + ("x" if not (cfg.nxe and entry & NX) else "-")
    if leaf:
        size = {3: "1 GiB", 2: "2 MiB", 1: "4 KiB"}[level]
        return f"{size} page 0x{entry & cfg.address_mask & ~((LEAF_SIZES[level]) - 1):x} {perms}"
    return f"-> {LEVEL_NAMES[level - 1]} table 0x{entry & cfg.address_mask:x} {perms}"


def table_tree_node(mem: Memory, cr3: int, cfg: PagingConfig | None = None) -> Node:
    """The page tables as a tree of tables, from CR3 down: each table a node whose space holds its
    4 KiB (so a view shows the raw entries), its present entries as fields, and the tables it
    points to as children. Bounded like walk(); a loop is a problem, not a hang."""
    cfg = cfg or PagingConfig()
    root_addr = cr3 & ((1 << cfg.maxphyaddr) - 1) & ~(PAGE - 1)
    top = Node("page-table-tree", f"Tables from CR3 0x{cr3:x} ({cfg.levels}-level)")
    visits = 0
    # (table address, level, VA prefix, parent node, ancestors)
    stack = [(root_addr, cfg.levels, 0, top, (root_addr,))]
    while stack:
        addr, level, va_base, parent, path = stack.pop()
        visits += 1
        if visits > MAX_TABLES:
            top.problem(addr, f"stopped after {MAX_TABLES} tables")
            break
        try:
            raw = mem.read(addr, PAGE)
        except Unreadable as e:
            parent.problem(addr, f"{LEVEL_NAMES[level]} table at 0x{addr:x} is not readable ({e})")
            continue
        entries = np.frombuffer(raw, dtype="<u8")
        present = np.flatnonzero(entries & np.uint64(P))
        shift = 12 + 9 * (level - 1)
        node = parent.append(Node("page-table", "", Space(f"{LEVEL_NAMES[level]} table@0x{addr:x}", raw, addr),
                                  0, PAGE))
        values = entries[present]
        if level == 1:
            is_leaf = np.ones(len(present), dtype=bool)
        elif level in (2, 3):
            is_leaf = (values & np.uint64(PS)) != 0
        else:
            is_leaf = np.zeros(len(present), dtype=bool)
        leaf_idx, table_idx = present[is_leaf], present[~is_leaf]
        leaves, tables = len(leaf_idx), len(table_idx)
        shown = min(leaves, MAX_LEAF_FIELDS)
        children = []
        # Fields in entry order: the table pointers and the first few leaves.
        for i in sorted(table_idx.tolist() + leaf_idx[:shown].tolist()):
            e = int(entries[i])
            leaf = level == 1 or (level in (2, 3) and bool(e & PS))
            va = canonical(va_base | i << shift, cfg.la57)
            node.add(f"{LEVEL_NAMES[level]}[{i}]", e, i * 8, 8, f"VA 0x{va:x}: {_entry_text(e, level, leaf, cfg)}")
            if leaf:
                continue
            nxt = e & cfg.address_mask
            if nxt in path:
                node.problem(i * 8, f"entry {i} points back to the table at 0x{nxt:x} above it: a loop")
                continue
            children.append((nxt, level - 1, va_base | i << shift, node, path + (nxt,)))
        if leaves > shown:
            node.note(None, f"{leaves - shown} more leaf entries: in the bytes of this table")
        node.title = (f"{LEVEL_NAMES[level]} table at 0x{addr:x} (VA 0x{canonical(va_base, cfg.la57):x}): "
                      f"{len(present)} present" + (f", {tables} tables" if tables else "")
                      + (f", {leaves} leaves" if leaves else ""))
        stack.extend(reversed(children))
    return top
