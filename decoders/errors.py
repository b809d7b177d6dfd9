"""The one decode error, and `parse_at`: a decoders.layout record read at an offset, with a read
past the end or a wrong constant as a DecodeError located there."""
from __future__ import annotations


class DecodeError(Exception):
    """Nothing could be decoded at `offset`; `path` names the member that failed, when one did."""

    def __init__(self, offset: int | None, message: str, path: str | None = None):
        self.offset = offset
        self.path = path
        where = f"at 0x{offset:x}" if offset is not None else "at an unknown offset"
        super().__init__(f"{message} {where}" + (f" ({path})" if path else ""))
        self.message = message


def parse_at(struct, data: bytes | bytearray | memoryview, offset: int, what: str | None = None) -> object:
    """The decoders.layout record `struct` at `data[offset:]`, its members as attributes, or
    DecodeError(offset, ...) when it does not fit there or holds a wrong constant (`what` names it
    in the message, else the record's name)."""
    name = what or struct.name
    if offset < 0 or offset > len(data):
        raise DecodeError(offset, f"{name}: offset past the end of a {len(data)}-byte buffer")
    if offset + struct.size > len(data):
        raise DecodeError(offset, f"{name}: needs {struct.size} bytes, {len(data) - offset} left")
    return struct.parse(data, offset, name)
