"""Fixed little-endian records declared as (name, struct format) pairs, for decoders on paths that
must start fast.

construct (the declarations in the `structs` modules) costs about 15 ms to import; the commands
that read only the OVMF reset-vector table and its metadata (`mrtd`, `measure --snp/--tdx`) run
in less time than that in all. Their records are a handful of integers, byte strings and GUIDs, so
they are declared here with the `struct` module's codes and read with one `unpack_from`. A GUID
member is "G" (16 bytes, EFI byte order) and parses to a uuid.UUID as decoders.guids.EFI_GUID does.

`parse`, `build` and `sizeof` have the shapes of construct's, so decoders.errors.parse_at and the
tests read a Layout like a Struct.
"""
from __future__ import annotations

import struct
from types import SimpleNamespace


class Layout:
    def __init__(self, name: str, *members: tuple[str, str]):
        self.name = name
        self.names = tuple(n for n, _ in members)
        self._guids = tuple(i for i, (_, code) in enumerate(members) if code == "G")
        self._struct = struct.Struct("<" + "".join("16s" if code == "G" else code for _, code in members))
        self.size = self._struct.size

    def sizeof(self) -> int:
        return self.size

    def parse(self, data: bytes | bytearray | memoryview, offset: int = 0) -> SimpleNamespace:
        """The record at `offset` (struct.error when fewer than sizeof() bytes are left)."""
        values = list(self._struct.unpack_from(data, offset))
        if self._guids:
            import uuid

            for i in self._guids:
                values[i] = uuid.UUID(bytes_le=values[i])
        return SimpleNamespace(**dict(zip(self.names, values)))

    def build(self, values: dict) -> bytes:
        out = [values[n] for n in self.names]
        for i in self._guids:
            out[i] = out[i].bytes_le
        return self._struct.pack(*out)

    def __repr__(self) -> str:
        return f"Layout({self.name}, {self.size} bytes)"
