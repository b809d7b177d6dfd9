"""5-level page tables (Intel SDM vol. 3A 4.5, CR4.LA57), which Debian's OVMF never builds: a raw
physical-memory file as QEMU's `pmemsave` writes one, at physical address 0, with the tables at
fixed addresses, and the list of leaf mappings they describe (written here, not decoded)."""
from __future__ import annotations

import struct

MEMORY_SIZE = 0x200000          # 2 MiB of "RAM"
PML5, PML4_LOW, PML4_HIGH, PDPT, PD, PT = (0x100000 + 0x1000 * i for i in range(6))
P, RW, US, A, D, PS = 0x1, 0x2, 0x4, 0x20, 0x40, 0x80
NX = 1 << 63
HIGH_VA = 0xFF00000000000000    # PML5 index 256 (bit 56 set), sign-extended: needs LA57


def build() -> tuple[bytes, dict]:
    mem = bytearray(MEMORY_SIZE)

    def entry(table: int, index: int, value: int) -> None:
        struct.pack_into("<Q", mem, table + index * 8, value)

    # Low half: PML5[0] -> PML4 -> PDPT -> PD: 2 MiB pages identity-mapping the first 8 MiB, the
    # last one NX; PD[4] -> PT with two 4 KiB user pages.
    entry(PML5, 0, PML4_LOW | P | RW | US)
    entry(PML4_LOW, 0, PDPT | P | RW | US)
    entry(PDPT, 0, PD | P | RW | US)
    leaves = []
    for i in range(4):
        flags = P | RW | PS | A | (NX if i == 3 else 0)
        entry(PD, i, (i << 21) | flags)
        leaves.append({"va": i << 21, "pa": i << 21, "size": 1 << 21, "level": 2, "writable": True,
                       "user": False, "nx": i == 3})
    entry(PD, 4, PT | P | RW | US)
    for j, pa in ((0, 0x5000), (1, 0x6000)):
        entry(PT, j, pa | P | US | A | D)
        leaves.append({"va": (4 << 21) | (j << 12), "pa": pa, "size": 0x1000, "level": 1, "writable": False,
                       "user": True, "nx": False})
    # High half: PML5[256] -> PML4 -> (PML4[0] = the same PDPT) — a kernel-style shared subtree,
    # supervisor-only because PML5[256] has no U/S.
    entry(PML5, 256, PML4_HIGH | P | RW)
    entry(PML4_HIGH, 0, PDPT | P | RW | US)
    for leaf in list(leaves):
        leaves.append(dict(leaf, va=HIGH_VA | leaf["va"], user=False))
    leaves.sort(key=lambda m: m["va"])
    return bytes(mem), {"cr3": PML5, "la57": True, "base": 0, "leaves": leaves}
