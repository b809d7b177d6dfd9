"""IA-32e paging: 4-level and 5-level walks from CR3 (Intel SDM vol. 3A ch. 4: 4.5 the entry
formats, 4.6 access rights).

The walk goes depth first in entry order, so leaves come out in VA order in chunks of at most 512
(numpy columns), and reads and decodes each table page once however many entries point at it.
`walk()` keeps every leaf (up to MAX_LEAVES); `scan()` keeps none, and its `leaves()` walks again
and streams them, holding one chunk at a time. Each leaf carries the flags of its leaf entry and
the effective permissions along the walk (R/W and U/S ANDed, XD ORed, SDM 4.6). TDX's shared bit
(GPA bit GPAW-1) and AMD SEV's C-bit are masked out of addresses and shown per mapping. Loops,
tables outside memory and reserved bits are problems; an entry that points at a table another
entry already reached (aliasing) is a located note; table visits and leaves kept are budgets.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Iterator

import numpy as np

from decoders import budget
from decoders.memory import Memory, Unreadable
from decoders.model import Problem, Severity

PAGE = 4096
ENTRIES = 512

# Entry bits (SDM tables 4-15..4-20; edk2 MdePkg/Include/Register/X86/CpuPageTable.h).
P, RW, US, PWT, PCD, A, D, PS, G = (1 << i for i in range(9))
u64 = np.uint64
PAT_LARGE = 1 << 12
NX = 1 << 63
PKEY_SHIFT = 59
LEVEL_NAMES = {5: "PML5E", 4: "PML4E", 3: "PDPTE", 2: "PDE", 1: "PTE"}
LEAF_SIZES = {3: 1 << 30, 2: 1 << 21, 1: 1 << 12}

# Table visits per walk. Each visit yields at most 512 leaves (a shared table is decoded once, then
# taken from the cache); OVMF's 1 TiB identity map is 1,027 visits, a 64 MiB dump holds at most
# 16,384 tables, and 16,384 visits are at most 8 Mi leaves, walked twice in a few seconds. Tables
# that fan out further (every entry pointing at the same tables) stop here, located.
MAX_TABLE_VISITS = 1 << 14
# Leaves walk() keeps in memory (about 50 bytes each in columns) for the app and live sessions;
# scan() keeps none and leaves() streams them.
MAX_LEAVES = 1 << 20
# Leaves (or merged ranges) listed one by one. As text, a line each: the 1 TiB identity map OVMF
# builds in 2 MiB pages, 524,288 leaves and the largest real map we know of, is listed whole. As
# JSON, about 1.3 KB each: 262,144 are 340 MB, within the 512 MiB output budget (decoders/budget.py).
MAX_LISTED = 1 << 19
MAX_LISTED_JSON = 1 << 18
# Merged ranges scan() keeps, so that listing them needs no second walk: a real map has a few dozen
# (OVMF's identity map is one), a hostile one may alternate permissions at every leaf.
MAX_HELD_RANGES = 4096
# Decoded tables kept for reuse (up to 22 KiB of leaf columns each): the first ones reached, which
# is where shared tables show up; a table past them is decoded again at each visit.
MAX_CACHED_TABLES = 256
# Entries noted one by one for pointing at a table another entry reaches; the rest are counted.
MAX_SHARED_NOTES = 16
# Entries with reserved bits reported per table (the CPU faults on each; one table can hold 512).
MAX_RESERVED_NOTES = 16


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
        self.size = np.left_shift(u64(1), u64(12) + u64(9) * (level.astype(np.uint64) - u64(1)))
        self.pa = entry & np.uint64(cfg.address_mask) & ~(self.size - np.uint64(1))
        self.shared = (entry >> np.uint64(cfg.shared_bit)) & np.uint64(1) if cfg.shared_bit is not None else None
        self.encrypted = (entry >> np.uint64(cfg.c_bit)) & np.uint64(1) if cfg.c_bit is not None else None

    @classmethod
    def _columns(cls, cfg: "PagingConfig", **cols) -> "Mappings":
        """From every column already computed (the walk derives size, pa, shared and encrypted
        once per table, not per chunk)."""
        m = cls.__new__(cls)
        m.cfg = cfg
        m.__dict__.update(cols)
        return m

    @classmethod
    def empty(cls, cfg: "PagingConfig") -> "Mappings":
        z = np.zeros(0, dtype=np.uint64)
        b = np.zeros(0, dtype=bool)
        return cls(z, z, np.zeros(0, dtype=np.uint8), z, b, b, b, cfg)

    @classmethod
    def concat(cls, chunks: list["Mappings"], cfg: "PagingConfig") -> "Mappings":
        if len(chunks) == 1:
            return chunks[0]
        if not chunks:
            return cls.empty(cfg)
        cols = [np.concatenate([getattr(c, n) for c in chunks]) for n in _COLUMNS]
        return cls(*cols, cfg)

    def head(self, n: int) -> "Mappings":
        if n >= len(self):
            return self
        return Mappings(*(getattr(self, c)[:n] for c in _COLUMNS), self.cfg)

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


_INDEXES = np.arange(ENTRIES, dtype=np.uint64)
_COLUMNS = ("va", "entry", "level", "entry_address", "writable", "user", "nx")
_ALL_COLUMNS = _COLUMNS + ("size", "pa", "shared", "encrypted")


@dataclass
class WalkResult:
    cr3: int
    config: PagingConfig
    mappings: Mappings | None = None   # every leaf, when the walk kept them (walk(); scan() does not)
    tables_read: int = 0               # distinct tables read
    problems: list[Problem] = field(default_factory=list)
    # What the walk counted, kept or not: leaves by level (3, 2, 1), bytes they map, table visits.
    leaf_counts: dict[int, int] = field(default_factory=lambda: {3: 0, 2: 0, 1: 0})
    mapped_bytes: int = 0
    visits: int = 0
    ranges: int | None = None          # merged ranges (scan() counts them)
    # Where a listing one by one stops (scan()): ("leaves" or "ranges", at most how many) ->
    # [VA, entry address, count left out]
    unlisted: dict[tuple[str, int], list[int]] = field(default_factory=dict)
    # The merged ranges, when scan() found at most MAX_HELD_RANGES of them (merged() then needs no
    # second walk).
    held_ranges: list["Range"] | None = None
    memory: Memory | None = field(default=None, repr=False)  # for leaves() to walk again

    @property
    def leaf_count(self) -> int:
        return sum(self.leaf_counts.values())

    def problem(self, address: int | None, message: str, severity: Severity = Severity.ERROR) -> None:
        if budget.current().take_problem():
            self.problems.append(Problem(address, severity, message))

    def leaves(self, limit: int | None = None) -> Iterator[Mappings]:
        """The leaves in VA order, at most `limit`: the kept ones as one chunk (walk()), or (after
        scan()) a second walk yielding chunks of at most 512 and holding one at a time."""
        if self.mappings is not None:
            yield self.mappings if limit is None else self.mappings.head(limit)
            return
        if self.memory is None:
            return
        # Its problems were recorded by the first walk: this one reports to a budget of its own.
        quiet = WalkResult(self.cr3, self.config)
        yield from _Walker(self.memory, quiet, budget.Budget(), limit).run()

    def merged(self) -> Iterator["Range"]:
        """The leaves merged into ranges (merge(), nx kept), in VA order: the ones scan() kept, or
        merged while the leaves stream."""
        if self.held_ranges is not None:
            return iter(self.held_ranges)
        return iter_ranges(self.leaves())


def canonical(va: int, la57: bool) -> int:
    """`va` with bit 47 (4-level) or bit 56 (5-level) copied into the bits above it (Intel SDM vol. 1
    3.3.7.1): the VA a PML4E[256..511] or PML5E[256..511] maps."""
    top = 56 if la57 else 47
    return va | (-(1 << (top + 1)) & ((1 << 64) - 1)) if va >> top & 1 else va


def leaf_mask(entries: np.ndarray, level: int) -> np.ndarray:
    """Which present entries map a page (SDM 4.5: every PTE; a PDE or PDPTE with PS, bit 7, set;
    never a PML4E or PML5E, where PS is reserved)."""
    if level == 1:
        return np.ones(len(entries), dtype=bool)
    if level in (2, 3):
        return (entries & u64(PS)) != 0
    return np.zeros(len(entries), dtype=bool)


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


@dataclass(slots=True)
class _Table:
    """One table page decoded for one level: its present, well-formed entries split into leaves and
    pointers to tables below, in entry order. `leaves` holds the leaves' columns as Mappings with
    `va` relative to the table's VA and the permissions of the leaf entries alone."""
    leaves: Mappings
    pointers: list[tuple[int, int, int]]   # (entry index, entry, leaves before it) in index order


