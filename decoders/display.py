"""Display text for decoded values, written one way everywhere: enum names and flag lists.

A table is the one the spec declares, as the structs module has it: a mapping (value -> name; for
flags, bit mask -> name), or for flags a sequence of names indexed by bit number (ACPI lists flag
bits in order). Values no name covers are shown in hex, never dropped.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

Table = Mapping | Sequence


def enum_name(table: Mapping, value: int) -> str | None:
    """The name of `value` in a value -> name mapping, or None."""
    name = table.get(int(value))
    return None if name is None else str(name)


def enum_text(table: Mapping, value: int) -> str:
    """`NAME (0x1c)`, or `unknown (0x1c)`."""
    name = enum_name(table, value)
    return f"{name} (0x{value:x})" if name else f"unknown (0x{value:x})"


def _bits(table: Table) -> list[tuple[int, str]]:
    if isinstance(table, Mapping):
        return list(table.items())
    return [(1 << i, name) for i, name in enumerate(table)]


def flag_names(value: int, table: Table, *, extra: Sequence[str] = (), handled: int = 0) -> list[str]:
    """Names of the set bits (a multi-bit mask only when all its bits are set), then `extra` (names
    the caller worked out itself for the bits in the `handled` mask), then the set bits no name
    accounts for as one hex mask."""
    names, shown = [], handled
    for bit, name in _bits(table):
        if bit and value & bit == bit:
            names.append(name)
            shown |= bit
    names += extra
    rest = value & ~shown
    if rest:
        names.append(f"0x{rest:x}")
    return names


def flags_text(value: int, table: Table, *, extra: Sequence[str] = (), handled: int = 0) -> str:
    """`0x81 (A | B)`; just `0x0` when no bit is set."""
    names = flag_names(value, table, extra=extra, handled=handled)
    return f"0x{value:x}" + (f" ({' | '.join(names)})" if names else "")
