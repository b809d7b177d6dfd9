"""The one Node model every decoder returns, and the tree view, field table, hex view and JSON
export consume.

A Node says what a structure is (`kind`, `title`), where its bytes are (`space`,
`offset`, `size`), what it holds (`fields` with spec names, `children`) and what
was wrong with it (`problems`, each located by an offset in the node's space).
"""
from __future__ import annotations

import sys
from collections.abc import Iterator
from enum import Enum

# Plain classes, not dataclasses: every command imports this module, and `dataclasses` (which
# imports `inspect`) costs ~15 ms of start-up that `mrtd` and `measure --snp/--tdx` (well under
# 100 ms in all) cannot spare. The constructors, equality and reprs are the ones @dataclass made.
Any = object  # annotations only


class Severity(str, Enum):
    ERROR = "error"
    WARNING = "warning"
    INFO = "info"


class Space:
    """A buffer or address space that nodes point into.

    `data` holds the bytes (an image, a decompressed blob) or is None for an
    address space read through a Memory. `base` is the address of `data[0]`
    where the space is mapped (an image's last byte sits at 4 GiB - 1).
    A decompressed blob's `parent` is the section node it came out of.
    """

    def __init__(self, name: str, data: bytes | bytearray | memoryview | None = None, base: int | None = None,
                 parent: "Node | None" = None):
        self.name = name
        self.data = data            # MiB: never in a repr
        self.base = base
        self.parent = parent

    def __repr__(self) -> str:
        return f"Space(name={self.name!r}, base={self.base!r})"

    @property
    def size(self) -> int:
        return 0 if self.data is None else len(self.data)

    def address_of(self, offset: int) -> int | None:
        return None if self.base is None else self.base + offset

    def need(self, end: int) -> None:
        """Make sure data[:end] is final before it is read. A space's bytes are all there from the
        start, except a blob still being inflated (decoders.fd.blobs.BlobSpace), which waits."""


class Problem:
    __slots__ = ("offset", "severity", "message")

    def __init__(self, offset: int | None, severity: Severity, message: str):
        self.offset = offset
        self.severity = severity
        self.message = message

    def _key(self) -> tuple:
        return (self.offset, self.severity, self.message)

    def __eq__(self, other: object) -> bool:
        return self._key() == other._key() if other.__class__ is self.__class__ else NotImplemented

    __hash__ = None     # mutable, compared by value (as @dataclass(eq=True) made it)

    def __repr__(self) -> str:
        return f"Problem(offset={self.offset!r}, severity={self.severity!r}, message={self.message!r})"

    def to_json(self) -> dict[str, Any]:
        return {"offset": self.offset, "severity": self.severity.value, "message": self.message}

    def __str__(self) -> str:
        where = f"0x{self.offset:x}: " if self.offset is not None else ""
        return f"{self.severity.value}: {where}{self.message}"


class Field:
    """One decoded field: its spec name, raw value, where it sits and how to show it."""

    __slots__ = ("name", "value", "offset", "size", "display")

    def __init__(self, name: str, value: Any, offset: int | None = None, size: int | None = None,
                 display: str | None = None):
        self.name = name
        self.value = value
        self.offset = offset
        self.size = size
        self.display = display

    def _key(self) -> tuple:
        return (self.name, self.value, self.offset, self.size, self.display)

    def __eq__(self, other: object) -> bool:
        return self._key() == other._key() if other.__class__ is self.__class__ else NotImplemented

    __hash__ = None

    def __repr__(self) -> str:
        return (f"Field(name={self.name!r}, value={self.value!r}, offset={self.offset!r}, size={self.size!r}, "
                f"display={self.display!r})")

    @property
    def text(self) -> str:
        return self.display if self.display is not None else format_value(self.value)

    def to_json(self) -> dict[str, Any]:
        out = {"name": self.name, "value": json_value(self.value), "offset": self.offset, "size": self.size}
        if self.display is not None:
            out["display"] = self.display
        return out