class _Walker:
    """Depth first in entry order, so leaves come out in VA order, one chunk per run of leaves in a
    table; each table page is read and decoded once per level (the decoded table is kept while
    MAX_CACHED_TABLES allows) however many entries point at it."""

    def __init__(self, mem: Memory, result: WalkResult, b: budget.Budget, limit: int | None = None):
        self.mem, self.result, self.budget, self.limit = mem, result, b, limit
        self.cfg = result.config
        self.mask = self.cfg.address_mask
        self.nx_mask = NX if self.cfg.nxe else 0
        # level -> (reserved bits of a leaf entry, of an entry pointing at a table)
        self.reserved = {lv: (u64(_reserved_mask(lv, True, self.cfg)), u64(_reserved_mask(lv, False, self.cfg)))
                         for lv in range(1, 6)}
        self.cache: dict[tuple[int, int], _Table | None] = {}
        self.read: set[int] = set()            # table pages read (tables_read counts them)
        self.decoded: set[tuple[int, int]] = set()   # (table, level) whose problems were reported
        self.reached: dict[int, int] = {}      # table -> the entry that first pointed at it
        self.edges: set[int] = set()           # entries seen pointing at tables (aliasing, loops)
        self.shared = 0                        # entries pointing at a table another entry reaches
        self.leaves = 0
        self.stopped = False

    def problem(self, address: int | None, message: str, severity: Severity = Severity.ERROR) -> None:
        if self.budget.take_problem():
            self.result.problems.append(Problem(address, severity, message))

    def run(self) -> Iterator[Mappings]:
        cfg = self.cfg
        root = self.result.cr3 & ((1 << cfg.maxphyaddr) - 1) & ~(PAGE - 1)
        self.reached[root] = -1
        dropped = self.budget.dropped.get("problems", 0)
        yield from self._visit(root, cfg.levels, 0, True, True, False, (root,))
        if self.shared > MAX_SHARED_NOTES:
            self.problem(None, f"{self.shared - MAX_SHARED_NOTES:,} more entries point at tables other entries "
                               f"also reach (the first {MAX_SHARED_NOTES} are noted where they are)",
                         Severity.INFO)
        dropped = self.budget.dropped.get("problems", 0) - dropped
        if dropped:   # past the problem budget: one closing line says how many were left out
            self.result.problems.append(Problem(None, Severity.ERROR, f"{dropped:,} more problems in the walk not "
                                                                      f"listed; {self.budget.describe('problems')}"))
        self.result.tables_read = len(self.read)

    def _decode(self, table: int, level: int) -> _Table | None:
        key = (table, level)
        if key in self.cache:
            return self.cache[key]
        try:
            raw = self.mem.read(table, PAGE)
        except Unreadable as e:
            if key not in self.decoded:
                self.problem(table, f"{LEVEL_NAMES[level]} table at 0x{table:x} is not readable ({e})")
            self.decoded.add(key)
            self.cache[key] = None
            return None
        self.read.add(table)
        report = key not in self.decoded
        self.decoded.add(key)
        arr = np.frombuffer(raw, dtype="<u8")
        present = (arr & u64(P)) != 0
        if present.all():      # a full table (OVMF's identity map is 1,024 of them): no gather
            index, entries = _INDEXES, arr
        else:
            index = np.flatnonzero(present).astype(np.uint64)
            entries = arr[present]
        is_leaf = leaf_mask(entries, level)
        leaf_bad, table_bad = self.reserved[level]
        if level == 1:
            bad = (entries & leaf_bad) != 0
        elif level > 3:
            bad = (entries & table_bad) != 0
        else:
            bad = (entries & np.where(is_leaf, leaf_bad, table_bad)) != 0
        if bad.any():
            if report:
                for i in np.flatnonzero(bad)[:MAX_RESERVED_NOTES].tolist():
                    e, n = int(entries[i]), int(index[i])
                    where = table + n * 8
                    mask = int(leaf_bad if is_leaf[i] else table_bad)
                    self.problem(where, f"{LEVEL_NAMES[level]}[{n}] 0x{e:016x} at 0x{where:x} has reserved bits "
                                        f"0x{e & mask:x} set (the CPU faults on it); not followed")
            keep = ~bad
            index, entries, is_leaf = index[keep], entries[keep], is_leaf[keep]
        if is_leaf.all():
            pointers: list[tuple[int, int, int]] = []
            idx, ent = index, entries
        else:
            pointers = [(i, e, int(before)) for i, e, before in
                        zip(index[~is_leaf].tolist(), entries[~is_leaf].tolist(),
                            np.flatnonzero(~is_leaf) - np.arange(int((~is_leaf).sum())))]
            idx, ent = index[is_leaf], entries[is_leaf]
        shift = u64(12 + 9 * (level - 1))
        size = u64(1) << shift
        cfg = self.cfg
        leaves = Mappings._columns(
            cfg, va=idx << shift, entry=ent, level=np.full(len(idx), level, dtype=np.uint8),
            entry_address=u64(table) + (idx << u64(3)), writable=(ent & u64(RW)) != 0, user=(ent & u64(US)) != 0,
            nx=(ent & u64(self.nx_mask)) != 0, size=np.full(len(idx), size, dtype=np.uint64),
            pa=ent & u64(self.mask & ~(int(size) - 1)),
            shared=(ent >> u64(cfg.shared_bit)) & u64(1) if cfg.shared_bit is not None else None,
            encrypted=(ent >> u64(cfg.c_bit)) & u64(1) if cfg.c_bit is not None else None)
        decoded = _Table(leaves, pointers)
        if len(self.cache) < MAX_CACHED_TABLES:
            self.cache[key] = decoded
        prefetch = getattr(self.mem, "prefetch", None)
        if prefetch is not None and len(pointers) > 1:
            # A live target's Memory reads the next level's tables in a few pipelined requests
            # rather than one round trip each (one read per table page, batched: never a read per entry).
            prefetch([e & self.mask for _, e, _ in pointers if ((e & self.mask), level - 1) not in self.cache])
        return decoded

    def _visit(self, table: int, level: int, va_base: int, rw: bool, us: bool, nx: bool,
               path: tuple[int, ...]) -> Iterator[Mappings]:
        result = self.result
        result.visits += 1
        if result.visits > MAX_TABLE_VISITS:
            self.stopped = True
            self.problem(table, f"walk stopped at the {LEVEL_NAMES[level]} table at 0x{table:x} (VA "
                                f"0x{va_base:x}): the budget is {MAX_TABLE_VISITS:,} table visits")
            return
        t = self._decode(table, level)
        if t is None:
            return
        shift = 12 + 9 * (level - 1)
        done = 0
        for i, e, before in t.pointers:
            if before > done:
                yield from self._leaves(t, done, before, table, level, va_base, rw, us, nx)
                done = before
            if self.stopped:
                return
            where = table + i * 8
            nxt = e & self.mask
            if nxt in path:
                if where not in self.edges:
                    self.edges.add(where)
                    self.problem(where, f"{LEVEL_NAMES[level]}[{i}] points back to the table at 0x{nxt:x} "
                                        f"above it: a loop, not followed")
                continue
            self._note_shared(where, nxt, level, i)
            yield from self._visit(nxt, level - 1, canonical(va_base | i << shift, self.cfg.la57),
                                   rw and bool(e & RW), us and bool(e & US), nx or bool(e & self.nx_mask),
                                   path + (nxt,))
            if self.stopped:
                return
        if done < len(t.leaves):
            yield from self._leaves(t, done, len(t.leaves), table, level, va_base, rw, us, nx)

    def _note_shared(self, where: int, nxt: int, level: int, i: int) -> None:
        """Aliasing: a second entry pointing at a table already reached (legal, and each VA
        through it maps what the table says; a hostile dump uses it to multiply leaves)."""
        if where in self.edges:
            return   # the same entry again, because a table above it is shared: noted there
        self.edges.add(where)
        first = self.reached.setdefault(nxt, where)
        if first == where:
            return
        self.shared += 1
        if self.shared <= MAX_SHARED_NOTES:
            also = "CR3" if first < 0 else f"the entry at 0x{first:x}"
            self.problem(where, f"{LEVEL_NAMES[level]}[{i}] at 0x{where:x} points at the {LEVEL_NAMES[level - 1]} "
                                f"table at 0x{nxt:x} that {also} also points at: its leaves appear at both VAs",
                         Severity.INFO)

    def _leaves(self, t: _Table, lo: int, hi: int, table: int, level: int, va_base: int, rw: bool,
                us: bool, nx: bool) -> Iterator[Mappings]:
        if self.limit is not None and self.leaves + (hi - lo) > self.limit:
            hi = lo + max(0, self.limit - self.leaves)
            self.stopped = True
            if hi == lo:
                return
        n = hi - lo
        self.leaves += n
        result = self.result
        result.leaf_counts[level] += n
        result.mapped_bytes += n << (12 + 9 * (level - 1))
        m = t.leaves
        cut = {c: None if getattr(m, c) is None else getattr(m, c)[lo:hi] for c in _ALL_COLUMNS}
        cut["va"] = cut["va"] | u64(va_base)
        # Effective permissions (SDM 4.6): R/W and U/S of every entry on the way, XD of any.
        if not rw:
            cut["writable"] = np.zeros(n, dtype=bool)
        if not us:
            cut["user"] = np.zeros(n, dtype=bool)
        if nx:
            cut["nx"] = np.ones(n, dtype=bool)
        yield Mappings._columns(self.cfg, **cut)


