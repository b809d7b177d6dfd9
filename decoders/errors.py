"""The one decode error: decoders.layout records raise it for a read they cannot make, and decoders
catch it to add a located problem."""
from __future__ import annotations


class DecodeError(Exception):
    """Nothing could be decoded at `offset`; `path` names the member that failed, when one did."""

    def __init__(self, offset: int | None, message: str, path: str | None = None):
        self.offset = offset
        self.path = path
        where = f"at 0x{offset:x}" if offset is not None else "at an unknown offset"
        super().__init__(f"{message} {where}" + (f" ({path})" if path else ""))
        self.message = message
