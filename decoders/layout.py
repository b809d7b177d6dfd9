"""Fixed-size little-endian records declared as (name, code) members and read with one
`struct.unpack_from`: the declarations of every fixed-size structure the decoders read (flash
volumes, FFS files and sections, PE/TE headers, HOBs, the NV store, ACPI tables, event-log records,
EFI tables, ELF core notes).

A record is a handful of integers, byte strings and GUIDs at fixed offsets, so the `struct` module
reads it in one C call (about thirty times faster than a per-member parser such as construct on a
PE optional header, which an OVMF image has about 130 of), and nothing heavier than `struct` and
`uuid` is imported for it (construct alone cost 40-60 ms of every process's start).

A member is `(name, code)` or `(name, code, names)`:
- a `struct` module code: "B", "H", "I", "Q" (and signed "b", "h", "i", "q") give an int, "8s"
  bytes; "4H" (a count before an integer code) gives a list of ints; "3x" with name None is padding;
- "G": an EFI_GUID (16 bytes in EFI byte order), parsed to a uuid.UUID;
- "U24": a 3-byte little-endian unsigned integer (the `UINT8 Size[3]` of the PI headers);
- a `bytes` value: a constant (a signature) the record must hold there, or the read is a located
  DecodeError ("ConstError");
- a Layout: a nested record, one member whose value is a dict of its values (an EFI_TIME);
- `(count, Layout)`: an array of records, a list of dicts;
- `names` (value -> name) is the enum the spec declares for an integer member: it is shown as its
  name, or as the value in hex with "(unknown)".
Members of a nested C struct that should show as their own fields are declared flat with dotted
names at their offsets ("IntegrityCheck.Header").

`read` gives {name: value} and `parse` the same as attributes; both raise a DecodeError located at
the record for an offset outside the data, input that is short, or a wrong constant. `add_fields` adds the values to a Node as located fields; `build` packs values back
(for generators).
"""
from __future__ import annotations

import struct
from collections.abc import Callable
from types import SimpleNamespace

from decoders.model import Field

# How a member's raw unpacked values become its value.
_INT, _BYTES, _GUID, _U24, _CONST, _LIST, _RECORD, _RECORDS = range(8)