def scan(mem: Memory, cr3: int, cfg: PagingConfig | None = None, *,
         listed: tuple[int, ...] = (MAX_LISTED, MAX_LISTED_JSON)) -> WalkResult:
    """Walk without keeping the leaves: the counts, the tables read, the problems, and where a
    listing of at most `listed` leaves (or merged ranges) one by one would stop; `leaves()` then
    walks again and streams them (pages --leaves and --json hold one chunk at a time)."""
    result = WalkResult(cr3, cfg or PagingConfig(), memory=mem)
    counts = {"leaves": 0, "ranges": 0}
    tail: tuple[int, int] | None = None   # (end VA, range key) of the last leaf so far
    held: list[Range] | None = []
    with budget.scope() as b:
        for chunk in _Walker(mem, result, b).run():
            key = _range_keys(chunk)
            starts = _range_starts(chunk, key)
            if tail == (int(chunk.va[0]), int(key[0])):
                starts[0] = False      # the range of the previous chunk goes on
            begins = {"leaves": np.arange(len(chunk)), "ranges": np.flatnonzero(starts)}
            for what, at in begins.items():
                for limit in listed:
                    if counts[what] <= limit < counts[what] + len(at):
                        i = int(at[limit - counts[what]])
                        result.unlisted[what, limit] = [int(chunk.va[i]), int(chunk.entry_address[i]), 0]
                counts[what] += len(at)
            tail = (int(chunk.va[-1]) + int(chunk.size[-1]), int(key[-1]))
            if held is not None:
                held = _hold_ranges(held, chunk, begins["ranges"].tolist())
    result.held_ranges = held
    for (what, limit), cut in result.unlisted.items():
        cut[2] = counts[what] - limit
    result.ranges = counts["ranges"]
    return result


