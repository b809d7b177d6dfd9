"""The one decode error and the single place where construct errors are wrapped (STYLE.md)."""
from __future__ import annotations

from typing import Any

import construct


class DecodeError(Exception):
    """Nothing could be decoded at `offset`; `path` is construct's field path when there is one."""

    def __init__(self, offset: int | None, message: str, path: str | None = None):
        self.offset = offset
        self.path = path
        where = f"at 0x{offset:x}" if offset is not None else "at an unknown offset"
        super().__init__(f"{message} {where}" + (f" ({path})" if path else ""))
        self.message = message


def parse_at(struct: construct.Construct, data: bytes | bytearray | memoryview, offset: int,
             what: str | None = None) -> Any:
    """Parse `struct` from `data[offset:]`, raising DecodeError(offset, ...) on any failure.

    The slice is bounded by the struct's static size when it has one, so a header
    parse never copies the rest of a 16 MiB blob.
    """
    name = what or getattr(struct, "name", None) or type(struct).__name__
    if offset < 0 or offset > len(data):
        raise DecodeError(offset, f"{name}: offset past the end of a {len(data)}-byte buffer")
    try:
        size = struct.sizeof()
    except construct.SizeofError:
        size = None
    if size is not None:
        chunk = bytes(data[offset:offset + size])
        if len(chunk) < size:
            raise DecodeError(offset, f"{name}: needs {size} bytes, {len(chunk)} left")
    else:
        chunk = bytes(data[offset:])
    try:
        return struct.parse(chunk)
    except construct.ConstructError as e:
        raise DecodeError(offset, f"{name}: {e.__class__.__name__}", getattr(e, "path", None)) from None
