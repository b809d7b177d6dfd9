"""One virtual address at a time through IA-32e page tables (Intel SDM vol. 3A 4.5, tables 4-14 to
4-20): `translate` gives the physical address and the entries it read; `VirtualMemory` is a Memory
over virtual addresses. decoders/paging.py walks every leaf."""
from __future__ import annotations

from decoders.memory import Memory, Unreadable
from decoders.paging import LEVEL_NAMES, P, PAGE, PS, PagingConfig


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
