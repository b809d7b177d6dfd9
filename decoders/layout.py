"""Fixed little-endian records declared as (name, struct format) pairs, for decoders on paths that
must start fast.

construct (the declarations in the `structs` modules) costs about 20 ms to import, more than the
whole of the commands that read only the OVMF reset-vector table, its metadata or a TD HOB
(`mrtd`, `measure --snp/--tdx`, `hob`). Their records are a handful of integers, byte strings and
GUIDs, so they are declared here with the `struct` module's codes and read with one `unpack_from`.

A member is `(name, code)` or `(name, code, names)`:
- code "G" is a GUID (16 bytes, EFI byte order) and parses to a uuid.UUID as decoders.guids.EFI_GUID
  does; any other code is the `struct` module's (no alignment: "<" throughout, as the packed or
  naturally aligned C layouts declared here need);
- name None is padding (a code like "3x" that yields no value);
- `names` (value -> name) is the enum the spec declares for an integer member: decoders.fields
  shows the name, or the value in hex with "(unknown)", as it shows a construct Enum.

`parse`, `build` and `sizeof` have the shapes of construct's, so decoders.errors.parse_at and the
tests read a Layout like a Struct.
"""
from __future__ import annotations

import struct
from types import SimpleNamespace


class Layout:
    def __init__(self, name: str, *members: tuple):
        self.name = name
        codes = ["16s" if m[1] == "G" else m[1] for m in members]
        self._struct = struct.Struct("<" + "".join(codes))
        self.size = self._struct.size
        # (name, offset, size, names or None) of every named member, in order.
        fields, offset = [], 0
        for member, code in zip(members, codes):
            size = struct.calcsize("<" + code)
            if member[0] is not None:
                fields.append((member[0], offset, size, member[2] if len(member) > 2 else None))
            offset += size
        self.members = tuple(fields)
        self.names = tuple(m[0] for m in fields)
        named = [m for m in members if m[0] is not None]
        self._guids = tuple(i for i, m in enumerate(named) if m[1] == "G")

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
