"""ACPI inputs for `fwinspect acpi`: binary tables (files or a folder of them, as acpixtract or
/sys/firmware/acpi/tables give), and the text of `acpidump` ("SIG @ 0xADDR" blocks of hex lines),
which keeps each table's physical address, so the RSDP can be followed as firmware laid it out."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Iterable

from decoders.acpi import decode_acpi_from_rsdp, decode_rsdp, decode_table
from decoders.acpi.decode import MAX_TABLE_SIZE, decode_scope
from decoders.memory import RegionMemory
from decoders.model import Node, Space

HEADER_RE = re.compile(r"^\s*([A-Z0-9_!]{4}|RSD PTR|RSDP)\s*@\s*0x([0-9a-fA-F]+)\s*$")
HEX_RE = re.compile(r"^\s*([0-9a-fA-F]{4,8}):((?:\s[0-9a-fA-F]{2}){1,16})")
# Bounds for hostile input: a real machine has a few dozen tables of a few hundred KiB (acpidump
# of a large server is a few MiB). Past either bound the rest is not read, with a located problem.
MAX_DUMP_TABLES = 512           # tables from one acpidump file or one folder
MAX_DUMP_BYTES = 32 << 20       # table bytes held from one acpidump file or one folder
MAX_LINE = 4096                 # characters of one acpidump line (a hex line has about 75)
TABLE_SUFFIXES = {".dat", ".aml", ".bin", ".AML", ""}
# A table file larger than this is not an ACPI table (the decoder caps a table at 16 MiB too).
MAX_TABLE_FILE = MAX_TABLE_SIZE


class _Cut:
    """Where reading stopped and why (a located problem for the caller), or nothing."""

    def __init__(self) -> None:
        self.line: int | None = None
        self.why = ""

    def stop(self, line: int, why: str) -> None:
        if self.line is None:
            self.line, self.why = line, why


def parse_acpidump(text: str | Iterable[str], cut: _Cut | None = None) -> list[tuple[str, int, bytes]]:
    """(signature, address, bytes) of each "SIG @ 0xADDR" block; `text` is the whole text or its
    lines (a file is read line by line, never whole)."""
    cut = cut or _Cut()
    lines = text.splitlines() if isinstance(text, str) else text
    tables: list[tuple[str, int, bytes]] = []
    current: tuple[str, int, bytearray] | None = None
    total = 0
    for number, line in enumerate(lines, 1):
        line = line[:MAX_LINE]
        h = HEADER_RE.match(line) if "@" in line else None   # most lines are hex: skip the header regex
        if h:
            if current:
                tables.append((current[0], current[1], bytes(current[2])))
                current = None
            if len(tables) >= MAX_DUMP_TABLES:
                cut.stop(number, f"more tables follow; the budget is {MAX_DUMP_TABLES:,} tables from one dump")
                break
            current = (h.group(1), int(h.group(2), 16), bytearray())
            continue
        m = HEX_RE.match(line)
        if m and current is not None:
            chunk = bytes.fromhex(m.group(2))   # fromhex skips the spaces between bytes
            if total + len(chunk) > MAX_DUMP_BYTES:
                cut.stop(number, f"more table bytes follow; the budget is {MAX_DUMP_BYTES:,} bytes from one dump")
                break
            current[2].extend(chunk)
            total += len(chunk)
    if current:
        tables.append((current[0], current[1], bytes(current[2])))
    return tables


def is_acpidump(path: Path) -> bool:
    try:
        with path.open("rb") as f:
            head = f.read(4096).decode("ascii", errors="strict")
    except (UnicodeDecodeError, OSError):
        return False
    return any(HEADER_RE.match(line) for line in head.splitlines()[:5])


def decode_acpidump(path: Path) -> Node:
    with decode_scope():
        cut = _Cut()
        with path.open(errors="replace") as f:
            tables = parse_acpidump(f, cut)
        root = _acpidump_tree(path, tables)
        if cut.line is not None:
            root.warn(None, f"{path.name} line {cut.line}: not read further: {cut.why}")
        return root


def _acpidump_tree(path: Path, tables: list[tuple[str, int, bytes]]) -> Node:
    mem = RegionMemory([(addr, data) for _, addr, data in tables])
    rsdp = [(addr, data) for sig, addr, data in tables if data[:8] == b"RSD PTR "]
    if rsdp:
        root = decode_acpi_from_rsdp(mem, rsdp[0][0])
        root.title = f"ACPI tables from {path.name} (RSDP at 0x{rsdp[0][0]:x})"
        followed = {c.address for c in root.children}
        for sig, addr, data in tables:
            if addr not in followed:
                n = root.append(_decode_blob(data, f"{sig}@0x{addr:x}", addr))
                n.note(0, "not reached from the RSDP (listed by acpidump only)")
        return root
    root = Node("acpi", f"ACPI tables from {path.name} (no RSDP in the dump)")
    for sig, addr, data in tables:
        root.append(_decode_blob(data, f"{sig}@0x{addr:x}", addr))
    return root


def _read_table_file(p: Path) -> Node:
    size = p.stat().st_size
    if size > MAX_TABLE_FILE:
        n = Node("acpi-table", f"{p.name}: not decoded", None, 0, 0)
        n.problem(None, f"{p.name} is {size} bytes, more than any ACPI table ({MAX_TABLE_FILE}); not read")
        return n
    return _decode_blob(p.read_bytes(), p.name)


def _decode_blob(data: bytes, name: str, base: int | None = None) -> Node:
    space = Space(name, data, base)
    if data[:8] == b"RSD PTR ":
        return decode_rsdp(data, 0, space)
    return decode_table(data, 0, space)


def decode_acpi_paths(paths: list[str]) -> Node:
    """Tables from files and folders; an acpidump text file is followed from its RSDP."""
    with decode_scope():
        root = Node("acpi", "ACPI tables")
        for p in map(Path, paths):
            if p.is_dir():
                _read_folder(root, p)
            elif is_acpidump(p):
                root.append(decode_acpidump(p))
            else:
                root.append(_read_table_file(p))
        if len(root.children) == 1 and not root.problems:
            return root.children[0]
        return root


def _read_folder(root: Node, folder: Path) -> None:
    files = (f for f in sorted(folder.iterdir()) if f.is_file() and f.suffix in TABLE_SUFFIXES)
    held = 0
    for count, f in enumerate(files):
        if count >= MAX_DUMP_TABLES:
            root.warn(None, f"{folder}: {f.name} and the files after it not read; the budget is "
                            f"{MAX_DUMP_TABLES:,} tables from one folder")
            return
        held += min(f.stat().st_size, MAX_TABLE_FILE)
        if held > MAX_DUMP_BYTES:
            root.warn(None, f"{folder}: {f.name} and the files after it not read; the budget is "
                            f"{MAX_DUMP_BYTES:,} bytes of tables from one folder")
            return
        root.append(_read_table_file(f))
