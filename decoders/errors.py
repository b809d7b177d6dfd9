"""The one decode error and the single place where construct errors are wrapped: `parse_at` turns a ConstructError into
a DecodeError located by offset, keeping construct's field path."""
from __future__ import annotations


import weakref


class DecodeError(Exception):
    """Nothing could be decoded at `offset`; `path` is construct's field path when there is one."""

    def __init__(self, offset: int | None, message: str, path: str | None = None):
        self.offset = offset
        self.path = path
        where = f"at 0x{offset:x}" if offset is not None else "at an unknown offset"
        super().__init__(f"{message} {where}" + (f" ({path})" if path else ""))
        self.message = message


# Keyed by the struct object, weakly: a struct built per call (one per pointer width) leaves the
# cache when it is freed, and a new struct can never inherit an old one's size through a reused id().
_SIZES: "weakref.WeakKeyDictionary[construct.Construct, int | None]" = weakref.WeakKeyDictionary()


def static_size(struct: construct.Construct) -> int | None:
    """The struct's fixed size, or None when it depends on the data; cached, because construct
    recomputes it on every call (a third of a firmware decode's time when it was not cached)."""
    try:
        return _SIZES[struct]
    except KeyError:
        pass
    from decoders.layout import Layout

    if isinstance(struct, Layout):
        return struct.size
    import construct  # on first use: decoders.layout records never need it

    try:
        size = struct.sizeof()
    except construct.SizeofError:
        size = None
    _SIZES[struct] = size
    return size


def parse_at(struct: construct.Construct, data: bytes | bytearray | memoryview, offset: int,
             what: str | None = None) -> object:
    """Parse `struct` from `data[offset:]`, raising DecodeError(offset, ...) on any failure.

    The slice is bounded by the struct's static size when it has one, so a header
    parse never copies the rest of a 16 MiB blob.
    """
    name = what or getattr(struct, "name", None) or type(struct).__name__
    if offset < 0 or offset > len(data):
        raise DecodeError(offset, f"{name}: offset past the end of a {len(data)}-byte buffer")
    from decoders.layout import Layout

    if isinstance(struct, Layout):
        if offset + struct.size > len(data):
            raise DecodeError(offset, f"{name}: needs {struct.size} bytes, {len(data) - offset} left")
        return struct.parse(data, offset, name)
    import construct

    size = static_size(struct)
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