def _hold_ranges(held: list[Range], chunk: Mappings, starts: list[int]) -> list[Range] | None:
    """The merged ranges so far, extended by `chunk` whose leaves at `starts` begin new ranges (the
    leaves before the first one continue the last range); None past MAX_HELD_RANGES."""
    if len(held) + len(starts) > MAX_HELD_RANGES:
        return None
    n = len(chunk)
    ends = starts[1:] + [n]
    if not starts or starts[0]:
        e = starts[0] if starts else n
        last = held[-1]
        last.size = int(chunk.va[e - 1]) + int(chunk.size[e - 1]) - last.va
        last.pages += e
    for s, e in zip(starts, ends):
        va = int(chunk.va[s])
        held.append(Range(va, int(chunk.va[e - 1]) + int(chunk.size[e - 1]) - va, int(chunk.pa[s]),
                          bool(chunk.writable[s]), bool(chunk.user[s]), bool(chunk.nx[s]),
                          None if chunk.shared is None else bool(chunk.shared[s]),
                          None if chunk.encrypted is None else bool(chunk.encrypted[s]), e - s))
    return held


def walk(mem: Memory, cr3: int, cfg: PagingConfig | None = None) -> WalkResult:
    """Every leaf reachable from CR3 kept as columns (at most MAX_LEAVES): one read per table page,
    entries decoded with numpy."""
    result = WalkResult(cr3, cfg or PagingConfig(), memory=mem)
    with budget.scope() as b:
        walker = _Walker(mem, result, b, MAX_LEAVES)
        chunks = list(walker.run())
        if walker.stopped and walker.leaves >= MAX_LEAVES:
            last = chunks[-1]
            walker.problem(int(last.entry_address[-1]), f"leaves after VA 0x{int(last.va[-1]):x} not kept; the budget "
                                                        f"is {MAX_LEAVES:,} leaves held at once")
    result.mappings = Mappings.concat(chunks, result.config)
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