class Node:
    def __init__(self, kind: str, title: str, space: Space | None = None, offset: int = 0, size: int = 0,
                 fields: list[Field] | None = None, children: list["Node"] | None = None,
                 problems: list[Problem] | None = None):
        self.kind = kind
        self.title = title
        self.space = space
        self.offset = offset
        self.size = size
        self.fields = [] if fields is None else fields
        self.children = [] if children is None else children
        self.problems = [] if problems is None else problems

    def __repr__(self) -> str:
        return (f"Node(kind={self.kind!r}, title={self.title!r}, space={self.space!r}, offset={self.offset!r}, "
                f"size={self.size!r}, {len(self.fields)} fields, {len(self.children)} children, "
                f"{len(self.problems)} problems)")

    # -- building -----------------------------------------------------------------
    def add(self, name: str, value: Any, offset: int | None = None, size: int | None = None,
            display: str | None = None) -> Field:
        """Add a field; `offset` is absolute in this node's space."""
        f = Field(name, value, offset, size, display)
        self.fields.append(f)
        return f

    def problem(self, offset: int | None, message: str, severity: Severity = Severity.ERROR) -> Problem:
        p = Problem(offset, severity, message)
        self.problems.append(p)
        return p

    def warn(self, offset: int | None, message: str) -> Problem:
        return self.problem(offset, message, Severity.WARNING)

    def note(self, offset: int | None, message: str) -> Problem:
        return self.problem(offset, message, Severity.INFO)

    def append(self, child: "Node") -> "Node":
        self.children.append(child)
        return child

    # -- reading ------------------------------------------------------------------
    def field(self, name: str) -> Field | None:
        for f in self.fields:
            if f.name == name:
                return f
        return None

    def get(self, name: str, default: Any = None) -> Any:
        f = self.field(name)
        return default if f is None else f.value

    def walk(self) -> Iterator["Node"]:
        """Depth-first, pre-order, iterative (trees from hostile input may be deep)."""
        stack = [self]
        while stack:
            node = stack.pop()
            yield node
            stack.extend(reversed(node.children))

    def find(self, kind: str) -> Iterator["Node"]:
        return (n for n in self.walk() if n.kind == kind)

    def all_problems(self) -> Iterator[tuple["Node", Problem]]:
        for n in self.walk():
            for p in n.problems:
                yield n, p

    @property
    def address(self) -> int | None:
        return None if self.space is None else self.space.address_of(self.offset)

    @property
    def bytes(self) -> bytes:
        if self.space is None or self.space.data is None:
            return b""
        return bytes(self.space.data[self.offset:self.offset + self.size])

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "kind": self.kind,
            "title": self.title,
            "space": self.space.name if self.space else None,
            "offset": self.offset,
            "size": self.size,
        }
        if self.address is not None:
            out["address"] = self.address
        out["fields"] = [f.to_json() for f in self.fields]
        out["problems"] = [p.to_json() for p in self.problems]
        out["children"] = [c.to_json() for c in self.children]
        return out


def _is_uuid(value: Any) -> bool:
    # No value can be a uuid.UUID before the uuid module is loaded, and this module does not load
    # it: the budget imports this module before a command starts its work, and uuid brings platform.
    uuid = sys.modules.get("uuid")
    return uuid is not None and isinstance(value, uuid.UUID)


def json_value(value: Any) -> Any:
    """JSON form of a field value: GUIDs lowercase canonical, bytes as hex, enums by value."""
    if _is_uuid(value):
        return str(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).hex()
    if isinstance(value, bool) or value is None or isinstance(value, (int, float, str)):
        return value
    if isinstance(value, Enum):
        return json_value(value.value)
    if isinstance(value, (list, tuple)):
        return [json_value(v) for v in value]
    if isinstance(value, dict):
        return {str(k): json_value(v) for k, v in value.items()}
    return str(value)


def format_value(value: Any) -> str:
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return f"0x{value:x}" if value > 9 else str(value)
    if _is_uuid(value):
        return str(value).upper()
    if isinstance(value, (bytes, bytearray, memoryview)):
        head = bytes(value[:33])  # never copy a whole blob to show 32 bytes of it
        return head[:32].hex(" ") + (" …" if len(head) > 32 else "")
    return str(value)
