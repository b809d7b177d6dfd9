"""One virtual address at a time through IA-32e page tables (Intel SDM vol. 3A 4.5, tables 4-14 to
4-20): `translate` gives the physical address and the entries it read; `VirtualMemory` is a Memory
over virtual addresses; `VirtualSpace` lays both canonical halves of the address space out as one
space for a hex view. decoders/paging.py walks every leaf."""
from __future__ import annotations


from decoders.memory import Memory, MemoryBytes, Unreadable, check_read
from decoders.model import Node, Space
from decoders.paging import LEVEL_NAMES, P, PAGE, PS, PagingConfig, canonical


def va_bits(la57: bool) -> int:
    """Linear-address width: 48 with 4-level paging, 57 with 5-level (CR4.LA57; Intel SDM vol. 3A 4.5)."""
    return 57 if la57 else 48


def non_canonical(va: int, la57: bool) -> str | None:
    """Why the CPU refuses `va` as a linear address, or None when it is canonical: bits 63:N must all
    equal bit N-1, N = 48 (4-level) or 57 (5-level), else the access faults before any table is read
    (Intel SDM vol. 1 3.3.7.1 "Canonical Addressing"; vol. 3A 4.5.1)."""
    if not 0 <= va < 1 << 64:
        return f"0x{va:x} is not a 64-bit linear address"
    bits = va_bits(la57)
    top = va >> (bits - 1)            # bits 63:N-1, all zero or all one when canonical
    if top in (0, (1 << (65 - bits)) - 1):
        return None
    return (f"0x{va:016x} is not canonical for {5 if la57 else 4}-level paging: bits 63:{bits} must all "
            f"equal bit {bits - 1} (lower half 0x0-0x{(1 << (bits - 1)) - 1:x}, upper half from "
            f"0x{canonical(1 << (bits - 1), la57):x})")


def translate(mem: Memory, cr3: int, va: int, cfg: PagingConfig | None = None) -> tuple[int | None, list[str]]:
    """(physical address or None, the walk as text, one line per level). A non-canonical `va` reads
    no table: the one line says why."""
    cfg = cfg or PagingConfig()
    why = non_canonical(va, cfg.la57)
    if why is not None:
        return None, [why]
    mask = cfg.address_mask
    table = cr3 & ((1 << cfg.maxphyaddr) - 1) & ~(PAGE - 1)
    steps = []
    for level in range(cfg.levels, 0, -1):
        # SDM vol. 3A 4.5.4: the entry index at each level is 9 bits of the VA, 56:48 for the PML5E,
        # 47:39 for the PML4E, down to 20:12 for the PTE.
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
    """A Memory that reads virtual (canonical) addresses through the page tables of `cr3`."""

    # Translated pages kept; the cache starts over past this (a hex view scrolls a few pages at a time).
    MAX_CACHED_PAGES = 65536

    def __init__(self, phys: Memory, cr3: int, cfg: PagingConfig | None = None):
        self.phys, self.cr3, self.cfg = phys, cr3, cfg or PagingConfig()
        self._cache: dict[int, int | None] = {}

    def _page(self, va: int) -> int | None:
        page = va & ~(PAGE - 1)
        if page not in self._cache:
            if len(self._cache) > self.MAX_CACHED_PAGES:
                self._cache.clear()
            self._cache[page] = translate(self.phys, self.cr3, page, self.cfg)[0]
        return self._cache[page]

    def read(self, address: int, size: int) -> bytes:
        # Bounded like every Memory (decoders/memory.py MAX_READ): a slice of the whole space would
        # otherwise gather OVMF's 1 TiB identity map page by page.
        check_read(address, size)
        out = bytearray()
        va = address
        while len(out) < size:
            why = non_canonical(va, self.cfg.la57)
            if why is not None:
                raise Unreadable(va, size - len(out), why)
            pa = self._page(va)
            if pa is None:
                raise Unreadable(va, size - len(out), "virtual address not mapped")
            n = min(size - len(out), PAGE - (va & (PAGE - 1)))
            out += self.phys.read(pa | (va & (PAGE - 1)), n)
            va += n
        return bytes(out)


class CanonicalWindow:
    """A Memory over offsets 0 .. 2^N (N = 48 or 57) that reads the canonical VA of each offset: the
    lower half 0 .. 2^(N-1) as it is, then the upper half from 2^64 - 2^(N-1) (offset bit N-1 sign-
    extended). A read that crosses the middle is split there, where the VAs jump."""

    def __init__(self, virtual: VirtualMemory):
        self.virtual = virtual
        self.la57 = virtual.cfg.la57
        self.size = 1 << va_bits(self.la57)

    def read(self, address: int, size: int) -> bytes:
        check_read(address, size)
        if address < 0 or address + size > self.size:
            raise Unreadable(address, size, f"outside offsets 0x0..0x{self.size:x} of the virtual space")
        half = self.size >> 1
        if address < half < address + size:
            first = half - address
            return self.read(address, first) + self.read(half, size - first)
        return self.virtual.read(canonical(address, self.la57), size)


class VirtualSpace(Space):
    """Both canonical halves of a virtual address space as one space of 2^48 (4-level) or 2^57
    (5-level) offsets: offset = VA for the lower half, and the upper half follows it, so offset
    2^47 shows VA 0xFFFF800000000000 (2^56 shows 0xFF00000000000000 with LA57). Nothing is held
    per page: the bytes are read through the page tables when a row is drawn."""

    def __init__(self, name: str, data, base: int | None = 0, la57: bool = False):
        super().__init__(name, data, base)
        self.la57 = la57

    def address_of(self, offset: int) -> int | None:
        return canonical(offset, self.la57)

    def offset_of(self, address: int) -> int | None:
        """The offset showing canonical `address`; None for an address that is not canonical."""
        if non_canonical(address, self.la57) is not None:
            return None
        return address & ((1 << va_bits(self.la57)) - 1)


def virtual_space(phys: Memory, cr3: int, cfg: PagingConfig, owner: object = None) -> VirtualSpace:
    """The virtual address space of `cr3`, both halves, for a hex view (`owner`: what must stay open)."""
    window = CanonicalWindow(VirtualMemory(phys, cr3, cfg))
    data = MemoryBytes(window, 0, window.size, owner=owner)
    return VirtualSpace(f"virtual memory (CR3 0x{cr3:x}, {cfg.levels}-level)", data, 0, la57=cfg.la57)


def virtual_memory_node(phys: Memory, cr3: int, cfg: PagingConfig, owner: object = None) -> Node:
    """A node over the whole virtual space of `cr3` (the hex view's `g` goes to any canonical address)."""
    space = virtual_space(phys, cr3, cfg, owner)
    half = 1 << (va_bits(cfg.la57) - 1)
    upper = canonical(half, cfg.la57)
    node = Node("memory", f"Virtual memory through CR3 0x{cr3:x} ({cfg.levels}-level): 0x0-0x{half - 1:x} and "
                          f"0x{upper:x}-0xffffffffffffffff (g goes to an address)", space, 0, space.size)
    node.add("LowerHalf", 0, display=f"0x0-0x{half - 1:x} at offset 0")
    node.add("UpperHalf", upper, display=f"0x{upper:x}-0xffffffffffffffff from offset 0x{half:x}")
    node.note(None, "unmapped pages show blank")
    return node