def _range_keys(m: Mappings, nx: bool = True) -> np.ndarray:
    """What two neighbouring leaves must share to be one range."""
    key = m.writable.astype(np.uint8) | (m.user.astype(np.uint8) << 1)
    if nx:
        key |= m.nx.astype(np.uint8) << 2
    if m.shared is not None:
        key |= m.shared.astype(np.uint8) << 3
    if m.encrypted is not None:
        key |= m.encrypted.astype(np.uint8) << 4
    return key


def _range_starts(m: Mappings, key: np.ndarray) -> np.ndarray:
    """True where a leaf starts a range (the first always): a VA gap or other permissions."""
    brk = np.ones(len(m), dtype=bool)
    brk[1:] = (m.va[1:] != m.va[:-1] + m.size[:-1]) | (key[1:] != key[:-1])
    return brk


def merge(m: Mappings, *, contiguous_pa: bool = False, nx: bool = True) -> list[Range]:
    """Adjacent leaves with the same effective permissions (and shared/encrypted state) as one
    range, like QEMU's `info mem` but keeping NX (`nx=False` merges exactly as `info mem` does);
    `contiguous_pa` also requires the physical addresses to continue."""
    n = len(m)
    if n == 0:
        return []
    key = _range_keys(m, nx)
    brk = _range_starts(m, key)
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