class Layout:
    """One record: `Layout(name, *members)`, each member as the module docstring says."""

    def __init__(self, name: str, *members: tuple):
        self.name = name
        fmt, offset = ["<"], 0
        # (name, offset, size, names or None) of every named member, in order.
        fields = []
        # Per named member: (first raw index, kind, raw count, extra): extra is the constant, the
        # list length or the nested Layout.
        plan = []
        raw = 0
        for member in members:
            mname, code = member[0], member[1]
            kind, extra = _INT, None
            if isinstance(code, bytes):
                kind, extra, codes, count = _CONST, code, f"{len(code)}s", 1
            elif isinstance(code, Layout):
                kind, extra, codes, count = _RECORD, code, code.format[1:], len(code._struct.unpack(bytes(code.size)))
            elif isinstance(code, tuple):
                n, inner = code
                one = len(inner._struct.unpack(bytes(inner.size)))
                kind, extra, codes, count = _RECORDS, (n, inner, one), inner.format[1:] * n, one * n
            elif code == "G":
                kind, codes, count = _GUID, "16s", 1
            elif code == "U24":
                kind, codes, count = _U24, "HB", 2
            else:
                codes = code
                count = 0 if code.endswith("x") else 1
                if code[:-1].isdigit() and code[-1] not in "sx":
                    kind, count, extra = _LIST, int(code[:-1]), int(code[:-1])
                elif code.endswith("s"):
                    kind = _BYTES
            size = struct.calcsize("<" + codes)
            if mname is not None:
                fields.append((mname, offset, size, member[2] if len(member) > 2 else None))
                plan.append((raw, kind, count, extra))
            elif count:
                raise TypeError(f"{name}: an unnamed member must be padding (\"Nx\"), not {code!r}")
            fmt.append(codes)
            raw += count
            offset += size
        self.format = "".join(fmt)
        self._struct = struct.Struct(self.format)
        self._unpack = self._struct.unpack_from
        self.size = self._struct.size
        self.members = tuple(fields)
        self.names = tuple(m[0] for m in fields)
        # The nested record of each member declared as one (its value is a dict of that record's).
        self.nested = {m[0]: extra for m, (_, kind, _, extra) in zip(fields, plan) if kind == _RECORD}
        self._plan = tuple(plan)
        # True when every named member is one raw value used as is: read is dict(zip(names, raw)).
        self._plain = all(kind in (_INT, _BYTES) and count == 1 for _, kind, count, _ in plan)
        self._fixups = tuple(reversed([(i, kind, count, extra, m[0]) for m, (i, kind, count, extra)
                                       in zip(fields, plan) if kind not in (_INT, _BYTES)]))
        self._field_plans: dict[tuple, tuple] = {}

    def sizeof(self) -> int:
        return self.size

    # -- reading ----------------------------------------------------------------------------------
    def values(self, data, offset: int = 0, what: str | None = None) -> list:
        """The members' values at data[offset:], in order (struct.error when fewer than `size`
        bytes are left; a DecodeError for a wrong constant)."""
        raw = self._unpack(data, offset)
        if self._plain:
            return list(raw)
        out = list(raw)
        # Last first, so that merging a run of raw values into one keeps the earlier indices.
        for i, kind, count, extra, mname in self._fixups:
            if kind == _GUID:
                import uuid

                out[i] = uuid.UUID(bytes_le=out[i])
            elif kind == _U24:
                out[i:i + 2] = [out[i] | out[i + 1] << 16]
            elif kind == _CONST:
                if out[i] != extra:
                    from decoders.errors import DecodeError

                    raise DecodeError(offset, f"{what or self.name}: ConstError", f"(parsing) -> {mname}")
            elif kind == _LIST:
                out[i:i + count] = [out[i:i + count]]
            elif kind == _RECORD:
                out[i:i + count] = [dict(zip(extra.names, extra._from_raw(raw[i:i + count])))]
            else:
                n, inner, one = extra
                out[i:i + count] = [[dict(zip(inner.names, inner._from_raw(raw[j:j + one])))
                                     for j in range(i, i + count, one)]]
        return out

    def _from_raw(self, raw: tuple) -> list:
        """A nested record's values from its slice of the outer record's raw values."""
        if self._plain:
            return list(raw)
        return self.values(self._struct.pack(*raw))

    def read(self, data, offset: int = 0, what: str | None = None) -> dict[str, object]:
        """{member name: value} of the record at data[offset:], or a DecodeError located at
        `offset` when it does not fit or holds a wrong constant (`what` names it, else the
        record's name)."""
        self._check(data, offset, what)
        if self._plain:
            return dict(zip(self.names, self._unpack(data, offset)))
        return dict(zip(self.names, self.values(data, offset, what)))

    def parse(self, data, offset: int = 0, what: str | None = None) -> SimpleNamespace:
        """The record at `offset` with its members as attributes, or a DecodeError as `read` raises
        it."""
        self._check(data, offset, what)
        return SimpleNamespace(**dict(zip(self.names, self.values(data, offset, what))))

    def _check(self, data, offset: int, what: str | None) -> None:
        """A DecodeError located at `offset` unless the record fits in `data` there (`what` names
        it in the message, else the record's name)."""
        if offset < 0 or offset > len(data):
            raise _error(offset, f"{what or self.name}: offset past the end of a {len(data)}-byte buffer")
        if len(data) - offset < self.size:
            raise _error(offset, f"{what or self.name}: needs {self.size} bytes, {len(data) - offset} left")

    def build(self, values: dict) -> bytes:
        """The record's bytes from {name: value} (padding zero); for tests and generators."""
        raw = []
        for (mname, *_), (_, kind, count, extra) in zip(self.members, self._plan):
            v = values[mname]
            if kind == _GUID:
                raw.append(v.bytes_le)
            elif kind == _U24:
                raw += [v & 0xFFFF, v >> 16]
            elif kind == _LIST:
                raw += list(v)
            elif kind == _RECORD:
                raw += extra._struct.unpack(extra.build(v))
            elif kind == _RECORDS:
                inner = extra[1]
                for item in v:
                    raw += inner._struct.unpack(inner.build(item))
            else:
                raw.append(v)
        return self._struct.pack(*raw)

    # -- fields -----------------------------------------------------------------------------------
    def add_fields(self, node, values, offset: int, *, prefix: str = "", skip: tuple[str, ...] = (),
                   only: tuple[str, ...] | None = None,
                   displays: dict[str, str | Callable[[object], str]] | None = None) -> int:
        """Add the members (`values` from read, or parse) to `node` as fields at absolute `offset`:
        one per named member with its offset, size and display (a GUID's name, an enum member's
        name); `skip` leaves members out, `only` keeps just those (names with `prefix`), and a
        `displays` entry (text, or a function of the value) wins. Returns the offset just past the
        record."""
        key = (prefix, skip, only)
        try:
            plan = self._field_plans.get(key)
        except TypeError:       # an unhashable `only` (a list): worked out each time
            key, plan = None, None
        if plan is None:
            plan = self._field_plan(prefix, skip, only)
            if key is not None:
                self._field_plans[key] = plan
        entries, special, at = plan
        get = values.__getitem__ if isinstance(values, dict) else values.__dict__.__getitem__
        fields = node.fields
        start = len(fields)
        fields.extend([Field(full, get(mname), offset + rel, size) for mname, full, rel, size in entries])
        for i, names in special:
            f = fields[start + i]
            if names is None:        # a GUID: its name, when it has one
                from decoders.guids import describe

                f.display = describe(f.value)
            else:
                label = names.get(f.value)
                f.display = label if label is not None else f"0x{f.value:x} (unknown)"
        if displays:
            for full, shown in displays.items():
                i = at.get(full)
                if i is not None and shown is not None:
                    f = fields[start + i]
                    f.display = shown(f.value) if callable(shown) else shown
        return offset + self.size

    def _field_plan(self, prefix: str, skip: tuple[str, ...], only) -> tuple:
        """(entries (name, shown name, offset, size), (index, names table or None for a GUID) of the
        entries shown by a table, {shown name: index}) for one choice of prefix, skip and only."""
        entries, special = [], []
        for (mname, rel, size, names), (_, kind, _, _) in zip(self.members, self._plan):
            full = prefix + mname
            if mname in skip or (only is not None and full not in only):
                continue
            if names is not None or kind == _GUID:
                special.append((len(entries), names))
            entries.append((mname, full, rel, size))
        return tuple(entries), tuple(special), {e[1]: i for i, e in enumerate(entries)}

    def __repr__(self) -> str:
        return f"Layout({self.name}, {self.size} bytes)"


def _error(offset: int, message: str):
    from decoders.errors import DecodeError

    return DecodeError(offset, message)
