"""The Memory protocol pointer-chasing decoders read through: `read(address, size) -> bytes`,
raising `Unreadable(address)` for holes; decoders never know which implementation they got.

Implementations: `BytesMemory` here (an image or blob at a base); ELF cores,
live targets and virtual views live in inspector/ and decoders/paging.py.
"""
from __future__ import annotations



class Unreadable(Exception):
    """No memory at `address` (a hole in a dump, an unmapped page, a dead target)."""

    def __init__(self, address: int, size: int = 0, why: str = "no memory here"):
        self.address = address
        self.size = size
        super().__init__(f"cannot read {size} bytes at 0x{address:x}: {why}")


# One read through any Memory returns at most this much. Nothing a decoder reads in one call comes
# near it (the largest real ACPI table, HOB list or event log is a few MiB); a larger request comes
# from a corrupt length field and is refused rather than served, whatever the source.
MAX_READ = 64 << 20


def check_read(address: int, size: int) -> None:
    """Refuse a read of a negative size or of more than MAX_READ bytes (Unreadable, naming the limit)."""
    if size < 0 or size > MAX_READ:
        raise Unreadable(address, size, f"read of {size} bytes refused (limit {MAX_READ})")


class Memory:
    """The protocol, by its shape: anything with this `read` is a Memory (nothing subclasses it).
    A plain class, not a typing.Protocol: the fast commands that decode a HOB (`measure --tdx`)
    start without the typing module (~2.5 ms to import)."""

    def read(self, address: int, size: int) -> bytes: ...


class BytesMemory:
    """A buffer mapped at `base`: an image whose last byte sits at 4 GiB - 1, a HOB blob, ..."""

    def __init__(self, data: bytes | bytearray | memoryview, base: int = 0):
        self.data = data
        self.base = base

    def read(self, address: int, size: int) -> bytes:
        start = address - self.base
        if size < 0 or start < 0 or start + size > len(self.data):
            raise Unreadable(address, size, f"outside 0x{self.base:x}..0x{self.base + len(self.data):x}")
        return bytes(self.data[start:start + size])

    def __repr__(self) -> str:
        return f"BytesMemory(base=0x{self.base:x}, size=0x{len(self.data):x})"


class RegionMemory:
    """Several buffers at their addresses (tables from an acpidump, segments of a small dump)."""

    def __init__(self, regions: list[tuple[int, bytes]] | None = None):
        self.regions: list[tuple[int, bytes]] = sorted(regions or [])

    def add(self, address: int, data: bytes) -> None:
        self.regions.append((address, data))
        self.regions.sort(key=lambda r: r[0])

    def read(self, address: int, size: int) -> bytes:
        for base, data in self.regions:
            if base <= address and address + size <= base + len(data):
                return bytes(data[address - base:address - base + size])
        raise Unreadable(address, size, "not inside any region")


class MemoryBytes:
    """A read-only bytes-like window of `size` bytes of a Memory from `start`, for a Space: the hex
    view slices it like bytes. A slice that touches a hole comes back empty (shown blank), never
    raises, so a dump's holes do not break a view."""

    def __init__(self, memory: Memory, start: int, size: int, owner: object = None):
        self.memory, self.start, self.size = memory, start, size
        self.owner = owner  # what must stay alive (open) while this is read: a dump file, a target

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, key):
        if isinstance(key, int):
            chunk = self[key:key + 1]
            if not chunk:
                raise IndexError(key)
            return chunk[0]
        begin, end, step = key.indices(self.size)
        if step != 1 or end <= begin:
            return b""
        try:
            return self.memory.read(self.start + begin, end - begin)
        except Unreadable:
            return b""
