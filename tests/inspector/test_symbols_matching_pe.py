"""SymbolIndex.matching_pe, the one public way to get a module's symbols for its PE file (pe_disasm and
function_in_pe both go through it), on the real DEBUG OvmfPkgX64 build (../shared/firmware/ovmf-debug:
OVMF.fd and its .debug files) and on Debian bookworm's OVMF (another build). The PE's Machine and .text
are read here with struct (PE/COFF spec 3.3 file header, 3.4 optional header, 4 section table)."""
from __future__ import annotations

import struct

import pytest

from inspector.image import load_image
from inspector.live.symbols import SymbolIndex
from tests.realdata import bookworm, debug_symbols, firmware


@pytest.fixture(scope="module")
def index() -> SymbolIndex:
    return SymbolIndex(debug_symbols())


def pe_file(path, ui: str) -> bytes:
    img = load_image(path)
    f = next(f for f in img.root.find("ffs") if f.get("UI") == ui)
    return bytes(next(c for c in f.walk() if c.kind == "pe").bytes)


def machine_and_text(raw: bytes) -> tuple[int, int]:
    lfanew = struct.unpack_from("<I", raw, 0x3C)[0]
    machine, nsec = struct.unpack_from("<HH", raw, lfanew + 4)
    at = lfanew + 24 + struct.unpack_from("<H", raw, lfanew + 20)[0]
    for i in range(nsec):
        name, _vsize, va = struct.unpack_from("<8sII", raw, at + 40 * i)
        if name.rstrip(b"\0") == b".text":
            return machine, va
    raise AssertionError("no .text")


def test_the_debug_builds_module_matches_its_own_debug_file(index):
    raw = pe_file(firmware("ovmf-debug/OVMF.fd"), "PlatformPei")
    r = index.matching_pe("PlatformPei", None, raw)
    assert r.symbols is not None and r.symbols.path.name == "PlatformPei.debug"
    assert (r.pe.machine, r.pe.text_rva) == machine_and_text(raw) and (r.problems, r.notes) == ([], [])
    # function_in_pe answers from the same match
    rvas, path, problems = index.function_in_pe("PlatformPei", None, raw, "PublishPeiMemory")
    # `nm PlatformPei.debug`: 0000000000003033 t PublishPeiMemory
    assert (rvas, path, problems) == ([0x3033 - r.symbols.text.addr + r.pe.text_rva], r.symbols.path, [])


def test_another_builds_module_gets_no_symbols_and_says_why(index):
    raw = pe_file(bookworm("OVMF.fd"), "DxeCore")        # X64 in both, another build
    r = index.matching_pe("DxeCore", None, raw)
    assert r.symbols is None and r.pe.machine == 0x8664 == machine_and_text(raw)[0]
    assert len(r.problems) == len(index.candidates("DxeCore", None, 0x8664)) >= 1
    assert all(p.endswith("of another build") for p in r.problems), r.problems


def test_no_pe_text_and_no_file_for_the_name(index):
    r = index.matching_pe("PlatformPei", None, b"MZ" + bytes(200))
    assert (r.symbols, r.pe, r.problems) == (None, None, [])
    raw = pe_file(firmware("ovmf-debug/OVMF.fd"), "PlatformPei")
    r = index.matching_pe("NoSuchModule", None, raw)
    assert r.symbols is None and r.pe is not None and r.problems == []
