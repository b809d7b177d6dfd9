"""STUB, to be replaced: variable store, variables, signature lists, FTW blocks."""
from __future__ import annotations

from decoders.model import Node, Space


def decode_nv_body(space: Space, offset: int, size: int) -> list[Node]:
    """Decode the body of an FV whose FileSystemGuid is gEfiSystemNvDataFvGuid: everything from
    the end of the FV header (`offset`) for `size` bytes (to the end of the FV)."""
    return []
