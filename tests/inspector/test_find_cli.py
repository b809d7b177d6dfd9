"""`fwinspect find` and `fwinspect disasm` as a user and a script see them: one line per hit or
instruction, --json, exit status 0 (found / disassembled), 1 (nothing found, problems), 2 (usage:
a bad pattern, an unknown module, a missing file), each as a whole process."""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.realdata import bookworm, debug_symbols, firmware

ROOT = Path(__file__).resolve().parents[2]


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "inspector.cli", *args], capture_output=True, text=True,
                          timeout=120, cwd=ROOT)


@pytest.fixture(scope="module")
def image() -> str:
    return str(bookworm("OVMF_CODE_4M.fd"))


# -- find ----------------------------------------------------------------------------------------------
def test_find_text_prints_one_line_per_hit_with_space_offset_variant_and_path(image):
    r = run("find", image, "text:PlatformPei")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert len(lines) == 2
    first = lines[0]
    m = re.match(r"^(\S+)  0x([0-9a-f]+)  (\S+)  (.*)  \[(.*)\]$", first)
    assert m, first
    space, offset, variant, inner, path = m.groups()
    assert space == "OVMF_CODE_4M.fd/lzma@0x90" and variant == "utf-16le"
    assert inner == 'USER_INTERFACE section "PlatformPei"'
    assert path.split(" > ")[0].startswith("Volume FVMAIN_COMPACT") and path.endswith(inner)
    assert "PlatformPei (PEIM" in path
    assert "2 hits in 2 spaces" in r.stderr


def test_find_json_has_every_hit_with_address_in_flash(image):
    r = run("find", image, "u32:0xfffffff0", "--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["spaces"] == 2 and not doc["truncated"] and doc["problems"] == []
    assert doc["variants"] == [{"name": "u32", "bytes": "f0 ff ff ff"}]
    data = Path(image).read_bytes()
    flash_hits = [h for h in doc["hits"] if h["space"] == "OVMF_CODE_4M.fd"]
    for h in flash_hits:
        assert data[h["offset"]:h["offset"] + 4] == b"\xf0\xff\xff\xff"
        assert h["address"] == (1 << 32) - len(data) + h["offset"]
    assert all("address" not in h for h in doc["hits"] if h["space"] != "OVMF_CODE_4M.fd")
    assert doc["hits"][0]["path"][0]["kind"] == "image"


def test_find_limit_truncates_and_says_so(image):
    r = run("find", image, "??", "--limit", "5")
    assert r.returncode == 0
    assert [int(ln.split()[1], 16) for ln in r.stdout.splitlines()] == [0, 1, 2, 3, 4]
    assert "first 5 hits (--limit)" in r.stderr
    doc = json.loads(run("find", image, "??", "--limit", "5", "--json").stdout)
    assert doc["truncated"] and len(doc["hits"]) == 5


def test_find_nothing_found_is_exit_1(image):
    r = run("find", image, "hex:de ad be ef 0b ad f0 0d")
    assert r.returncode == 1 and r.stdout == "" and "0 hits" in r.stderr


@pytest.mark.parametrize("pattern,words", [("hex:4d5", "odd"), ("", "empty"), ("0x810000", "ambiguous"),
                                           ("u16:70000", "does not fit"), ("hex:zz", "not hex")])
def test_find_bad_pattern_is_a_usage_error(image, pattern, words):
    r = run("find", image, pattern)
    assert r.returncode == 2 and words in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("args", [["--limit", "0"], ["--limit", "x"]])
def test_find_bad_limit_is_a_usage_error(image, args):
    r = run("find", image, "MZ", *args)
    assert r.returncode == 2 and "--limit" in r.stderr


def test_find_missing_file_is_a_usage_error(tmp_path):
    r = run("find", str(tmp_path / "nope.fd"), "MZ")
    assert r.returncode == 2 and "no such file" in r.stderr


def test_find_in_a_non_image_source(tmp_path):
    # A HOB list (PI vol 3 5.3: EFI_HOB_HANDOFF_INFO_TABLE, then END_OF_HOB_LIST) is searched too.
    import struct

    phit = struct.pack("<HHI", 0x0001, 56, 0) + struct.pack("<IIQQQQQ", 9, 0, 0x1000, 0x2000, 0x1800, 0x1800, 0x1C00)
    end = struct.pack("<HHI", 0xFFFF, 8, 0)
    f = tmp_path / "hob.bin"
    f.write_bytes(phit + end)
    r = run("find", str(f), "u64:0x1c00", "--json")
    doc = json.loads(r.stdout)
    assert [h["offset"] for h in doc["hits"]] == [48]


# -- disasm --------------------------------------------------------------------------------------------
def test_disasm_sec_entry_lists_instructions_at_flash_addresses(image):
    r = run("disasm", image, "SecMain", "--count", "3")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].startswith("; PE32 IA32") and "entry 0xfffceb84" in lines[0]
    assert any("runs in place from flash" in ln for ln in lines)
    code = [ln.split() for ln in lines if not ln.startswith(";")]
    assert [c[0] for c in code] == ["0xfffceb84", "0xfffceb89", "0xfffceb8e"]
    assert code[0][1:7] == ["b8", "a5", "5a", "a5", "5a", "mov"]


def test_disasm_by_guid_and_at_json(image):
    r = run("disasm", image, "52C05B14-0B98-496C-BC3B-04B50211D680", "--json", "--count", "2")   # PeiCore
    doc = json.loads(r.stdout)
    assert r.returncode == 0 and doc["mode"] == "prot32" and doc["entry"] == doc["lines"][0]["address"]
    at = doc["lines"][1]["address"]
    doc2 = json.loads(run("disasm", image, "PeiCore", "--json", "--count", "1", "--at", hex(at)).stdout)
    assert doc2["lines"][0] == doc["lines"][1]


def test_disasm_unknown_module_and_outside_address(image):
    r = run("disasm", image, "NoSuchModule")
    assert r.returncode == 2 and "no module 'NoSuchModule'" in r.stderr
    r = run("disasm", image, "SecMain", "--at", "0x1000")
    assert r.returncode == 1 and "0x1000 is not in" in r.stderr
    r = run("disasm", image, "SecMain", "--count", "0")
    assert r.returncode == 2


def test_disasm_with_symbols_names_the_entry():
    img = str(firmware("ovmf-debug/OVMF.fd"))
    r = run("disasm", img, "PlatformPei", "--count", "2", "--symbols", str(debug_symbols()))
    assert r.returncode == 0, r.stderr
    assert "_ModuleEntryPoint:" in r.stdout.splitlines()
    r = run("disasm", img, "PlatformPei", "--symbols", "/nonexistent")
    assert r.returncode == 2 and "not a folder" in r.stderr