def iter_ranges(chunks: Iterable[Mappings], *, contiguous_pa: bool = False, nx: bool = True) -> Iterator[Range]:
    """merge() over leaves streamed in VA order: a range may continue from one chunk into the next."""
    pending: Range | None = None
    for chunk in chunks:
        ranges = merge(chunk, contiguous_pa=contiguous_pa, nx=nx)
        if not ranges:
            continue
        first = ranges[0]
        if pending is not None and pending.end == first.va and _key(pending) == _key(first) and \
                (not contiguous_pa or pending.pa + pending.size == first.pa):
            pending.size += first.size
            pending.pages += first.pages
            ranges = ranges[1:]
            if not ranges:
                continue
        if pending is not None:
            yield pending
        yield from ranges[:-1]
        pending = ranges[-1]
    if pending is not None:
        yield pending


def _key(r: Range) -> tuple:
    return r.writable, r.user, r.nx, r.shared, r.encrypted


# Presentation (Nodes, JSON texts, the table drill-down) lives in decoders/paging_nodes.py, one
# address at a time (translate, VirtualMemory) in decoders/paging_translate.py; their names are
# still reached as decoders.paging.<name> (PEP 562 module __getattr__).
_ELSEWHERE = {name: "paging_nodes" for name in (
    "mapping_node", "range_node", "page_tables_node", "summary_node", "iter_mapping_dicts", "mapping_titles",
    "mapping_json_texts", "table_tree_node", "MAX_LEAF_FIELDS", "MAX_TREE_TABLES", "cpu_paging_config",
    "cpu_page_tables_node")}
_ELSEWHERE.update({name: "paging_translate" for name in (
    "translate", "VirtualMemory", "VirtualSpace", "virtual_space", "virtual_memory_node", "non_canonical", "va_bits")})


def __getattr__(name: str):
    if name in _ELSEWHERE:
        import importlib
        return getattr(importlib.import_module(f"decoders.{_ELSEWHERE[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
